#include "planner.hpp"

#include <algorithm>
#include <cmath>
#include <queue>
#include <tuple>
#include <vector>

#include "moejit/checked.hpp"
#include "moejit/error.hpp"

namespace moejit {

FlopsPerToken training_flops_per_token(const ModelConfig& c) {
  const ParamCounts p = count_params(c);
  FlopsPerToken f;
  f.attention_proj = 6.0 * static_cast<double>(p.group(ParamGroup::attention));
  f.attention_scores = 12.0 * static_cast<double>(c.layers) * static_cast<double>(c.d_model) *
                       static_cast<double>(c.seq_len);  // both 0 for a "moe_layer" config
  f.dense_ffn = 6.0 * static_cast<double>(p.group(ParamGroup::dense_ffn));
  f.shared_expert = 6.0 * static_cast<double>(p.group(ParamGroup::shared_expert));
  // Active routed params: whatever of N_a is not attention, dense, shared or norm.
  const int64_t routed_active = p.n_active - p.group(ParamGroup::attention) - p.group(ParamGroup::dense_ffn) -
                                p.group(ParamGroup::shared_expert) - p.group(ParamGroup::norm);
  f.routed_expert = 6.0 * static_cast<double>(routed_active);
  f.norm = 6.0 * static_cast<double>(p.group(ParamGroup::norm));
  f.router = 6.0 * static_cast<double>(p.router);
  f.m_train = 6.0 * static_cast<double>(p.n_active) + f.attention_scores;
  return f;
}

double compute_for_tokens(const ModelConfig& c, double tokens) {
  return training_flops_per_token(c).m_train * tokens;
}

double tokens_for_compute(const ModelConfig& c, double compute) {
  return compute / training_flops_per_token(c).m_train;
}

DesignQuery design_query_for_baseline(const ModelConfig& baseline, double baseline_tokens, double target_ra) {
  if (baseline.scope != ModelScope::model) {
    throw Error("baseline '" + baseline.name + "' is a single MoE layer: the planner needs a whole model");
  }
  DesignQuery q;
  q.target_n = count_params(baseline).n;
  q.compute = baseline_tokens > 0 ? compute_for_tokens(baseline, baseline_tokens) : 0.0;
  q.target_ra = target_ra;
  q.base = baseline;
  const int64_t hd = baseline.head_dim;
  q.layers = {std::max<int64_t>(q.dense_layers + 1, baseline.layers / 2), baseline.layers};
  q.d_model = {std::max(hd, baseline.d_model / 2 / hd * hd), baseline.d_model};
  q.experts = {8, 128};
  q.top_k = {1, 16};
  q.d_expert = {64, 1024};
  q.d_shared = {0, 2 * baseline.d_model};
  return q;
}

namespace {

int64_t round_to(double value, int64_t multiple) {
  return std::max<int64_t>(multiple,
                           static_cast<int64_t>(std::llround(value / static_cast<double>(multiple))) * multiple);
}

ModelConfig make_design(const DesignQuery& q, int64_t layers, int64_t d_model, int64_t experts, int64_t top_k,
                        int64_t d_expert, int64_t d_shared) {
  ModelConfig c = q.base;
  c.scope = ModelScope::model;
  c.layers = layers;
  c.d_model = d_model;
  c.heads = d_model / q.base.head_dim;
  c.d_ffn = q.dense_layers == 0
                ? 0
                : (q.dense_ffn > 0 ? q.dense_ffn : round_to(q.dense_ffn_ratio * d_model, q.width_multiple));
  MoeConfig m;
  m.experts = experts;
  m.top_k = top_k;
  m.d_expert = d_expert;
  m.shared_experts = d_shared > 0 ? 1 : 0;
  m.d_shared = d_shared;
  for (int64_t l = 0; l < q.dense_layers; ++l) m.dense_layers.push_back(l);
  if (q.base.moe) m.router = q.base.moe->router;
  m.router.groups = m.router.topk_groups = 1;  // group-limited routing does not survive arbitrary E
  c.moe = m;
  c.name = "moe-L" + std::to_string(layers) + "-d" + std::to_string(d_model) + "-E" + std::to_string(experts) + "k" +
           std::to_string(top_k) + "-de" + std::to_string(d_expert) + "-se" + std::to_string(d_shared);
  c.description = "planner design, equal N to " + q.base.name;
  return c;
}

struct Shape {
  double score;
  int64_t layers, d_model, experts, top_k, d_expert, d_shared;
  int64_t n, n_active;  // from the linear model below; rechecked against count_params
  // Ties (same N and N_a) go to more, finer experts: the paper's best designs are fine-grained.
  auto key() const { return std::make_tuple(score, -experts, layers, d_model, top_k, d_expert, d_shared); }
  bool operator<(const Shape& o) const { return key() < o.key(); }
};

void check_range(const IntRange& r, const char* name) {
  if (r.lo < 0 || r.lo > r.hi) {
    throw Error(std::string("planner: empty or negative range for ") + name + ": [" + std::to_string(r.lo) + ", " +
                std::to_string(r.hi) + "]");
  }
}

}  // namespace

DesignCandidate evaluate_design(const ModelConfig& config, const DesignQuery& q) {
  DesignCandidate d;
  d.config = config;
  d.counts = count_params(config);
  d.flops = training_flops_per_token(config);
  d.tokens = q.compute > 0 ? q.compute / d.flops.m_train : 0.0;
  d.epochs = (d.tokens > 0 && q.unique_tokens > 0) ? d.tokens / q.unique_tokens : 0.0;
  d.n_error = q.target_n ? static_cast<double>(d.counts.n) / static_cast<double>(q.target_n) - 1.0 : 0.0;
  d.ra_error = d.counts.activation_rate() - q.target_ra;
  return d;
}

std::vector<DesignCandidate> design_equal_resource(const DesignQuery& q) {
  if (q.target_n <= 0) throw Error("planner: target N must be positive (give a baseline or --params)");
  if (q.target_ra <= 0 || q.target_ra >= 1) throw Error("planner: target activation rate must be in (0, 1)");
  if (q.base.head_dim <= 0 || q.base.vocab <= 0 || q.base.seq_len <= 0) {
    throw Error("planner: the base config needs head_dim, vocab and seq_len");
  }
  if (q.width_multiple <= 0 || q.dense_layers < 0 || q.per_shape == 0 || q.n_tolerance < 0 || q.ra_tolerance < 0) {
    throw Error("planner: width_multiple and per_shape must be positive, dense_layers and tolerances >= 0");
  }
  check_range(q.layers, "layers");
  check_range(q.d_model, "d_model");
  check_range(q.experts, "experts");
  check_range(q.top_k, "top_k");
  check_range(q.d_expert, "d_expert");
  check_range(q.d_shared, "d_shared");
  const int64_t wm = q.width_multiple, hd = q.base.head_dim;
  const double target = static_cast<double>(q.target_n);

  // Keep the best per_shape designs of each (layers, d_model), so the table shows different depths and
  // widths instead of many expert splits of one: a max-heap per shape whose top is the worst kept.
  std::vector<Shape> kept;
  for (int64_t layers = std::max(q.layers.lo, q.dense_layers + 1); layers <= q.layers.hi; ++layers) {
    for (int64_t d = (q.d_model.lo + hd - 1) / hd * hd; d <= q.d_model.hi; d += hd) {
      if (d == 0) continue;
      // N and N_a are linear in the MoE width per layer: N = A + B*(D_se + E*D_e), N_a = A + B*(D_se + K*D_e).
      // A and B come from the exact counter itself (two probe configs), so the search cannot drift from it.
      const int64_t n1 = count_params(make_design(q, layers, d, 1, 1, 1, 0)).n;
      const int64_t b = count_params(make_design(q, layers, d, 1, 1, 2, 0)).n - n1;
      const int64_t a = n1 - b;
      std::priority_queue<Shape> best;
      for (int64_t e = std::max<int64_t>(1, q.experts.lo); e <= q.experts.hi; ++e) {
        for (int64_t de = (std::max(q.d_expert.lo, wm) + wm - 1) / wm * wm; de <= q.d_expert.hi; de += wm) {
          const int64_t routed = checked_mul(e, de, "planner: E * d_expert");
          const double lo_w = (target * (1 - q.n_tolerance) - static_cast<double>(a)) / static_cast<double>(b) - routed;
          const double hi_w = (target * (1 + q.n_tolerance) - static_cast<double>(a)) / static_cast<double>(b) - routed;
          int64_t se_lo = std::max(q.d_shared.lo, static_cast<int64_t>(std::ceil(lo_w / static_cast<double>(wm))) * wm);
          se_lo = std::max<int64_t>(0, (se_lo + wm - 1) / wm * wm);
          const int64_t se_hi = std::min(q.d_shared.hi, static_cast<int64_t>(std::floor(hi_w)));
          for (int64_t se = se_lo; se <= se_hi; se += wm) {
            const int64_t n = checked_add(a, checked_mul(b, se + routed, "planner: N"), "planner: N");
            const double want_k = ((q.target_ra * static_cast<double>(n) - static_cast<double>(a)) / b - se) / de;
            const int64_t k =
                std::clamp<int64_t>(std::llround(want_k), std::max<int64_t>(1, q.top_k.lo), std::min(e, q.top_k.hi));
            if (k < 1 || k > e || !q.top_k.contains(k)) continue;
            const int64_t na = checked_add(a, checked_mul(b, se + k * de, "planner: N_a"), "planner: N_a");
            const double ra = static_cast<double>(na) / static_cast<double>(n);
            const double n_err = static_cast<double>(n) / target - 1.0;
            if (std::abs(ra - q.target_ra) > q.ra_tolerance || std::abs(n_err) > q.n_tolerance) continue;
            Shape s{std::abs(ra - q.target_ra) / q.target_ra + std::abs(n_err), layers, d, e, k, de, se, n, na};
            if (best.size() < q.per_shape) {
              best.push(s);
            } else if (s < best.top()) {
              best.pop();
              best.push(s);
            }
          }
        }
      }
      for (; !best.empty(); best.pop()) kept.push_back(best.top());
    }
  }
  std::sort(kept.begin(), kept.end());
  const std::vector<Shape> shapes(kept.begin(), kept.begin() + std::min(kept.size(), q.max_results));

  std::vector<DesignCandidate> out;
  for (const Shape& s : shapes) {
    ModelConfig c = make_design(q, s.layers, s.d_model, s.experts, s.top_k, s.d_expert, s.d_shared);
    validate(c, "planner design " + c.name);
    DesignCandidate cand = evaluate_design(c, q);
    if (cand.counts.n != s.n || cand.counts.n_active != s.n_active) {
      throw Error("planner: linear estimate disagrees with count_params for " + c.name + " (a bug: report it)");
    }
    out.push_back(std::move(cand));
  }
  return out;
}

}  // namespace moejit
