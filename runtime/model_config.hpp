// The model shape the trainer needs. Mirrors the fields of issue 8's ModelConfig (models/configs/*.json)
// so that swapping this struct for it later is a rename; until then the built-in tiny configs live here.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace moejit::runtime {

struct ModelConfig {
  std::string name;
  int vocab = 257;    // bytes + end-of-text
  int seq_len = 128;  // S: context length
  int n_layers = 4;   // L
  int d_model = 128;  // D_m
  int n_heads = 4;    // head dim = d_model / n_heads
  int d_ffn = 512;    // width of a dense SwiGLU FFN
  // "dense": every layer dense. "1dense+SE": layer 0 dense, the others MoE with a shared expert.
  std::string layout = "dense";
  int n_experts = 0;            // E routed experts
  int top_k = 0;                // K
  int d_expert = 0;             // D_e
  int d_shared = 0;             // D_se (0: no shared expert)
  double aux_loss_coef = 1e-2;  // load balance: coef * E * sum_i f_i p_i
  double z_loss_coef = 1e-3;    // router z-loss: coef * mean_t logsumexp(logits_t)^2

  bool is_moe_layer(int layer) const { return layout == "1dense+SE" && layer > 0; }
  int head_dim() const { return d_model / n_heads; }
  // Throws Error naming the bad field.
  void validate() const;
};

// Parameter counts in the paper's convention (shared/reference/paper.md): non-vocabulary parameters,
// router weights excluded.
struct ParamCounts {
  int64_t total = 0;      // every trainable float, embeddings and router included
  int64_t non_vocab = 0;  // N
  int64_t active = 0;     // N_a
  double activation_rate() const { return non_vocab ? double(active) / double(non_vocab) : 0.0; }
};
ParamCounts count_params(const ModelConfig& c);

// M_train = 6 N_a + 12 L D_m S: training FLOPs per token.
double train_flops_per_token(const ModelConfig& c);

// The built-in tiny configs (until models/configs lands): "tiny-dense" and "tiny-moe" have about equal
// active FLOPs per token; "micro-dense"/"micro-moe" are smaller still for tests.
const std::vector<ModelConfig>& builtin_configs();
// Throws Error listing the known names.
ModelConfig find_config(const std::string& name);

std::string describe(const ModelConfig& c);

}  // namespace moejit::runtime
