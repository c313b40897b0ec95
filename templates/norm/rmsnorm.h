// RMSNorm over the rows of an (N, C) matrix, forward and backward, written once for both backends:
// the host runs a row per call (SingleLane); the GPU wrapper (rmsnorm_cuda.cuh) gives each row to a
// warp (WarpLanes<32>), lane l owning the columns l, l + 32, ... Arithmetic in fp32 whatever T is.
//   forward   r = (mean_j x_j^2 + eps)^-1/2;  out_j = x_j r w_j
//   backward  d_x_j += r w_j g_j - r^3 x_j / C * sum_k w_k g_k x_k;  d_w_j += g_j x_j r
// d_w sums over rows, so it is not a row operation: rmsnorm_dw_term() is its per-element term and
// each backend sums it over rows in a fixed order (the GPU: per-chunk partials, then a column sum).
#pragma once
#include "common/host_device.h"
#include "routing/routing_lanes.h"  // SingleLane, WarpLanes: a team of lanes owning one row

namespace moejit {

// The runtime's epsilon (runtime/ops.hpp kRmsEps), so the backends normalise alike.
constexpr float kRmsNormEps = 1e-5f;

template <typename T, typename W, class Lanes>
MOEJIT_HD float rmsnorm_row(const Lanes& lanes, const T* x, const W* w, T* out, int64 C, float eps) {
  float squares = 0.0f;
  MOEJIT_VECTORIZE
  for (int64 j = lanes.lane(); j < C; j += Lanes::kCount) squares += to_float(x[j]) * to_float(x[j]);
  const float r = 1.0f / sqrt_f32(lanes.sum(squares) / float(C) + eps);
  for (int64 j = lanes.lane(); j < C; j += Lanes::kCount) out[j] = from_float<T>(to_float(x[j]) * r * to_float(w[j]));
  return r;
}

// d_x accumulates (the residual stream's gradient arrives there from two paths).
template <typename T, typename W, class Lanes>
MOEJIT_HD void rmsnorm_row_bwd(const Lanes& lanes, const T* d_out, const T* x, const W* w, float r, T* d_x, int64 C) {
  float wgx = 0.0f;
  MOEJIT_VECTORIZE
  for (int64 j = lanes.lane(); j < C; j += Lanes::kCount) wgx += to_float(w[j]) * to_float(d_out[j]) * to_float(x[j]);
  const float k = r * r * r * lanes.sum(wgx) / float(C);
  for (int64 j = lanes.lane(); j < C; j += Lanes::kCount)
    d_x[j] = from_float<T>(to_float(d_x[j]) + r * to_float(w[j]) * to_float(d_out[j]) - k * to_float(x[j]));
}

template <typename T>
MOEJIT_HD float rmsnorm_dw_term(T d_out, T x, float r) {
  return to_float(d_out) * to_float(x) * r;
}

}  // namespace moejit
