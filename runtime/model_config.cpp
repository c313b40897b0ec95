#include "model_config.hpp"

#include <sstream>

#include "moejit/error.hpp"

namespace moejit::runtime {

void ModelConfig::validate() const {
  auto fail = [&](const std::string& what) { throw Error("model config '" + name + "': " + what); };
  if (vocab < 2) fail("vocab must be >= 2");
  if (seq_len < 1 || n_layers < 1 || d_model < 1 || n_heads < 1)
    fail("seq_len, n_layers, d_model, n_heads must be >= 1");
  if (d_model % n_heads) fail("d_model " + std::to_string(d_model) + " is not a multiple of n_heads");
  if (d_ffn < 1) fail("d_ffn must be >= 1");
  if (layout != "dense" && layout != "1dense+SE") fail("layout '" + layout + "' unknown: use dense or 1dense+SE");
  if (layout == "1dense+SE") {
    if (n_experts < 1 || top_k < 1 || top_k > n_experts) fail("need 1 <= top_k <= n_experts for an MoE layout");
    if (d_expert < 1 || d_shared < 0) fail("need d_expert >= 1 and d_shared >= 0");
  }
}

ParamCounts count_params(const ModelConfig& c) {
  const int64_t D = c.d_model;
  auto ffn = [&](int64_t width) { return 3 * D * width; };  // SwiGLU: gate, up, down
  ParamCounts p;
  for (int l = 0; l < c.n_layers; ++l) {
    int64_t attn = 4 * D * D, norms = 2 * D;
    if (c.is_moe_layer(l)) {
      int64_t shared = c.d_shared ? ffn(c.d_shared) : 0;
      int64_t routed = int64_t(c.n_experts) * ffn(c.d_expert), router = int64_t(c.n_experts) * D;
      p.non_vocab += attn + shared + routed;
      p.active += attn + shared + int64_t(c.top_k) * ffn(c.d_expert);
      p.total += attn + norms + shared + routed + router;
    } else {
      p.non_vocab += attn + ffn(c.d_ffn);
      p.active += attn + ffn(c.d_ffn);
      p.total += attn + norms + ffn(c.d_ffn);
    }
  }
  p.total += 2 * int64_t(c.vocab) * D + D;  // embedding, LM head, final norm
  return p;
}

double train_flops_per_token(const ModelConfig& c) {
  return 6.0 * double(count_params(c).active) + 12.0 * c.n_layers * c.d_model * c.seq_len;
}

const std::vector<ModelConfig>& builtin_configs() {
  static const std::vector<ModelConfig> configs = [] {
    std::vector<ModelConfig> v;
    // ~1.1M non-vocab parameters, all active.
    ModelConfig dense{.name = "tiny-dense", .seq_len = 128, .n_layers = 4, .d_model = 128, .n_heads = 4, .d_ffn = 512};
    v.push_back(dense);
    // Same attention and active FFN width (D_se + K D_e = 384 + 2*64 = 512 = d_ffn): equal active
    // FLOPs; 16 experts give r_a ~ 0.4 at this size.
    ModelConfig moe = dense;
    moe.name = "tiny-moe";
    moe.layout = "1dense+SE";
    moe.n_experts = 16;
    moe.top_k = 2;
    moe.d_expert = 64;
    moe.d_shared = 384;
    v.push_back(moe);
    // For tests: trains in seconds.
    ModelConfig micro{.name = "micro-dense", .seq_len = 64, .n_layers = 2, .d_model = 64, .n_heads = 2, .d_ffn = 192};
    v.push_back(micro);
    ModelConfig micro_moe = micro;
    micro_moe.name = "micro-moe";
    micro_moe.layout = "1dense+SE";
    micro_moe.n_experts = 8;
    micro_moe.top_k = 2;
    micro_moe.d_expert = 32;
    micro_moe.d_shared = 128;
    v.push_back(micro_moe);
    return v;
  }();
  return configs;
}

ModelConfig find_config(const std::string& name) {
  std::string known;
  for (const auto& c : builtin_configs()) {
    if (c.name == name) return c;
    known += (known.empty() ? "" : ", ") + c.name;
  }
  throw Error("unknown model config '" + name + "': built-in configs are " + known);
}

std::string describe(const ModelConfig& c) {
  ParamCounts p = count_params(c);
  std::ostringstream s;
  s << c.name << ": L=" << c.n_layers << " D_m=" << c.d_model << " heads=" << c.n_heads << " S=" << c.seq_len
    << " d_ffn=" << c.d_ffn;
  if (c.layout != "dense")
    s << " layout=" << c.layout << " E=" << c.n_experts << " K=" << c.top_k << " D_e=" << c.d_expert
      << " D_se=" << c.d_shared;
  s << " | N=" << p.non_vocab << " N_a=" << p.active << " r_a=" << p.activation_rate() << " total=" << p.total;
  return s.str();
}

}  // namespace moejit::runtime
