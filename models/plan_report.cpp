#include "plan_report.hpp"

#include <cmath>
#include <cstdio>
#include <sstream>

namespace moejit {
using nlohmann::json;

namespace {

// 2150659456 -> "2.151B"; keeps tables narrow while JSON carries the exact integers.
std::string human(double v) {
  const char* suffix[] = {"", "K", "M", "B", "T"};
  int i = 0;
  double x = v;
  while (std::abs(x) >= 1000 && i < 4) x /= 1000, ++i;
  char buf[32];
  std::snprintf(buf, sizeof buf, i ? "%.3f%s" : "%.0f%s", x, suffix[i]);
  return buf;
}

std::string sci(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4g", v);
  return buf;
}

std::string percent(double fraction) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f%%", 100.0 * fraction);
  return buf;
}

std::string row(const std::string& label, const std::string& value, const std::string& note = "") {
  char buf[256];
  std::snprintf(buf, sizeof buf, "  %-34s %18s  %s\n", label.c_str(), value.c_str(), note.c_str());
  return buf;
}

std::string with_commas(int64_t v) {
  std::string s = std::to_string(v < 0 ? -v : v), out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (i && (s.size() - i) % 3 == 0) out += ',';
    out += s[i];
  }
  return v < 0 ? "-" + out : out;
}

json params_json(const ParamCounts& p) {
  json j;
  for (int g = 0; g < kParamGroupCount; ++g) j[std::string(to_string(static_cast<ParamGroup>(g)))] = p.by_group[g];
  j["N"] = p.n;
  j["N_active"] = p.n_active;
  j["activation_rate"] = p.activation_rate();
  j["router_not_in_N"] = p.router;
  j["embeddings_not_in_N"] = p.embeddings;
  j["total"] = p.total;
  return j;
}

json flops_json(const FlopsPerToken& f) {
  return {{"attention_proj", f.attention_proj}, {"attention_scores", f.attention_scores},
          {"dense_ffn", f.dense_ffn},           {"shared_expert", f.shared_expert},
          {"routed_expert", f.routed_expert},   {"norm", f.norm},
          {"router_not_in_M_train", f.router},  {"M_train", f.m_train}};
}

std::string describe(const ModelConfig& c) {
  std::ostringstream s;
  s << c.name << " (" << to_string(c.scope);
  if (c.scope == ModelScope::model) {
    s << ", " << c.layers << " layers, d_model " << c.d_model << ", " << c.heads << " heads x " << c.head_dim
      << ", vocab " << c.vocab << ", seq " << c.seq_len;
  } else {
    s << ", d_model " << c.d_model;
  }
  if (c.moe) {
    const MoeConfig& m = *c.moe;
    s << "; MoE in " << c.moe_layer_count() << " layer(s): E=" << m.experts << " K=" << m.top_k
      << " D_e=" << m.d_expert;
    if (m.shared_experts) s << " shared " << m.shared_experts << "x" << m.d_shared;
    s << ", router " << m.router.score << (m.router.renormalize ? " renormalised" : "");
  }
  if (c.dense_layer_count()) s << "; " << c.dense_layer_count() << " dense layer(s) d_ffn " << c.d_ffn;
  s << ")";
  return s.str();
}

std::string flops_rows(const FlopsPerToken& f) {
  const double m = f.m_train;
  std::string out = row("M_train = 6 N_a + 12 L d S", sci(m), "FLOPs per training token");
  out += row("  attention projections", sci(f.attention_proj), percent(f.attention_proj / m));
  out += row("  attention scores (12 L d S)", sci(f.attention_scores), percent(f.attention_scores / m));
  out += row("  dense FFN", sci(f.dense_ffn), percent(f.dense_ffn / m));
  out += row("  shared experts", sci(f.shared_expert), percent(f.shared_expert / m));
  out += row("  routed experts (K of E)", sci(f.routed_expert), percent(f.routed_expert / m));
  out += row("  norms", sci(f.norm), percent(f.norm / m));
  out += row("router (not in M_train)", sci(f.router), percent(f.router / m) + " extra");
  return out;
}

}  // namespace

json config_plan_json(const ModelConfig& c, const Budget& budget) {
  json j;
  j["config"] = to_json(c);
  j["params"] = params_json(count_params(c));
  const FlopsPerToken f = training_flops_per_token(c);
  j["flops_per_token"] = flops_json(f);
  if (budget.tokens > 0) {
    j["tokens"] = budget.tokens;
    j["compute"] = f.m_train * budget.tokens;
  } else if (budget.compute > 0) {
    j["compute"] = budget.compute;
    j["tokens"] = budget.compute / f.m_train;
  }
  return j;
}

