// SwiGLU feed-forward: the dense layer and the MoE layer's shared expert.
// gate_up (N, 2F) = x (N, C) @ w_up^T, w_up (2F, C) = [gate | up];  h (N, F) = silu(gate) * up;
// out (N, C) = h @ w_down^T, w_down (C, F).
#pragma once
#include <vector>

#include "ops.hpp"
#include "profile.hpp"

namespace moejit::runtime {

template <typename T>
struct FfnActivations {
  std::vector<T> gate_up, h;      // saved for the backward
  std::vector<T> d_h, d_gate_up;  // scratch
};

template <typename T>
void ffn_forward(ThreadPool& par, Profiler* prof, FfnActivations<T>& a, T* out, const T* x, const T* w_up,
                 const T* w_down, i64 N, i64 C, i64 F) {
  a.gate_up.resize(N * 2 * F);
  a.h.resize(N * F);
  {
    auto t = timed(prof, "ffn.up");
    matmul_forward(par, a.gate_up.data(), x, w_up, N, C, 2 * F);
  }
  {
    auto t = timed(prof, "ffn.swiglu");
    swiglu_rows_forward(a.h.data(), a.gate_up.data(), N, F);
  }
  auto t = timed(prof, "ffn.down");
  matmul_forward(par, out, a.h.data(), w_down, N, F, C);
}

// dx (N, C) += ...; dw_up, dw_down += ....
template <typename T>
void ffn_backward(ThreadPool& par, Profiler* prof, FfnActivations<T>& a, T* dx, T* dw_up, T* dw_down, const T* dout,
                  const T* x, const T* w_up, const T* w_down, i64 N, i64 C, i64 F) {
  a.d_h.assign(N * F, T(0));
  a.d_gate_up.resize(N * 2 * F);
  {
    auto t = timed(prof, "ffn.down");
    matmul_backward(par, a.d_h.data(), dw_down, dout, a.h.data(), w_down, N, F, C);
  }
  {
    auto t = timed(prof, "ffn.swiglu");
    swiglu_rows_backward(a.d_gate_up.data(), a.d_h.data(), a.gate_up.data(), N, F);
  }
  auto t = timed(prof, "ffn.up");
  matmul_backward(par, dx, dw_up, a.d_gate_up.data(), x, w_up, N, C, 2 * F);
}

}  // namespace moejit::runtime
