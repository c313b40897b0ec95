// GPU wrapper of the softmax cross-entropy (cross_entropy.h): one warp per row, WARPS rows per block,
// a grid-stride loop over the rows. The forward writes each row's loss; the mean is a fixed-order sum
// (partial_sum_kernel + finish_sum_kernel with scale 1/N, common/reduce_cuda.cuh), so the loss stays
// on the device until the trainer logs it.
//   fwd: logits (rows, V), targets (rows, i32) -> probs (rows, V), row_loss (rows, fp32)
//   bwd: probs, targets -> d_logits (rows, V) = scale * (probs - onehot)
#pragma once
#include "common/reduce_cuda.cuh"
#include "loss/cross_entropy.h"

namespace moejit {

template <typename T, typename P, int WARPS>
__global__ void __launch_bounds__(WARPS * 32)
    cross_entropy_fwd_kernel(P* __restrict__ probs, float* __restrict__ row_loss, const T* __restrict__ logits,
                             const int* __restrict__ targets, unsigned rows, unsigned V) {
  const WarpLanes<32> lanes(threadIdx.x % 32);
  for (unsigned row = blockIdx.x * WARPS + threadIdx.x / 32; row < rows; row += gridDim.x * WARPS) {
    const float loss = cross_entropy_row(lanes, logits + size_t(row) * V, probs + size_t(row) * V, targets[row], V);
    if (lanes.lane() == 0) row_loss[row] = loss;
  }
}

template <typename T, typename P, int WARPS>
__global__ void __launch_bounds__(WARPS * 32)
    cross_entropy_bwd_kernel(T* __restrict__ d_logits, const P* __restrict__ probs, const int* __restrict__ targets,
                             unsigned rows, unsigned V, float scale) {
  const WarpLanes<32> lanes(threadIdx.x % 32);
  for (unsigned row = blockIdx.x * WARPS + threadIdx.x / 32; row < rows; row += gridDim.x * WARPS)
    cross_entropy_row_bwd(lanes, probs + size_t(row) * V, d_logits + size_t(row) * V, targets[row], V, scale);
}

}  // namespace moejit
