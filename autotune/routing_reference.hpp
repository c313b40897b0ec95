// Plain double-precision reference for routing (independent of the templates' code paths: sorts
// instead of team reductions, a stable sort instead of chunk masks). Used by the routing workloads
// (autotune/routing_workload.cpp) and the routing tests.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <vector>

namespace moejit {

struct RefRouter {
  int experts = 8, top_k = 2;
  bool sigmoid = false, renormalize = false;
  double scaling = 1.0;
  int n_groups = 1, topk_groups = 1;
};

// Router scores of one token (softmax or sigmoid) and its logsumexp.
inline std::vector<double> ref_scores(const double* logits, const RefRouter& r, double* lse) {
  const int e_count = r.experts;
  const double max = *std::max_element(logits, logits + e_count);
  double sum = 0;
  for (int e = 0; e < e_count; ++e) sum += std::exp(logits[e] - max);
  if (lse) *lse = max + std::log(sum);
  std::vector<double> s(e_count);
  for (int e = 0; e < e_count; ++e)
    s[e] = r.sigmoid ? 1.0 / (1.0 + std::exp(-logits[e])) : std::exp(logits[e] - max) / sum;
  return s;
}

// Top-k choice of one token by (key desc, index asc), with group limiting. Keys = score + bias.
inline std::vector<int> ref_select(const std::vector<double>& scores, const float* bias, const RefRouter& r) {
  const int e_count = r.experts;
  std::vector<double> key(e_count);
  for (int e = 0; e < e_count; ++e) key[e] = scores[e] + (bias ? bias[e] : 0.0);
  std::vector<char> allowed(e_count, 1);
  if (r.n_groups > 1) {
    const int size = e_count / r.n_groups;
    std::vector<std::pair<double, int>> groups;
    for (int g = 0; g < r.n_groups; ++g) {
      std::vector<double> k(key.begin() + g * size, key.begin() + (g + 1) * size);
      std::sort(k.rbegin(), k.rend());
      groups.push_back({size >= 2 ? k[0] + k[1] : k[0], g});
    }
    std::sort(groups.begin(), groups.end(),
              [](auto a, auto b) { return a.first > b.first || (a.first == b.first && a.second < b.second); });
    std::fill(allowed.begin(), allowed.end(), 0);
    for (int i = 0; i < r.topk_groups; ++i)
      for (int e = 0; e < size; ++e) allowed[groups[i].second * size + e] = 1;
  }
  std::vector<int> order;
  for (int e = 0; e < e_count; ++e)
    if (allowed[e]) order.push_back(e);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return key[a] > key[b]; });
  order.resize(r.top_k);
  return order;
}

// Final weights of a fixed choice.
inline std::vector<double> ref_weights(const std::vector<double>& scores, const int* index, const RefRouter& r) {
  std::vector<double> w(r.top_k);
  double sum = 0;
  for (int i = 0; i < r.top_k; ++i) sum += scores[index[i]];
  for (int i = 0; i < r.top_k; ++i)
    w[i] = (r.renormalize ? scores[index[i]] / (sum + 1e-20) : scores[index[i]]) * r.scaling;
  return w;
}

// The scalar whose gradient the gating backward computes, for one token with a fixed choice:
//   L = sum_r dw_r w_r + sum_e aux_scale_e s_e + z_coef / T * lse^2.
inline double ref_token_loss(const double* logits, const int* index, const float* dw,
                             const std::vector<double>& aux_scale, double z_coef_over_t, const RefRouter& r) {
  double lse = 0;
  const auto s = ref_scores(logits, r, &lse);
  const auto w = ref_weights(s, index, r);
  double loss = z_coef_over_t * lse * lse;
  for (int i = 0; i < r.top_k; ++i) loss += (dw ? dw[i] : 0.0) * w[i];
  for (int e = 0; e < r.experts && !aux_scale.empty(); ++e) loss += aux_scale[e] * s[e];
  return loss;
}

// d ref_token_loss / d logits in closed form (the autotuner's check; the tests validate it
// against central differences): dL/ds from the weights and the aux term, then through the softmax
// (or the sigmoid), plus the z term 2 * z_coef_over_t * lse * softmax.
inline std::vector<double> ref_logit_grad(const double* logits, const int* index, const float* dw,
                                          const std::vector<double>& aux_scale, double z_coef_over_t,
                                          const RefRouter& r) {
  const int e_count = r.experts;
  double lse = 0;
  const auto s = ref_scores(logits, r, &lse);
  std::vector<double> g(e_count, 0.0);  // dL/ds
  for (int e = 0; e < e_count && !aux_scale.empty(); ++e) g[e] = aux_scale[e];
  double sum = 0, dot = 0;
  for (int i = 0; i < r.top_k; ++i) sum += s[index[i]], dot += (dw ? dw[i] : 0.0) * s[index[i]];
  for (int i = 0; i < r.top_k; ++i) {
    const double d = dw ? dw[i] : 0.0;
    const double denom = sum + 1e-20;
    g[index[i]] += r.renormalize ? r.scaling * (d / denom - dot / (denom * denom)) : r.scaling * d;
  }
  std::vector<double> grad(e_count);
  double gs = 0;
  for (int e = 0; e < e_count; ++e) gs += g[e] * s[e];
  for (int e = 0; e < e_count; ++e) {
    const double softmax = std::exp(logits[e] - lse);
    grad[e] = r.sigmoid ? g[e] * s[e] * (1.0 - s[e]) : s[e] * (g[e] - gs);
    grad[e] += 2.0 * z_coef_over_t * lse * softmax;
  }
  return grad;
}

struct RefPlan {
  std::vector<int> counts, dropped, offsets, slot, row_source;
};

inline RefPlan ref_plan(const std::vector<int>& index, int64_t tokens, int experts, int top_k, int capacity,
                        int pad_to) {
  RefPlan p;
  p.counts.assign(experts, 0);
  p.dropped.assign(experts, 0);
  p.offsets.assign(experts + 1, 0);
  p.slot.assign(tokens * top_k, -1);
  // Choices of each expert in token order (stable sort by expert).
  std::vector<int64_t> order(tokens * top_k);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return index[a] < index[b]; });
  for (int64_t i : order) ++p.counts[index[i]];
  for (int e = 0; e < experts; ++e) {
    const int kept = capacity >= 0 ? std::min(capacity, p.counts[e]) : p.counts[e];
    p.dropped[e] = p.counts[e] - kept;
    const int rows = pad_to > 1 ? (kept + pad_to - 1) / pad_to * pad_to : kept;
    p.offsets[e + 1] = p.offsets[e] + rows;
  }
  p.row_source.assign(p.offsets[experts], -1);
  std::vector<int> rank(experts, 0);
  for (int64_t i : order) {
    const int e = index[i], k = rank[e]++;
    if (capacity >= 0 && k >= capacity) continue;
    p.slot[i] = p.offsets[e] + k;
    p.row_source[p.offsets[e] + k] = static_cast<int>(i);
  }
  return p;
}

}  // namespace moejit
