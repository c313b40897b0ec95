// The training step's per-element ops that have no row structure, written once for the host and the
// GPU (step_elementwise_cuda.cuh wraps them; tests/templates/step_elementwise_test.cpp runs them on
// the host against double references):
//   embedding forward   out (N, C) = wte[tokens] (V, C)
//   embedding backward  d_wte[v, c] += sum of d_out[i, c] over the rows i with tokens[i] == v, in row
//                       order: one owner per column, so the sum has a fixed order and needs no atomics
//   add, scale          out += in;  out = alpha * in
// Arithmetic in fp32 whatever the storage type.
#pragma once
#include "common/host_device.h"

namespace moejit {

template <typename T>
MOEJIT_HD void embedding_fwd_element(T* out, const int* tokens, const T* wte, int64 i, int64 C) {
  const int64 row = i / C, c = i % C;
  out[i] = wte[int64(tokens[row]) * C + c];
}

// Column c of d_wte: every row of d_out in order.
template <typename T>
MOEJIT_HD void embedding_bwd_column(T* d_wte, const T* d_out, const int* tokens, int64 N, int64 C, int64 c) {
  for (int64 i = 0; i < N; ++i) {
    T* dst = d_wte + int64(tokens[i]) * C + c;
    *dst = from_float<T>(to_float(*dst) + to_float(d_out[i * C + c]));
  }
}

template <typename T>
MOEJIT_HD void add_element(T* out, const T* in, int64 i) {
  out[i] = from_float<T>(to_float(out[i]) + to_float(in[i]));
}
// Counters (the MoE layers' loads) add exactly, not through float.
MOEJIT_HD void add_element(int* out, const int* in, int64 i) {
  out[i] += in[i];
}

template <typename T>
MOEJIT_HD void scale_element(T* out, const T* in, int64 i, float alpha) {
  out[i] = from_float<T>(alpha * to_float(in[i]));
}

template <typename Out, typename In>
MOEJIT_HD void convert_element(Out* out, const In* in, int64 i) {
  out[i] = from_float<Out>(to_float(in[i]));
}

}  // namespace moejit
