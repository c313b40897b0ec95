#include "trainable_config.hpp"

#include <sstream>

#include "moejit/error.hpp"
#include "param_count.hpp"

namespace moejit::runtime {

void check_trainable(const ModelConfig& c) {
  auto fail = [&](const std::string& what) { throw Error("model config '" + c.name + "' cannot be trained: " + what); };
  if (c.scope != ModelScope::model)
    fail("it describes one MoE layer, not a whole model (pick a config with \"scope\": \"model\")");
  if (c.positions != "alibi") fail("positions \"" + c.positions + "\" are not implemented; use \"alibi\"");
  if (c.tie_embeddings) fail("tied embeddings are not implemented; set \"tie_embeddings\": false");
  if (c.vocab < 2) fail("vocab must be >= 2");
  if (!c.moe) return;
  const RouterConfig& r = c.moe->router;
  if (r.score != "softmax") fail("router score \"" + r.score + "\" is not implemented; use \"softmax\"");
  if (r.renormalize) fail("renormalised top-k weights are not implemented; set \"renormalize\": false");
  if (r.groups != 1 || r.topk_groups != 1)
    fail("group-limited routing is not implemented; set groups = topk_groups = 1");
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
