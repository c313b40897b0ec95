// The router of one token in plain C++ loops (in T: double for the gradient checks), written from the
// semantics of docs/routing.md, independently of the kernels' code (templates/routing/routing_gate.h):
// scores, selection keys with the bias, group-limited top-k, weights, and the backward of the weights
// and scores to the logits. The reference MoE kernels call it per token.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "routing/routing_gate.h"  // GateParams, kScoreSigmoid, kRenormEps

namespace moejit::runtime {

template <typename T>
struct RouterScores {
  std::vector<T> score;    // (E) softmax or sigmoid of the logits
  std::vector<T> softmax;  // (E) softmax (the z loss's gradient), == score for softmax routers
  T lse = 0;               // logsumexp of the logits
};

template <typename T>
void router_scores(RouterScores<T>& r, const T* logits, int64_t E, int score_fn) {
  r.score.resize(E);
  r.softmax.resize(E);
  T mx = logits[0], sum = 0;
  for (int64_t e = 1; e < E; ++e) mx = std::max(mx, logits[e]);
  for (int64_t e = 0; e < E; ++e) sum += (r.softmax[e] = std::exp(logits[e] - mx));
  for (int64_t e = 0; e < E; ++e) r.softmax[e] /= sum;
  r.lse = mx + std::log(sum);
  for (int64_t e = 0; e < E; ++e)
    r.score[e] = score_fn == kScoreSigmoid ? T(1) / (T(1) + std::exp(-logits[e])) : r.softmax[e];
}

// (key, index) beats (other, other_index): higher key, then lower index (the kernels' tie rule).
template <typename T>
bool beats(T key, int64_t index, T other, int64_t other_index) {
  return key > other || (key == other && index < other_index);
}

// The K chosen experts, best first: keys = score + bias; with groups, only experts of the
// topk_groups groups with the highest sum of their best two keys (best one for one-expert groups).
template <typename T>
void router_select(int32_t* index, const RouterScores<T>& r, const T* bias, const GateParams& p, int64_t E, int64_t K) {
  const T none = -std::numeric_limits<T>::infinity();
  std::vector<T> key(E);
  for (int64_t e = 0; e < E; ++e) key[e] = r.score[e] + (bias ? bias[e] : T(0));
  if (p.n_groups > 1) {
    const int64_t G = p.n_groups, size = E / G;
    std::vector<T> group(G);
    for (int64_t g = 0; g < G; ++g) {
      std::vector<T> k(key.begin() + g * size, key.begin() + (g + 1) * size);
      std::sort(k.begin(), k.end(), [](T a, T b) { return a > b; });
      group[g] = size >= 2 ? k[0] + k[1] : k[0];
    }
    std::vector<bool> keep(G, false);
    for (int64_t round = 0; round < p.topk_groups; ++round) {
      int64_t best = -1;
      for (int64_t g = 0; g < G; ++g)
        if (!keep[g] && (best < 0 || beats(group[g], g, group[best], best))) best = g;
      keep[best] = true;
    }
    for (int64_t e = 0; e < E; ++e)
      if (!keep[e / size]) key[e] = none;
  }
  for (int64_t k = 0; k < K; ++k) {  // K passes of arg-max over the experts not masked or chosen yet
    int64_t best = -1;
    for (int64_t e = 0; e < E; ++e)
      if (key[e] != none && (best < 0 || beats(key[e], e, key[best], best))) best = e;
    index[k] = int32_t(best);
    key[best] = none;
  }
}

// weight (K) = scaling * score of the chosen experts, over their sum (+1e-20) when renormalised.
template <typename T>
void router_weights(T* weight, const int32_t* index, const RouterScores<T>& r, const GateParams& p, int64_t K) {
  T sum = 0;
  for (int64_t k = 0; k < K; ++k) sum += r.score[index[k]];
  const T norm = p.renormalize ? sum + T(kRenormEps) : T(1);
  for (int64_t k = 0; k < K; ++k) weight[k] = T(p.scaling) * r.score[index[k]] / norm;
}

// d_logits (E) of one token from d_score (E) (in: the aux-loss term; the weights' term is added here
// from d_weight (K)) and the z-loss term z_scale * lse * softmax.
template <typename T>
void router_backward(T* d_logits, std::vector<T>& d_score, const RouterScores<T>& r, const int32_t* index,
                     const T* d_weight, const GateParams& p, T z_scale, int64_t E, int64_t K) {
  T z = 0, dot = 0;  // renormalised: w_k = c s_k / Z -> ds_m = c (dw_m / Z - sum_k dw_k s_k / Z^2)
  for (int64_t k = 0; k < K; ++k) z += r.score[index[k]], dot += d_weight[k] * r.score[index[k]];
  z += T(kRenormEps);
  for (int64_t k = 0; k < K; ++k)
    d_score[index[k]] += T(p.scaling) * (p.renormalize ? d_weight[k] / z - dot / (z * z) : d_weight[k]);
  T sd = 0;
  for (int64_t e = 0; e < E; ++e) sd += r.score[e] * d_score[e];
  for (int64_t e = 0; e < E; ++e) {
    const T s = r.score[e];
    d_logits[e] = (p.score == kScoreSigmoid ? d_score[e] * s * (T(1) - s) : s * (d_score[e] - sd)) +
                  z_scale * r.lse * r.softmax[e];
  }
}

}  // namespace moejit::runtime
