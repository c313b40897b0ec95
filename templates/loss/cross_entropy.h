// Softmax cross-entropy over the rows of (N, V) logits, forward and backward, written once for both
// backends: the host runs a row per call (SingleLane), the GPU wrapper (cross_entropy_cuda.cuh) a
// row per warp (WarpLanes<32>). Arithmetic in fp32 whatever the storage types are.
//   forward   probs_v = exp(z_v - max z) / sum;  row loss = log(sum) + max z - z_target
//             (from the log-sum-exp, not -log(probs_target): exact where probs_target underflows)
//   backward  d_logits_v = scale * (probs_v - [v == target])   (scale carries 1/N and grad scaling)
// The mean over rows is each backend's fixed-order sum of the row losses.
#pragma once
#include "common/host_device.h"
#include "routing/routing_lanes.h"  // SingleLane, WarpLanes: a team of lanes owning one row

namespace moejit {

template <typename T, typename P, class Lanes>
MOEJIT_HD float cross_entropy_row(const Lanes& lanes, const T* logits, P* probs, int64 target, int64 V) {
  float mx = neg_inf_f32();
  for (int64 v = lanes.lane(); v < V; v += Lanes::kCount) mx = to_float(logits[v]) > mx ? to_float(logits[v]) : mx;
  mx = lanes.max(mx);
  float sum = 0.0f, z_target = 0.0f;
  for (int64 v = lanes.lane(); v < V; v += Lanes::kCount) {
    const float z = to_float(logits[v]);
    sum += exp_f32(z - mx);
    if (v == target) z_target = z;
  }
  sum = lanes.sum(sum);
  z_target = lanes.sum(z_target);  // exactly one lane holds it; the others add 0
  const float inv = 1.0f / sum;
  for (int64 v = lanes.lane(); v < V; v += Lanes::kCount)
    probs[v] = from_float<P>(exp_f32(to_float(logits[v]) - mx) * inv);
  return log_f32(sum) + mx - z_target;
}

template <typename T, typename P, class Lanes>
MOEJIT_HD void cross_entropy_row_bwd(const Lanes& lanes, const P* probs, T* d_logits, int64 target, int64 V,
                                     float scale) {
  for (int64 v = lanes.lane(); v < V; v += Lanes::kCount)
    d_logits[v] = from_float<T>(scale * (to_float(probs[v]) - (v == target ? 1.0f : 0.0f)));
}

}  // namespace moejit
