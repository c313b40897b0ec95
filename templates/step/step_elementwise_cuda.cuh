// GPU wrappers of the step's per-element ops (step_elementwise.h): a thread per element (per column
// for the embedding backward), grid-stride over n. `out` may alias `in` for scale and convert of one
// type, so those pointers are not __restrict__.
#pragma once
#include "step/step_elementwise.h"

namespace moejit {

#define MOEJIT_GRID_STRIDE(i, n) \
  for (unsigned long long i = blockIdx.x * THREADS + threadIdx.x; i < (n); i += gridDim.x * THREADS)

template <typename T, int THREADS>
__global__ void __launch_bounds__(THREADS)
    embedding_fwd_kernel(T* __restrict__ out, const int* __restrict__ tokens, const T* __restrict__ wte,
                         unsigned long long n, unsigned long long C) {
  MOEJIT_GRID_STRIDE(i, n) embedding_fwd_element(out, tokens, wte, int64(i), int64(C));
}

// A thread per column of d_wte (n = C).
template <typename T, int THREADS>
__global__ void __launch_bounds__(THREADS)
    embedding_bwd_kernel(T* __restrict__ d_wte, const T* __restrict__ d_out, const int* __restrict__ tokens,
                         unsigned long long N, unsigned long long C) {
  MOEJIT_GRID_STRIDE(c, C) embedding_bwd_column(d_wte, d_out, tokens, int64(N), int64(C), int64(c));
}

template <typename T, int THREADS>
__global__ void __launch_bounds__(THREADS) add_kernel(T* out, const T* in, unsigned long long n) {
  MOEJIT_GRID_STRIDE(i, n) add_element(out, in, int64(i));
}

template <typename T, int THREADS>
__global__ void __launch_bounds__(THREADS) scale_kernel(T* out, const T* in, unsigned long long n, float alpha) {
  MOEJIT_GRID_STRIDE(i, n) scale_element(out, in, int64(i), alpha);
}

template <typename Out, typename In, int THREADS>
__global__ void __launch_bounds__(THREADS) convert_kernel(Out* out, const In* in, unsigned long long n) {
  MOEJIT_GRID_STRIDE(i, n) convert_element(out, in, int64(i));
}

// A thread per rotated pair (n = B*S * 2 * H * hd/2).
template <typename T, int THREADS>
__global__ void __launch_bounds__(THREADS) rope_kernel(T* __restrict__ qkv, unsigned long long n, unsigned long long S,
                                                       unsigned long long C, unsigned long long H, int inverse) {
  MOEJIT_GRID_STRIDE(p, n) rope_pair(qkv, int64(p), int64(S), int64(C), int64(H), inverse != 0);
}

#undef MOEJIT_GRID_STRIDE

}  // namespace moejit
