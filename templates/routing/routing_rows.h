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
    const float w = weight ? weight[r] : 1.0f;  // x * 1 is exact: the unweighted sum is unchanged
    MOEJIT_UNROLL
    for (int i = 0; i < VEC; ++i) acc[i] = add_rn(acc[i], mul_rn(w, to_float(v.v[i])));
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

// Host forms of scatter_vec / gather_vec for whole rows: the same operations on every element, in
// the same order (combine: acc = 0, += w_r * y[slot_r] in choice order, += shared, one rounding),
// but with the choice loop outside a branch-free column loop, which Clang vectorises (AVX2 /
// AVX-512 conversions included). Permute, combine, d_x and d_y are therefore bit-identical to the
// GPU's (RoutingGpu compares them). d_weight's dot product is summed in kDotLanes interleaved
// partial sums, then in lane order: fixed on every compiler, close to the GPU's team reduction.
inline constexpr int kDotLanes = 16;
inline constexpr int kGatherColumns = 512;  // fp32 accumulators per block: 2 KiB, stays in L1

template <typename T, int K>
MOEJIT_HD void scatter_row(const T* __restrict__ x, const int* slot, const float* weight, const T* y, T* dst,
                           int64 width, float* dot) {
  for (int r = 0; r < K; ++r) {
    if (slot[r] < 0) continue;
    T* __restrict__ out = dst + slot[r] * width;
    if (weight) {
      const float w = weight[r];
      for (int64 c = 0; c < width; ++c) out[c] = from_float<T>(mul_rn(w, to_float(x[c])));
    } else {
      for (int64 c = 0; c < width; ++c) out[c] = x[c];
    }
    if (dot) {
      const T* __restrict__ yr = y + slot[r] * width;
      float part[kDotLanes];
      for (int i = 0; i < kDotLanes; ++i) part[i] = 0.0f;
      int64 c = 0;
      for (; c + kDotLanes <= width; c += kDotLanes)
        for (int i = 0; i < kDotLanes; ++i) part[i] = add_rn(part[i], mul_rn(to_float(x[c + i]), to_float(yr[c + i])));
      for (int i = 0; c + i < width; ++i)  // the tail (< kDotLanes columns) into the first lanes
        part[i] = add_rn(part[i], mul_rn(to_float(x[c + i]), to_float(yr[c + i])));
      float sum = dot[r];
      for (int i = 0; i < kDotLanes; ++i) sum = add_rn(sum, part[i]);
      dot[r] = sum;
    }
  }
}

template <typename T, int K>
MOEJIT_HD void gather_row(const T* rows, const int* slot, const float* weight, const T* shared, T* out, int64 width) {
  float acc[kGatherColumns];
  for (int64 begin = 0; begin < width; begin += kGatherColumns) {
    const int64 n = width - begin < kGatherColumns ? width - begin : kGatherColumns;
    for (int64 c = 0; c < n; ++c) acc[c] = 0.0f;
    for (int r = 0; r < K; ++r) {
      if (slot[r] < 0) continue;
      const T* __restrict__ y = rows + slot[r] * width + begin;
      const float w = weight ? weight[r] : 1.0f;  // x * 1 is exact: the unweighted sum is unchanged
      for (int64 c = 0; c < n; ++c) acc[c] = add_rn(acc[c], mul_rn(w, to_float(y[c])));
    }
    if (shared)
      for (int64 c = 0; c < n; ++c) acc[c] = add_rn(acc[c], to_float(shared[begin + c]));
    T* __restrict__ o = out + begin;
    for (int64 c = 0; c < n; ++c) o[c] = from_float<T>(acc[c]);
  }
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
