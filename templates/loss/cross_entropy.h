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
  int key = ordered_key(neg_inf_f32());  // the max as an integer max: it vectorizes on the host
  MOEJIT_VECTORIZE
  for (int64 v = lanes.lane(); v < V; v += Lanes::kCount) {
    const int z = ordered_key(to_float(logits[v]));
    key = z > key ? z : key;
  }
  const float mx = lanes.max(from_ordered_key(key));
  float sum = 0.0f;
  MOEJIT_VECTORIZE
  for (int64 v = lanes.lane(); v < V; v += Lanes::kCount) sum += exp_f32(to_float(logits[v]) - mx);
  sum = lanes.sum(sum);
  const float z_target = to_float(logits[target]), inv = 1.0f / sum;
  MOEJIT_VECTORIZE
  for (int64 v = lanes.lane(); v < V; v += Lanes::kCount)
    probs[v] = from_float<P>(exp_f32(to_float(logits[v]) - mx) * inv);
  return log_f32(sum) + mx - z_target;
}

template <typename T, typename P, class Lanes>
MOEJIT_HD void cross_entropy_row_bwd(const Lanes& lanes, const P* probs, T* d_logits, int64 target, int64 V,
                                     float scale) {
  MOEJIT_VECTORIZE
  for (int64 v = lanes.lane(); v < V; v += Lanes::kCount)
    d_logits[v] = from_float<T>(scale * (to_float(probs[v]) - (v == target ? 1.0f : 0.0f)));
}

}  // namespace moejit
