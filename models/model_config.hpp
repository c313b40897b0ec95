// ModelConfig: a decoder-only model (or one MoE layer) as plain data, loaded from and written to the
// JSON files under models/configs/ (format: docs/models.md). Loading validates and names the file
// and the fix in every error.
#pragma once
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace moejit {

// "model": a whole decoder (attention, FFNs, norms, embeddings). "moe_layer": one MoE FFN block only
// (router + shared + routed experts), for kernel shapes taken from public models.
enum class ModelScope { model, moe_layer };
std::string_view to_string(ModelScope scope);

struct RouterConfig {
  std::string score = "softmax";  // "softmax" or "sigmoid" gate scores
  bool renormalize = false;       // rescale the K selected weights to sum to 1 (the paper: no)
  int64_t groups = 1;             // group-limited routing: experts split into `groups` groups ...
  int64_t topk_groups = 1;        // ... and tokens pick experts only from their best `topk_groups`
  double aux_loss_coef = 0.01;    // weight of E*sum_i f_i*p_i
  double z_loss_coef = 0.0;       // weight of mean(logsumexp(logits)^2)
  // The sequence-wise balance loss (DeepSeek-V3's complementary one): the aux formula over each
  // training sequence (seq_len tokens), averaged over the sequences. 0: off.
  double seq_aux_loss_coef = 0.0;
  double scaling = 1.0;  // routed scaling factor: the K weights are multiplied by it
  // Auxiliary-loss-free balancing (DeepSeek-V3): a per-expert selection bias, added to the scores
  // for the choice of experts only, moved by +-rate after every step toward the mean load. 0: off.
  double bias_update_rate = 0.0;
  // Per-expert capacity ceil(factor * tokens * K / E); choices beyond it are dropped (the earliest
  // tokens are kept). 0: no capacity, nothing dropped.
  double capacity_factor = 0.0;
  bool operator==(const RouterConfig&) const = default;
};

struct MoeConfig {
  int64_t experts = 0;                // E routed experts
  int64_t top_k = 0;                  // K experts per token
  int64_t d_expert = 0;               // routed expert FFN width D_e
  int64_t shared_experts = 0;         // always-on shared experts, each d_shared wide (fused: one FFN of
  int64_t d_shared = 0;               // width shared_experts*d_shared computes the same sum)
  std::vector<int64_t> dense_layers;  // 0-based layers with a dense FFN instead (paper: {0})
  RouterConfig router;
  int64_t shared_width() const { return shared_experts * d_shared; }
  bool operator==(const MoeConfig&) const = default;
};

struct ModelConfig {
  std::string name;
  std::string description;
  ModelScope scope = ModelScope::model;
  int64_t d_model = 0;
  // Whole-model fields (scope == model only).
  int64_t layers = 0;
  int64_t heads = 0;
  int64_t head_dim = 0;  // heads * head_dim == d_model
  int64_t d_ffn = 0;     // SwiGLU width of every dense FFN layer (0 when no layer is dense)
  int64_t vocab = 0;
  int64_t seq_len = 0;
  std::string positions = "alibi";  // "alibi" (no parameters) or "rope" (no parameters either)
  bool tie_embeddings = false;      // LM head shares the embedding matrix
  std::optional<MoeConfig> moe;     // absent: a dense model

  bool is_moe() const { return moe.has_value(); }
  // Whether layer `layer` (0-based) has a dense FFN; always true for a dense model.
  bool is_dense_layer(int64_t layer) const;
  int64_t dense_layer_count() const;
  int64_t moe_layer_count() const;
  bool operator==(const ModelConfig&) const = default;
};

// Throws Error naming `origin` (a file name or "<string>") and the offending field on any problem:
// unknown keys, missing fields, wrong types, heads*head_dim != d_model, top_k > experts, ...
ModelConfig model_config_from_json(const nlohmann::json& j, const std::string& origin);
nlohmann::json to_json(const ModelConfig& config);
// Checks the cross-field rules; model_config_from_json calls it. Planner-built configs use it too.
void validate(const ModelConfig& config, const std::string& origin);

ModelConfig parse_model_config(std::string_view text, const std::string& origin);
ModelConfig load_model_config(const std::filesystem::path& path);

// $MOEJIT_MODELS_DIR, else the installed configs (<prefix>/share/moejit/models), else the source
// tree's models/configs compiled in.
std::filesystem::path models_dir();
// Names of the shipped configs (file stems in models_dir()), sorted.
std::vector<std::string> list_model_configs();
// `name_or_path`: a shipped config name ("moe-2b") or a path to a .json file.
ModelConfig find_model_config(std::string_view name_or_path);

// The small CPU-trainable config the runtime trains by default (~20% activation rate, the paper's
// optimum, at the same N as tiny-dense).
inline constexpr std::string_view kDefaultSmallConfig = "tiny-moe-r20";

}  // namespace moejit
