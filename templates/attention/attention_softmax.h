// Causal ALiBi softmax over the rows of attention scores, forward and backward, written once for
// both backends: the host backend runs a row per call (SingleLane); the GPU wrapper
// (attention_softmax_cuda.cuh) gives each row to a warp (WarpLanes<32>), lane l owning the columns
// l, l + 32, ... Layout: one (sequence, head) group holds an (S, S) block of rows; row t is query t.
//   forward   z_s = scale * scores_s - slope * (t - s);  probs_s = exp(z_s - max z) / sum, for s <= t
//   backward  d_scores_s = scale * probs_s * (d_probs_s - sum_j probs_j d_probs_j), for s <= t
// Both write 0 for s > t (the masked future), so the products that read a whole row need no mask.
// In place is allowed (probs may alias scores, d_scores d_probs). Arithmetic in fp32. The host JIT
// runs it inside the attention_scores product (host/grouped_gemm_families.h), vectorized: the loops
// carry MOEJIT_VECTORIZE, and exp and the max are written so that Clang can widen them.
#pragma once
#include "common/host_device.h"
#include "routing/routing_lanes.h"  // SingleLane, WarpLanes: a team of lanes owning one row

namespace moejit {

// ALiBi's geometric slopes m_h = 2^(-8 (h + 1) / H).
MOEJIT_HD float alibi_slope_f32(int head, int heads) {
  return exp_f32(-0.6931471805599453f * 8.0f * float(head + 1) / float(heads));
}

template <typename T, class Lanes>
MOEJIT_HD void alibi_softmax_row(const Lanes& lanes, const T* scores, T* probs, int64 t, int64 S, float scale,
                                 float slope) {
  int key = ordered_key(bits_to_float(0xff800000u));  // -inf
  MOEJIT_VECTORIZE
  for (int64 s = lanes.lane(); s <= t; s += Lanes::kCount) {
    const int z = ordered_key(scale * to_float(scores[s]) - slope * float(t - s));
    key = z > key ? z : key;
  }
  const float mx = lanes.max(from_ordered_key(key));
  float sum = 0.0f;
  MOEJIT_VECTORIZE
  for (int64 s = lanes.lane(); s <= t; s += Lanes::kCount) {
    const float e = exp_f32(scale * to_float(scores[s]) - slope * float(t - s) - mx);
    probs[s] = from_float<T>(e);
    sum += e;
  }
  const float inv = 1.0f / lanes.sum(sum);
  MOEJIT_VECTORIZE
  for (int64 s = lanes.lane(); s < S; s += Lanes::kCount)
    probs[s] = from_float<T>(s <= t ? to_float(probs[s]) * inv : 0.0f);
}

template <typename T, class Lanes>
MOEJIT_HD void alibi_softmax_row_bwd(const Lanes& lanes, const T* probs, const T* d_probs, T* d_scores, int64 t,
                                     int64 S, float scale) {
  float dot = 0.0f;
  MOEJIT_VECTORIZE
  for (int64 s = lanes.lane(); s <= t; s += Lanes::kCount) dot += to_float(probs[s]) * to_float(d_probs[s]);
  dot = lanes.sum(dot);
  MOEJIT_VECTORIZE
  for (int64 s = lanes.lane(); s < S; s += Lanes::kCount)
    d_scores[s] = from_float<T>(s <= t ? scale * to_float(probs[s]) * (to_float(d_probs[s]) - dot) : 0.0f);
}

}  // namespace moejit
