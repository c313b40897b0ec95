// Per-expert plan arithmetic and per-row permute / combine code, shared by both backends.
//
// Layouts (T tokens, K choices per token, D = d_model, R = permuted rows incl. padding):
//   index, weight   (T, K)  int32 / fp32: the router's choices
//   slot            (T, K)  int32: permuted row of choice (t, r), or -1 if the token was dropped
//   row_source      (R)     int32: t * K + r of the choice a permuted row holds, -1 for padding
//   offsets         (E + 1) int32: first row of each expert's segment; offsets[E] = R
//   x, dx, out      (T, D)  activations; permuted rows (R, D)
#pragma once
#include "routing/routing_common.h"

namespace moejit {

// Capacity: at most `capacity` rows per expert (the earliest tokens win); -1 means unlimited.
struct ExpertSegment {
  int routed;   // choices routed to the expert
  int kept;     // choices that fit the capacity
  int dropped;  // routed - kept
  int rows;     // kept, padded up to a multiple of pad_to (the GEMM's tile M)
};

MOEJIT_HD ExpertSegment expert_segment(int routed, int capacity, int pad_to) {
  ExpertSegment s;
  s.routed = routed;
  s.kept = (capacity >= 0 && routed > capacity) ? capacity : routed;
  s.dropped = routed - s.kept;
  s.rows = pad_to > 1 ? (s.kept + pad_to - 1) / pad_to * pad_to : s.kept;
  return s;
}

// The slot of a choice given its rank among the choices of its expert (by token index).
MOEJIT_HD int slot_of(int expert_offset, int rank, int capacity) {
  return (capacity >= 0 && rank >= capacity) ? -1 : expert_offset + rank;
}

// Scatter one VEC-wide column vector of token t's row to its K permuted rows:
//   permute forward:  dst[slot] = src[t]                           (weight == nullptr)
//   combine backward: dst[slot] = weight * src[t] (d_out -> d_y),  and dot[r] += <src[t], y[slot]>
// dot (K floats, optional) accumulates the lane's partial dot products for d_weight.
template <typename T, int VEC, int K>
MOEJIT_HD void scatter_vec(const T* src, const int* slot, const float* weight, const T* y, T* dst, int64 t,
                           int64 column, int64 width, float* dot) {
  const Vec<T, VEC> v = load_vec<T, VEC>(src + t * width + column);
  if (dot) {  // all K loads of y first (they may not move past the stores below), then the dots
    Vec<T, VEC> yv[K];
    MOEJIT_UNROLL
    for (int r = 0; r < K; ++r)  // a dropped choice loads its own d_out vector (always valid), unused
      yv[r] = load_vec<T, VEC>(slot[r] >= 0 ? y + slot[r] * width + column : src + t * width + column);
    MOEJIT_UNROLL
    for (int r = 0; r < K; ++r) {
      if (slot[r] < 0) continue;
      float acc = dot[r];
      MOEJIT_UNROLL
      for (int i = 0; i < VEC; ++i) acc = add_rn(acc, mul_rn(to_float(v.v[i]), to_float(yv[r].v[i])));
      dot[r] = acc;
    }
  }
  MOEJIT_UNROLL
  for (int r = 0; r < K; ++r) {
    const int row = slot[r];
    if (row < 0) continue;
    Vec<T, VEC> o;
    if (weight) {
      MOEJIT_UNROLL
      for (int i = 0; i < VEC; ++i) o.v[i] = from_float<T>(mul_rn(weight[r], to_float(v.v[i])));
    } else {
      o = v;
    }
    store_vec<T, VEC>(dst + row * width + column, o);
  }
}

// Gather one VEC-wide column vector of token t's output from its K permuted rows, in choice order:
//   combine forward:  out[t] = sum_r weight[r] * y[slot_r] (+ shared[t])
//   permute backward: dx[t]  = sum_r d_perm[slot_r]                  (weight == nullptr)
// fp32 accumulation in a fixed order: bit-identical on every backend and config.
template <typename T, int VEC, int K>
MOEJIT_HD void gather_vec(const T* rows, const int* slot, const float* weight, const T* shared, T* out, int64 t,
                          int64 column, int64 width) {
  float acc[VEC];
MOEJIT_UNROLL
  for (int i = 0; i < VEC; ++i) acc[i] = 0.0f;
MOEJIT_UNROLL
  for (int r = 0; r < K; ++r) {
    const int row = slot[r];
    if (row < 0) continue;
    const Vec<T, VEC> v = load_vec<T, VEC>(rows + row * width + column);
MOEJIT_UNROLL
    for (int i = 0; i < VEC; ++i) acc[i] = add_rn(acc[i], weight ? mul_rn(weight[r], to_float(v.v[i])) : to_float(v.v[i]));
  }
  if (shared) {
    const Vec<T, VEC> s = load_vec<T, VEC>(shared + t * width + column);
MOEJIT_UNROLL
    for (int i = 0; i < VEC; ++i) acc[i] = add_rn(acc[i], to_float(s.v[i]));
  }
  Vec<T, VEC> o;
MOEJIT_UNROLL
  for (int i = 0; i < VEC; ++i) o.v[i] = from_float<T>(acc[i]);
  store_vec<T, VEC>(out + t * width + column, o);
}

// Zeroes one VEC-wide column vector of a padding row.
template <typename T, int VEC>
MOEJIT_HD void zero_vec(T* dst, int64 row, int64 column, int64 width) {
  Vec<T, VEC> o;
MOEJIT_UNROLL
  for (int i = 0; i < VEC; ++i) o.v[i] = from_float<T>(0.0f);
  store_vec<T, VEC>(dst + row * width + column, o);
}

// Auxiliary-loss-free balancing: b_e += gamma * sign(mean_load - load_e).
MOEJIT_HD float bias_update(float bias, int load, float mean_load, float gamma) {
  const float diff = mean_load - static_cast<float>(load);
  return bias + gamma * static_cast<float>((diff > 0.0f) - (diff < 0.0f));
}

}  // namespace moejit