std::string config_plan_table(const ModelConfig& c, const Budget& budget) {
  const ParamCounts p = count_params(c);
  const double n = static_cast<double>(p.n);
  std::string out = describe(c) + "\nparameters" + std::string(27, ' ') + "             count  share of N\n";
  for (auto g : {ParamGroup::attention, ParamGroup::norm, ParamGroup::dense_ffn, ParamGroup::shared_expert,
                 ParamGroup::routed_expert}) {
    if (p.group(g) || g == ParamGroup::attention) {
      out += row(std::string(to_string(g)), with_commas(p.group(g)), percent(static_cast<double>(p.group(g)) / n));
    }
  }
  out += row("N (no embeddings, no router)", with_commas(p.n), human(n));
  out += row("N_a (active per token)", with_commas(p.n_active), human(static_cast<double>(p.n_active)));
  out += row("r_a = N_a / N", percent(p.activation_rate()));
  out += row("router (not in N)", with_commas(p.router), human(static_cast<double>(p.router)));
  out += row("embeddings + LM head (not in N)", with_commas(p.embeddings), human(static_cast<double>(p.embeddings)));
  out += row("total allocated", with_commas(p.total), human(static_cast<double>(p.total)));
  const FlopsPerToken f = training_flops_per_token(c);
  out += "training FLOPs\n" + flops_rows(f);
  if (budget.tokens > 0) {
    out += row("tokens D (given)", sci(budget.tokens)) + row("compute C = M_train * D", sci(f.m_train * budget.tokens));
  } else if (budget.compute > 0) {
    out +=
        row("compute C (given)", sci(budget.compute)) + row("tokens D = C / M_train", sci(budget.compute / f.m_train));
  }
  return out;
}

json design_plan_json(const DesignQuery& q, const DesignCandidate* baseline,
                      const std::vector<DesignCandidate>& designs) {
  json j;
  j["query"] = {{"target_N", q.target_n},
                {"compute", q.compute},
                {"target_activation_rate", q.target_ra},
                {"N_tolerance", q.n_tolerance},
                {"activation_rate_tolerance", q.ra_tolerance},
                {"unique_tokens", q.unique_tokens},
                {"width_multiple", q.width_multiple},
                {"dense_layers", q.dense_layers},
                {"ranges",
                 {{"layers", {q.layers.lo, q.layers.hi}},
                  {"d_model", {q.d_model.lo, q.d_model.hi}},
                  {"experts", {q.experts.lo, q.experts.hi}},
                  {"top_k", {q.top_k.lo, q.top_k.hi}},
                  {"d_expert", {q.d_expert.lo, q.d_expert.hi}},
                  {"d_shared", {q.d_shared.lo, q.d_shared.hi}}}}};
  auto one = [&](const DesignCandidate& d) {
    json r;
    r["config"] = to_json(d.config);
    r["params"] = params_json(d.counts);
    r["flops_per_token"] = flops_json(d.flops);
    r["N_error"] = d.n_error;
    r["activation_rate_error"] = d.ra_error;
    if (d.tokens > 0) r["tokens"] = d.tokens;
    if (d.epochs > 0) r["epochs"] = d.epochs;
    return r;
  };
  if (baseline) j["baseline"] = one(*baseline);
  j["designs"] = json::array();
  for (const auto& d : designs) j["designs"].push_back(one(d));
  return j;
}

std::string design_plan_table(const DesignQuery& q, const DesignCandidate* baseline,
                              const std::vector<DesignCandidate>& designs) {
  std::ostringstream s;
  s << "equal-resource designs: N = " << human(static_cast<double>(q.target_n)) << " +-" << percent(q.n_tolerance)
    << ", r_a = " << percent(q.target_ra) << " +-" << percent(q.ra_tolerance);
  if (q.compute > 0) s << ", C = " << sci(q.compute);
  if (q.unique_tokens > 0) s << ", unique tokens " << sci(q.unique_tokens);
  s << "\n";
  char buf[320];
  std::snprintf(buf, sizeof buf, "%-34s %4s %5s %4s %3s %5s %5s %9s %9s %7s %7s %9s %9s %7s %6s %6s\n", "name", "L",
                "d", "E", "K", "D_e", "D_se", "N", "N_a", "r_a", "dN", "M_train", "D", "epochs", "attn%", "ffn%");
  s << buf;
  auto line = [&](const DesignCandidate& d) {
    const ModelConfig& c = d.config;
    const bool moe = c.moe.has_value();
    const double m = d.flops.m_train;
    const double attn = (d.flops.attention_proj + d.flops.attention_scores) / m;
    std::snprintf(buf, sizeof buf, "%-34s %4lld %5lld %4s %3s %5s %5s %9s %9s %7s %7s %9s %9s %7s %6.1f %6.1f\n",
                  c.name.c_str(), static_cast<long long>(c.layers), static_cast<long long>(c.d_model),
                  moe ? std::to_string(c.moe->experts).c_str() : "-", moe ? std::to_string(c.moe->top_k).c_str() : "-",
                  moe ? std::to_string(c.moe->d_expert).c_str() : "-",
                  moe ? std::to_string(c.moe->shared_width()).c_str() : "-",
                  human(static_cast<double>(d.counts.n)).c_str(), human(static_cast<double>(d.counts.n_active)).c_str(),
                  percent(d.counts.activation_rate()).c_str(), percent(d.n_error).c_str(), sci(m).c_str(),
                  d.tokens > 0 ? sci(d.tokens).c_str() : "-", d.epochs > 0 ? sci(d.epochs).c_str() : "-", 100.0 * attn,
                  100.0 * (1.0 - attn - d.flops.norm / m));
    s << buf;
  };
  if (baseline) {
    line(*baseline);
    s << std::string(150, '-') << "\n";
  }
  for (const auto& d : designs) line(d);
  if (designs.empty())
    s << "(no design in the ranges meets both tolerances: widen --tolerance, --ra-tolerance or the ranges)\n";
  return s.str();
}

}  // namespace moejit
