// Router gating for one token, for both backends: scores (softmax or sigmoid over E fp32 logits),
// optional selection bias, optional group-limited routing, top-k, renormalisation, scaling; and the
// backward pass from the k weight gradients (plus the aux-loss and z-loss terms) to the logits.
//
// One token is handled by a team of LANES threads (LANES = 1 on the host; 1..32 on the GPU, a
// power of two inside one warp). Lane l owns experts e = l + LANES * j, j < kPerLane, in registers.
// The only cross-lane operations are the reductions of the Lanes type (routing_lanes.h).
//
// Tie rule (the same on every backend and every config): a higher selection key wins; equal keys
// go to the lower expert index (groups: lower group index). The reductions compare (key, index)
// pairs with a total order, so the winner does not depend on the reduction tree.
#pragma once
#include "routing/routing_common.h"

// Loops over a lane's experts (PER = E / LANES values): unrolled on the GPU, where they live in
// registers; left to the compiler on the host (one lane, PER = E), where fully unrolling E (and K x E
// nests) makes Clang's compile time grow with E (minutes at E = 256) for no speed.
#if MOEJIT_DEVICE_CODE
#define MOEJIT_UNROLL_EXPERTS _Pragma("unroll")
#else
#define MOEJIT_UNROLL_EXPERTS
#endif

// The simple per-expert loops (no branch across experts, no early exit). The host JIT (Clang)
// runs them a whole 16-float vector at a time over the team's padded array (TokenScores: E rounded
// up to 16 on the host), with no scalar remainder: left to itself it took 32 experts per vector
// iteration and the other 14 of E = 46 one at a time, and those scalar exps were most of a token's
// ~600 cycles (bench/results/2026-12-07-host-emr). Sums go through host_sum16, in a fixed order.
#if MOEJIT_DEVICE_CODE
#define MOEJIT_EXPERT_VECTORS _Pragma("unroll")
#elif defined(__clang__)
#define MOEJIT_EXPERT_VECTORS _Pragma("clang loop vectorize_width(16) interleave_count(1)")
#else
#define MOEJIT_EXPERT_VECTORS
#endif

