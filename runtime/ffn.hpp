// SwiGLU feed-forward on a StepBackend: the dense layer and the MoE layer's shared expert.
// gate_up (N, 2F) = x (N, C) @ w_up^T, w_up (2F, C) = [gate | up];  h (N, F) = silu(gate) * up;
// out (N, C) = h @ w_down^T, w_down (C, F).
#pragma once
#include "profile.hpp"
#include "step_backend.hpp"

namespace moejit::runtime {

struct FfnActivations {
  Buffer gate_up, h;      // saved for the backward
  Buffer d_h, d_gate_up;  // scratch
};

template <typename T>
void ffn_forward(StepBackend<T>& be, Profiler* prof, FfnActivations& a, TypedPtr out, TypedPtr x, TypedPtr w_up,
                 TypedPtr w_down, i64 N, i64 C, i64 F) {
  const DType act = be.precision().compute;
  ensure(a.gate_up, be, act, N * 2 * F);
  ensure(a.h, be, act, N * F);
  {
    auto t = timed(prof, "ffn.up");
    be.matmul_fwd(a.gate_up, x, w_up, N, C, 2 * F);
  }
  {
    auto t = timed(prof, "ffn.swiglu");
    be.swiglu_fwd(a.h, a.gate_up, N, F);
  }
  auto t = timed(prof, "ffn.down");
  be.matmul_fwd(out, a.h, w_down, N, F, C);
}

// dx (N, C) = (or += when accumulate) ...; dw_up, dw_down += ....
template <typename T>
void ffn_backward(StepBackend<T>& be, Profiler* prof, FfnActivations& a, TypedPtr dx, bool accumulate, TypedPtr dw_up,
                  TypedPtr dw_down, TypedPtr dout, TypedPtr x, TypedPtr w_up, TypedPtr w_down, i64 N, i64 C, i64 F) {
  const DType act = be.precision().compute;
  ensure(a.d_h, be, act, N * F);
  ensure(a.d_gate_up, be, act, N * 2 * F);
  {
    auto t = timed(prof, "ffn.down");  // with the SwiGLU backward (fused into the product on the host)
    be.ffn_down_bwd_swiglu(a.d_gate_up, a.d_h, dw_down, dout, a.h, w_down, a.gate_up, N, F, C);
  }
  auto t = timed(prof, "ffn.up");
  be.matmul_bwd(dx, accumulate, dw_up, a.d_gate_up, x, w_up, N, C, 2 * F);
}

}  // namespace moejit::runtime
