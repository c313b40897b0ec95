// The runtime trains models/'s ModelConfig (models/configs/*.json, docs/models.md) directly: one
// config type from the planner to the trainer, so `moejit plan`'s parameter count is the count the
// trainer allocates. This header adds what only training needs.
#pragma once
#include <string>

#include "model_config.hpp"
#include "planner.hpp"

namespace moejit::runtime {

using moejit::ModelConfig;

// Throws Error naming the option and the fix when the host trainer cannot train `c`: a layer-only
// config, RoPE, tied embeddings, or a router other than softmax top-k without renormalisation in
// one group (the routing kernels have those; the trainer's reference path does not yet).
void check_trainable(const ModelConfig& c);

// M_train = 6 N_a + 12 L D_m S: training FLOPs per token (models/planner.hpp).
inline double train_flops_per_token(const ModelConfig& c) {
  return training_flops_per_token(c).m_train;
}

// The layers with a routed MoE FFN.
inline bool is_moe_layer(const ModelConfig& c, int64_t layer) {
  return !c.is_dense_layer(layer);
}
inline int64_t d_ffn_shared(const ModelConfig& c) {
  return c.moe ? c.moe->shared_width() : 0;
}

// "tiny-moe-r20: L=6 D_m=128 ... | N=... N_a=... r_a=... total=...".
std::string describe(const ModelConfig& c);

}  // namespace moejit::runtime
