// Exact parameter counts, per tensor. model_tensor_shapes() is THE list of weight tensors a model
// instance holds: the counter sums it here, and the runtime allocates from it, so the planner's
// numbers and the allocated bytes agree by construction.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "model_config.hpp"

namespace moejit {

// What a tensor is for; decides whether it counts in N and how much of it is active per token.
enum class ParamGroup {
  embedding,      // token embedding (vocab, d_model): not in N
  lm_head,        // output projection (d_model, vocab): not in N
  attention,      // Q, K, V, O projections
  norm,           // RMSNorm weights: counted in N and N_a (always active)
  dense_ffn,      // SwiGLU of a dense layer
  shared_expert,  // always-on shared expert(s) of an MoE layer
  routed_expert,  // E routed experts, stacked; K/E of them active per token
  router,         // gate (d_model, E): not in N (paper's definition), reported separately
};
inline constexpr int kParamGroupCount = 8;
std::string_view to_string(ParamGroup group);

struct TensorShape {
  std::string name;           // "layers.3.attn.wq", "layers.3.moe.experts.w_gate", "embedding"
  std::vector<int64_t> dims;  // row-major, y = x * W convention: (in, out), experts (E, in, out)
  ParamGroup group;
  int64_t layer = -1;  // -1: not inside a layer (embedding, final norm, LM head)
  int64_t numel() const;
};

// Every weight tensor, in a fixed order: embedding, per layer [attn_norm, wq, wk, wv, wo, ffn_norm,
// then dense w_gate, w_up, w_down or router, shared w_gate/w_up/w_down, experts w_gate/w_up/w_down],
// final_norm, lm_head (absent when tied). A "moe_layer" config yields only its MoE block.
std::vector<TensorShape> model_tensor_shapes(const ModelConfig& config);

struct ParamCounts {
  int64_t by_group[kParamGroupCount] = {};  // indexed by ParamGroup
  int64_t total = 0;                        // everything allocated, embeddings and router included
  int64_t n = 0;                            // N: non-vocabulary, non-router parameters
  int64_t n_active = 0;                     // N_a: the part of N one token uses (K of E routed experts)
  int64_t router = 0;                       // reported separately, not in N
  int64_t embeddings = 0;                   // embedding + LM head, not in N
  int64_t group(ParamGroup g) const { return by_group[static_cast<int>(g)]; }
  double activation_rate() const { return n ? static_cast<double>(n_active) / static_cast<double>(n) : 0.0; }
};

// Sums model_tensor_shapes(config).
ParamCounts count_params(const ModelConfig& config);

}  // namespace moejit
