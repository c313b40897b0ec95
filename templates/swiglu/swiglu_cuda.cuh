// SwiGLU GPU wrapper: a grid-stride loop over (row, vector) pairs calling the shared per-vector code.
//   fwd: gate_up (rows, 2F) -> out (rows, F)
//   bwd: gate_up (rows, 2F), dh (rows, F) -> d_gate_up (rows, 2F)
// Indices are 32-bit (a 64-bit division is a called subroutine with stack spills); the launcher
// splits calls with more than 2^31 vectors into row chunks.
#pragma once
#include "swiglu/swiglu.h"

namespace moejit {

template <typename T, int VEC, int THREADS>
__global__ void __launch_bounds__(THREADS)
    swiglu_fwd_kernel(const T* __restrict__ gate_up, T* __restrict__ out, unsigned rows, unsigned width) {
  const unsigned per_row = width / VEC, total = rows * per_row;
  for (unsigned i = blockIdx.x * THREADS + threadIdx.x; i < total; i += gridDim.x * THREADS) {
    unsigned row = i / per_row;
    swiglu_forward_vec<T, VEC>(gate_up, out, row, (i - row * per_row) * VEC, width);
  }
}

template <typename T, int VEC, int THREADS>
__global__ void __launch_bounds__(THREADS) swiglu_bwd_kernel(const T* __restrict__ gate_up, const T* __restrict__ dh,
                                                             T* __restrict__ d_gate_up, unsigned rows, unsigned width) {
  const unsigned per_row = width / VEC, total = rows * per_row;
  for (unsigned i = blockIdx.x * THREADS + threadIdx.x; i < total; i += gridDim.x * THREADS) {
    unsigned row = i / per_row;
    swiglu_backward_vec<T, VEC>(gate_up, dh, d_gate_up, row, (i - row * per_row) * VEC, width);
  }
}

}  // namespace moejit