namespace moejit {

enum RouterScore : int { kScoreSoftmax = 0, kScoreSigmoid = 1 };

// Runtime router options (passed to kernels by value).
struct GateParams {
  int score = kScoreSoftmax;  // RouterScore
  int renormalize = 0;        // 1: the k weights are divided by their sum (+kRenormEps)
  float scaling = 1.0f;       // routed scaling factor applied to the final weights
  int n_groups = 1;           // group-limited routing: E / n_groups experts per group
  int topk_groups = 1;        // groups kept (by the sum of their best two keys)
};

// Gradient-side options: the aux-loss gradient per expert comes precomputed from the plan
// (aux_scale[e] = aux_coef * E * f_e / T); the z-loss gradient scale is z_coef * 2 / T.
struct GateGradParams {
  float z_scale = 0.0f;
  int64 seq_tokens = 0;  // > 0: aux_scale has a row per sequence of this many tokens after the batch's
};

// Token `row`'s sequence-wise aux-gradient row (routing_plan.h), null without one.
template <int E>
MOEJIT_HD const float* sequence_aux_row(const float* aux_scale, const GateGradParams& g, int64 row) {
  return aux_scale && g.seq_tokens > 0 ? aux_scale + (1 + row / g.seq_tokens) * E : nullptr;
}

inline constexpr float kRenormEps = 1e-20f;

// A host team (one lane, all E experts in memory): the loops below take forms Clang vectorizes.
template <int LANES>
inline constexpr bool kHostTeam = !MOEJIT_DEVICE_CODE && LANES == 1;

// The largest of v[0 .. n) that is not NaN, as its ordered_key (an integer max: it vectorizes,
// where a float max needs -ffast-math); ordered_key(-inf) for none. -0 counts as +0.
MOEJIT_HD int host_max_key(const float* v, int n) {
  const int none = ordered_key(neg_inf_f32());
  int top = none;
  MOEJIT_EXPERT_VECTORS
  for (int i = 0; i < n; ++i) {
    const int k = v[i] == v[i] ? ordered_key(v[i] + 0.0f) : none;
    top = k > top ? k : top;
  }
  return top;
}

// The sum of x[0 .. N), N a multiple of 16, for a host team: 16 running sums (one vector), then a
// halving tree. A fixed order, in vectors: Clang keeps a plain loop's sum in order, one dependent
// scalar add per expert (46 of them, 4 cycles each, for every token's softmax and its backward).
template <int N>
MOEJIT_HD float host_sum16(const float* x) {
  static_assert(N % 16 == 0, "a host team's arrays are padded to whole 16-float vectors");
  float part[16];
  for (int i = 0; i < 16; ++i) part[i] = x[i];
  for (int j = 16; j < N; j += 16)
    for (int i = 0; i < 16; ++i) part[i] += x[j + i];
  for (int w = 8; w >= 1; w /= 2)
    for (int i = 0; i < w; ++i) part[i] += part[i + w];
  return part[0];
}

// Per-token scores held by one lane: logits, scores and the lse of the logits. A host team's arrays
// are padded to whole 16-float vectors (slots past E hold the padding values below).
template <int E, int LANES>
struct TokenScores {
  static constexpr int kPerLane = kHostTeam<LANES> ? (E + 15) / 16 * 16 : (E + LANES - 1) / LANES;
  float score[kPerLane];    // softmax probability or sigmoid; 0 for padding slots
  float softmax[kPerLane];  // softmax probability (== score for softmax routers)
  float lse;                // log-sum-exp of the logits (z-loss)
};

template <int E, class Lanes>
MOEJIT_HD void compute_scores(const float* logits, int score_fn, const Lanes& lanes, bool active,
                              TokenScores<E, Lanes::kCount>& out) {
  constexpr int LANES = Lanes::kCount, PER = TokenScores<E, LANES>::kPerLane;
  float logit[PER];
  float local_max = neg_inf_f32();
  if constexpr (kHostTeam<LANES>) {
    MOEJIT_EXPERT_VECTORS
    for (int j = 0; j < PER; ++j) logit[j] = active && j < E ? logits[j] : neg_inf_f32();
    local_max = from_ordered_key(host_max_key(logit, PER));
  } else {
    MOEJIT_UNROLL_EXPERTS
    for (int j = 0; j < PER; ++j) {
      const int e = lanes.lane() + LANES * j;
      logit[j] = (active && e < E) ? logits[e] : neg_inf_f32();
      local_max = logit[j] > local_max ? logit[j] : local_max;
    }
  }
  const float max = lanes.max(active ? local_max : 0.0f);
  // One loop per step (no sum, no branch inside the exp loop), so that the host vectorizes them.
  MOEJIT_EXPERT_VECTORS
  for (int j = 0; j < PER; ++j) out.softmax[j] = exp_f32(logit[j] - max);  // exp(-inf) = 0 for padding slots
  float local_sum = 0.0f;
  if constexpr (kHostTeam<LANES>) {
    local_sum = host_sum16<PER>(out.softmax);
  } else {
    MOEJIT_UNROLL_EXPERTS
    for (int j = 0; j < PER; ++j) local_sum += out.softmax[j];
  }
  const float sum = lanes.sum(local_sum);
  const float safe_sum = sum > 0.0f ? sum : 1.0f;
  out.lse = max + log_f32(safe_sum);
  MOEJIT_EXPERT_VECTORS
  for (int j = 0; j < PER; ++j) out.softmax[j] = out.softmax[j] / safe_sum;
  if (score_fn == kScoreSigmoid) {
    MOEJIT_EXPERT_VECTORS
    for (int j = 0; j < PER; ++j) {
      const int e = lanes.lane() + LANES * j;
      out.score[j] = (active && e < E) ? 1.0f / (1.0f + exp_f32(-logit[j])) : 0.0f;
    }
  } else {
    MOEJIT_EXPERT_VECTORS
    for (int j = 0; j < PER; ++j) out.score[j] = out.softmax[j];
  }
}

// The host's top-k round (one lane holds all E keys, padded to N): the expert that key_beats ranks
// first among keys that are neither -inf (taken, masked, padding) nor NaN, or E if there is none.
// One max over (key, N - 1 - index) packed in an int64, which vectorizes, instead of a scan that
// branches on every key: the same winner, since a higher key wins and equal keys go to the lower
// index (-0 is taken as +0 first, as the float comparison of key_beats has them equal).
template <int E, int N>
MOEJIT_HD int host_best_expert(const float* key) {
  const int64 kNone = int64(ordered_key(neg_inf_f32())) * (int64(1) << 32);
  int64 top = kNone;
  MOEJIT_EXPERT_VECTORS
  for (int e = 0; e < N; ++e) {
    const int64 k = key[e] == key[e] ? int64(ordered_key(key[e] + 0.0f)) * (int64(1) << 32) + (N - 1 - e) : kNone;
    top = k > top ? k : top;
  }
  return top < kNone + N ? E : N - 1 - int(top & 0xffffffff);
}

// Forward for one token. Outputs: index[K] and weight[K] in selection order (best first), written
// by lane r % LANES for slot r; probs[E] (router scores, optional) and *lse (optional).
template <int E, int K, class Lanes>
MOEJIT_HD void gate_token_forward(const float* logits, const float* bias, const GateParams& p, const Lanes& lanes,
                                  bool active, int* index, float* weight, float* probs, float* lse) {
  constexpr int LANES = Lanes::kCount, PER = TokenScores<E, LANES>::kPerLane;
  TokenScores<E, LANES> s;
  compute_scores<E>(logits, p.score, lanes, active, s);
  const int lane = lanes.lane();

  // Selection keys: score + bias; -inf marks experts that cannot be chosen (padding, masked, taken).
  float key[PER];
  MOEJIT_EXPERT_VECTORS
  for (int j = 0; j < PER; ++j) {
    const int e = lane + LANES * j;
    key[j] = (active && e < E) ? s.score[j] + (bias ? bias[e] : 0.0f) : neg_inf_f32();
  }

  if (p.n_groups > 1) {
    // Group score = sum of the best two keys inside the group; keep the topk_groups best groups.
    const int group_size = E / p.n_groups;
    unsigned keep = 0;  // bit g set: group g kept (n_groups <= 32)
    float group_score[32];
    for (int g = 0; g < p.n_groups; ++g) {
      float best1 = neg_inf_f32(), best2 = neg_inf_f32();
      int i1 = E, i2 = E;
      MOEJIT_UNROLL_EXPERTS
      for (int j = 0; j < PER; ++j) {
        const int e = lane + LANES * j;
        if (e / group_size != g || key[j] == neg_inf_f32()) continue;
        if (key_beats(key[j], e, best1, i1)) {
          best2 = best1, i2 = i1, best1 = key[j], i1 = e;
        } else if (key_beats(key[j], e, best2, i2)) {
          best2 = key[j], i2 = e;
        }
      }
      lanes.top2(best1, i1, best2, i2);
      group_score[g] = group_size >= 2 ? best1 + best2 : best1;
    }
    for (int r = 0; r < p.topk_groups; ++r) {
      int best = -1;
      for (int g = 0; g < p.n_groups; ++g)
        if (!(keep >> g & 1u) && (best < 0 || key_beats(group_score[g], g, group_score[best], best))) best = g;
      keep |= 1u << best;
    }
    MOEJIT_UNROLL_EXPERTS
    for (int j = 0; j < PER; ++j) {
      const int e = lane + LANES * j;
      if (e < E && !(keep >> (e / group_size) & 1u)) key[j] = neg_inf_f32();
    }
  }

  int chosen[K];
  float chosen_score[K];
  MOEJIT_UNROLL
  for (int r = 0; r < K; ++r) {
    float best_score = 0.0f;
    int best = E;  // E: "none" (loses to every real expert at equal key)
    if constexpr (kHostTeam<LANES>) {
      best = host_best_expert<E, PER>(key);
      if (best < E) best_score = s.score[best], key[best] = neg_inf_f32();
    } else {
      float best_key = neg_inf_f32();
      MOEJIT_UNROLL_EXPERTS
      for (int j = 0; j < PER; ++j) {
        const int e = lane + LANES * j;
        if (key[j] != neg_inf_f32() && key_beats(key[j], e, best_key, best))
          best_key = key[j], best = e, best_score = s.score[j];
      }
      lanes.argmax(best_key, best, best_score);
      MOEJIT_UNROLL_EXPERTS
      for (int j = 0; j < PER; ++j)
        if (lane + LANES * j == best) key[j] = neg_inf_f32();
    }
    chosen[r] = best;
    chosen_score[r] = best_score;
  }

  float norm = 1.0f;
  if (p.renormalize) {
    float sum = 0.0f;
    MOEJIT_UNROLL
    for (int r = 0; r < K; ++r) sum += chosen_score[r];
    norm = sum + kRenormEps;
  }
  if (active) {
    MOEJIT_UNROLL
    for (int r = 0; r < K; ++r)
      if (r % LANES == lane) {
        index[r] = chosen[r];
        weight[r] = (p.renormalize ? chosen_score[r] / norm : chosen_score[r]) * p.scaling;
      }
    if (probs) {
      MOEJIT_EXPERT_VECTORS
      for (int j = 0; j < PER; ++j)
        if (lane + LANES * j < E) probs[lane + LANES * j] = s.score[j];
    }
    if (lse && lane == 0) *lse = s.lse;
  }
}

// Backward for one token: d_logits[E] from d_weight[K] (optional), the aux-loss terms aux_scale[E] and
// seq_scale[E] (optional; dL/dscore_e of the batch- and sequence-wise balance losses) and the z-loss
// term (g.z_scale * lse * softmax).
// index[K] is the forward's selection; the selection itself has no gradient.
template <int E, int K, class Lanes>
MOEJIT_HD void gate_token_backward(const float* logits, const int* index, const float* d_weight, const float* aux_scale,
                                   const float* seq_scale, const GateParams& p, const GateGradParams& g,
                                   const Lanes& lanes, bool active, float* d_logits) {
  constexpr int LANES = Lanes::kCount, PER = TokenScores<E, LANES>::kPerLane;
  TokenScores<E, LANES> s;
  compute_scores<E>(logits, p.score, lanes, active, s);
  const int lane = lanes.lane();

  float d_score[PER];
  MOEJIT_EXPERT_VECTORS
  for (int j = 0; j < PER; ++j) {
    const int e = lane + LANES * j;
    d_score[j] = (aux_scale && e < E) ? aux_scale[e] : 0.0f;
    if (seq_scale && e < E) d_score[j] = add_rn(d_score[j], seq_scale[e]);
  }
  if (d_weight) {
    int chosen[K];
    float dw[K];
    MOEJIT_UNROLL
    for (int r = 0; r < K; ++r) {
      chosen[r] = active ? index[r] : E;
      dw[r] = active ? d_weight[r] : 0.0f;
    }
    // Renormalised: w_r = c * s_r / Z, Z = sum s + eps -> ds_m = c * (dw_m / Z - sum_r dw_r s_r / Z^2).
    // The GPU scans its register arrays (compile-time indices); the host (one lane, arrays in
    // memory) indexes the chosen experts directly. Same operations in the same order either way.
    float z = 0.0f, dot = 0.0f;
    if (p.renormalize) {
      float local_z = 0.0f, local_dot = 0.0f;
      MOEJIT_UNROLL
      for (int r = 0; r < K; ++r) {
        if constexpr (kHostTeam<LANES>) {
          if (chosen[r] < E) local_z += s.score[chosen[r]], local_dot += dw[r] * s.score[chosen[r]];
        } else {
          MOEJIT_UNROLL_EXPERTS
          for (int j = 0; j < PER; ++j)
            if (lane + LANES * j == chosen[r]) local_z += s.score[j], local_dot += dw[r] * s.score[j];
        }
      }
      z = lanes.sum(local_z) + kRenormEps;
      dot = lanes.sum(local_dot);
    }
    MOEJIT_UNROLL
    for (int r = 0; r < K; ++r) {
      if constexpr (kHostTeam<LANES>) {
        if (chosen[r] < E) d_score[chosen[r]] += p.scaling * (p.renormalize ? dw[r] / z - dot / (z * z) : dw[r]);
      } else {
        MOEJIT_UNROLL_EXPERTS
        for (int j = 0; j < PER; ++j)
          if (lane + LANES * j == chosen[r])
            d_score[j] += p.scaling * (p.renormalize ? dw[r] / z - dot / (z * z) : dw[r]);
      }
    }
  }

  float d_logit[PER];
  if (p.score == kScoreSigmoid) {
    MOEJIT_EXPERT_VECTORS
    for (int j = 0; j < PER; ++j) d_logit[j] = d_score[j] * s.score[j] * (1.0f - s.score[j]);
  } else {
    float local_dot = 0.0f;
    if constexpr (kHostTeam<LANES>) {
      float product[PER];
      MOEJIT_EXPERT_VECTORS
      for (int j = 0; j < PER; ++j) product[j] = d_score[j] * s.score[j];
      local_dot = host_sum16<PER>(product);
    } else {
      MOEJIT_UNROLL_EXPERTS
      for (int j = 0; j < PER; ++j) local_dot += d_score[j] * s.score[j];
    }
    const float dot = lanes.sum(local_dot);
    MOEJIT_EXPERT_VECTORS
    for (int j = 0; j < PER; ++j) d_logit[j] = s.score[j] * (d_score[j] - dot);
  }
  if (g.z_scale != 0.0f) {
    MOEJIT_EXPERT_VECTORS
    for (int j = 0; j < PER; ++j) d_logit[j] += g.z_scale * s.lse * s.softmax[j];
  }
  if (active) {
    MOEJIT_EXPERT_VECTORS
    for (int j = 0; j < PER; ++j)
      if (lane + LANES * j < E) d_logits[lane + LANES * j] = d_logit[j];
  }
}

}  // namespace moejit
