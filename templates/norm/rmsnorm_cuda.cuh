// GPU wrapper of RMSNorm (rmsnorm.h): one warp per row, WARPS rows per block, a grid-stride loop over
// the rows. d_w is summed without atomics: rmsnorm_dw_partial_kernel writes per-chunk column sums
// (chunks of rows_per_chunk rows, grid (ceil(C / THREADS), chunks)), then column_sum_kernel
// (common/reduce_cuda.cuh) adds them to d_w in chunk order.
//   fwd:    x (rows, C), w (C) -> out (rows, C), rstd (rows, fp32)
//   bwd:    d_out, x, w, rstd -> d_x (rows, C) +=
//   dw:     d_out, x, rstd -> partials (chunks, C)
#pragma once
#include "common/reduce_cuda.cuh"
#include "norm/rmsnorm.h"

namespace moejit {

template <typename T, typename W, int WARPS>
__global__ void __launch_bounds__(WARPS * 32)
    rmsnorm_fwd_kernel(T* __restrict__ out, float* __restrict__ rstd, const T* __restrict__ x,
                       const W* __restrict__ w, unsigned rows, unsigned C, float eps) {
  const WarpLanes<32> lanes(threadIdx.x % 32);
  for (unsigned row = blockIdx.x * WARPS + threadIdx.x / 32; row < rows; row += gridDim.x * WARPS) {
    const float r = rmsnorm_row(lanes, x + size_t(row) * C, w, out + size_t(row) * C, C, eps);
    if (lanes.lane() == 0) rstd[row] = r;
  }
}

template <typename T, typename W, int WARPS>
__global__ void __launch_bounds__(WARPS * 32)
    rmsnorm_bwd_kernel(T* __restrict__ d_x, const T* __restrict__ d_out, const T* __restrict__ x,
                       const W* __restrict__ w, const float* __restrict__ rstd, unsigned rows, unsigned C) {
  const WarpLanes<32> lanes(threadIdx.x % 32);
  for (unsigned row = blockIdx.x * WARPS + threadIdx.x / 32; row < rows; row += gridDim.x * WARPS)
    rmsnorm_row_bwd(lanes, d_out + size_t(row) * C, x + size_t(row) * C, w, rstd[row], d_x + size_t(row) * C, C);
}

template <typename T, int THREADS>
__global__ void __launch_bounds__(THREADS)
    rmsnorm_dw_partial_kernel(float* __restrict__ partials, const T* __restrict__ d_out, const T* __restrict__ x,
                              const float* __restrict__ rstd, unsigned rows, unsigned C, unsigned rows_per_chunk) {
  const unsigned c = blockIdx.x * THREADS + threadIdx.x;
  if (c >= C) return;
  const unsigned first = blockIdx.y * rows_per_chunk;
  const unsigned last = first + rows_per_chunk < rows ? first + rows_per_chunk : rows;
  float sum = 0.0f;
  for (unsigned row = first; row < last; ++row)
    sum += rmsnorm_dw_term(d_out[size_t(row) * C + c], x[size_t(row) * C + c], rstd[row]);
  partials[size_t(blockIdx.y) * C + c] = sum;
}

}  // namespace moejit
