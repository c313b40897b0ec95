// GPU wrapper of the causal ALiBi row softmax (attention_softmax.h): one warp per row, WARPS rows per
// block, a grid-stride loop over the B*H*S rows of (S, S) groups; head h = (row / S) % H; alibi 0:
// no bias (after RoPE). In place is allowed (probs may alias scores, d_scores d_probs), so those
// pointers are not __restrict__.
//   fwd: scores (rows, S) -> probs (rows, S)
//   bwd: probs, d_probs (rows, S) -> d_scores (rows, S)
#pragma once
#include "attention/attention_softmax.h"

namespace moejit {

template <typename T, int WARPS>
__global__ void __launch_bounds__(WARPS * 32)
    alibi_softmax_fwd_kernel(const T* scores, T* probs, unsigned rows, unsigned S, unsigned heads, float scale,
                             int alibi) {
  const WarpLanes<32> lanes(threadIdx.x % 32);
  for (unsigned row = blockIdx.x * WARPS + threadIdx.x / 32; row < rows; row += gridDim.x * WARPS) {
    const unsigned t = row % S, head = (row / S) % heads;
    alibi_softmax_row(lanes, scores + size_t(row) * S, probs + size_t(row) * S, t, S, scale,
                      alibi ? alibi_slope_f32(int(head), int(heads)) : 0.0f);
  }
}

template <typename T, int WARPS>
__global__ void __launch_bounds__(WARPS * 32)
    alibi_softmax_bwd_kernel(const T* __restrict__ probs, const T* d_probs, T* d_scores, unsigned rows, unsigned S,
                             float scale) {
  const WarpLanes<32> lanes(threadIdx.x % 32);
  for (unsigned row = blockIdx.x * WARPS + threadIdx.x / 32; row < rows; row += gridDim.x * WARPS)
    alibi_softmax_row_bwd(lanes, probs + size_t(row) * S, d_probs + size_t(row) * S, d_scores + size_t(row) * S,
                          row % S, S, scale);
}

}  // namespace moejit
