#include "trainable_config.hpp"

#include <sstream>
#include <vector>

#include "moejit/error.hpp"
#include "param_count.hpp"
#include "routing/routing_spec.hpp"  // kMaxRoutedExperts, kMaxTopK

namespace moejit::runtime {

void check_trainable(const ModelConfig& c) {
  // Every unsupported field at once, so that one edit of the config file fixes them all.
  std::vector<std::string> problems;
  auto need = [&](bool ok, const std::string& what) {
    if (!ok) problems.push_back(what);
  };
  need(c.scope == ModelScope::model,
       "it describes one MoE layer, not a whole model (pick a config with \"scope\": \"model\")");
  need(c.positions == "alibi" || c.head_dim % 2 == 0,
       "RoPE rotates pairs of channels: head_dim must be even, or use \"positions\": \"alibi\"");
  need(c.scope != ModelScope::model || c.vocab >= 2, "vocab must be >= 2");
  if (c.moe) {  // the routing kernels' limits (templates/routing)
    need(c.moe->experts <= kMaxRoutedExperts, "the router takes at most " + std::to_string(kMaxRoutedExperts) +
                                                  " experts; set \"experts\" <= " + std::to_string(kMaxRoutedExperts));
    need(c.moe->top_k <= kMaxTopK, "the router takes top_k <= " + std::to_string(kMaxTopK) + "; lower \"top_k\"");
    need(c.moe->router.groups <= 32, "group-limited routing takes at most 32 groups; lower \"groups\"");
  }
  if (problems.empty()) return;
  std::string text =
      "model config '" + c.name + "' cannot be trained (" + std::to_string(problems.size()) + " problem(s)):";
  for (const auto& p : problems) text += "\n  - " + p;
  throw Error(text);
}

std::string describe(const ModelConfig& c) {
  const ParamCounts p = count_params(c);
  std::ostringstream s;
  s << c.name << ": L=" << c.layers << " D_m=" << c.d_model << " heads=" << c.heads << " S=" << c.seq_len
    << " d_ffn=" << c.d_ffn << " vocab=" << c.vocab;
  if (c.moe)
    s << " E=" << c.moe->experts << " K=" << c.moe->top_k << " D_e=" << c.moe->d_expert
      << " D_se=" << c.moe->shared_width() << " MoE layers=" << c.moe_layer_count();
  s << " | N=" << p.n << " N_a=" << p.n_active << " r_a=" << p.activation_rate() << " total=" << p.total;
  return s.str();
}

}  // namespace moejit::runtime
