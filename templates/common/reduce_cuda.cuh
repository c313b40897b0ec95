// Deterministic sums on the GPU, shared by the step's reductions (loss mean, gradient norm, RMSNorm's
// d_w): every sum runs in a fixed order for a fixed launch shape (grid-stride per thread, then a
// shared-memory tree, then one block over the per-block partials), never with float atomics, so a
// step replayed from a CUDA graph gives the bits of the eager step.
#pragma once
#include "common/host_device.h"

namespace moejit {

template <int THREADS>
__device__ float block_sum(float v) {
  static_assert(THREADS >= 32 && THREADS <= 1024 && (THREADS & (THREADS - 1)) == 0, "a power-of-two block");
  __shared__ float s[THREADS];
  s[threadIdx.x] = v;
  __syncthreads();
  for (int o = THREADS / 2; o > 0; o /= 2) {
    if (int(threadIdx.x) < o) s[threadIdx.x] += s[threadIdx.x + o];
    __syncthreads();
  }
  const float total = s[0];
  __syncthreads();  // s may be reused by the caller's next block_sum
  return total;
}

// partials[block] = the sum of in[i] (or in[i]^2) over the block's grid-stride share of [0, n).
template <typename T, int THREADS, bool SQUARES>
__global__ void __launch_bounds__(THREADS) partial_sum_kernel(float* partials, const T* in, unsigned long long n) {
  float sum = 0.0f;
  for (unsigned long long i = blockIdx.x * THREADS + threadIdx.x; i < n; i += gridDim.x * THREADS) {
    const float x = to_float(in[i]);
    sum += SQUARES ? x * x : x;
  }
  sum = block_sum<THREADS>(sum);
  if (threadIdx.x == 0) partials[blockIdx.x] = sum;
}

// What one block makes of the partials' total: a loss accumulates scale * total, a norm is sqrt(total).
enum class SumFinish { add_scaled, sqrt };

// One block: out[0] from partials[0, count).
template <int THREADS, SumFinish FINISH>
__global__ void __launch_bounds__(THREADS)
    finish_sum_kernel(float* out, const float* partials, unsigned count, float scale) {
  float sum = 0.0f;
  for (unsigned i = threadIdx.x; i < count; i += THREADS) sum += partials[i];
  sum = block_sum<THREADS>(sum);
  if (threadIdx.x == 0) out[0] = FINISH == SumFinish::sqrt ? sqrtf(sum) : out[0] + scale * sum;
}

// out (C) += the column sums of partials (R, C), row by row: a thread per column.
template <int THREADS>
__global__ void __launch_bounds__(THREADS)
    column_sum_kernel(float* out, const float* partials, unsigned R, unsigned C) {
  const unsigned c = blockIdx.x * THREADS + threadIdx.x;
  if (c >= C) return;
  float sum = 0.0f;
  for (unsigned r = 0; r < R; ++r) sum += partials[size_t(r) * C + c];
  out[c] += sum;
}

}  // namespace moejit
