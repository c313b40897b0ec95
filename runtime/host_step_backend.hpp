// The host backend: process memory; the step's products on JIT-compiled host GEMM kernels with
// configs from the tuning cache (the MoE layer's 14 steps: jit_host_moe_kernels.hpp; the dense
// matmuls and attention: host_dense_ops.hpp), the causal ALiBi softmax on the per-row code it shares
// with the GPU, the dense FFN's SwiGLU on the host SwiGLU kernels, RMSNorm, cross-entropy, the
// residual adds and the optimizer on the JIT step ops (host_step_ops.hpp, the per-row code the GPU
// runs too), and the reference loops for the rest (embedding, RoPE, scaling, counters).
// Only built with MOEJIT_WITH_LLVM.
#pragma once
#include "backend_choice.hpp"
#include "host_dense_ops.hpp"
#include "host_step_ops.hpp"
#include "jit_host_moe_kernels.hpp"
#include "reference_step_backend.hpp"

namespace moejit::runtime {

class HostStepBackend final : public ReferenceStepBackend<float> {
 public:
  HostStepBackend(ThreadPool& par, const BackendOptions& options = {});

  std::string name() const override { return "host"; }
  MoeKernels<float>& moe() override { return moe_; }
  // The kernels that ran: the MoE steps (none for a dense model), then the dense products.
  std::vector<KernelChoice> kernel_choices() const override;

  void matmul_fwd(TypedPtr out, TypedPtr in, TypedPtr w, i64 N, i64 C, i64 OC) override {
    dense_.matmul_fwd(out.as<float>(), in.as<float>(), w.as<float>(), N, C, OC);
  }
  void matmul_bwd(TypedPtr d_in, bool accumulate, TypedPtr d_w, TypedPtr d_out, TypedPtr in, TypedPtr w, i64 N, i64 C,
                  i64 OC) override {
    dense_.matmul_bwd(d_in.as<float>(), accumulate, d_w.as<float>(), d_out.as<float>(), in.as<float>(), w.as<float>(),
                      N, C, OC);
  }
  void attention_fwd(TypedPtr out, TypedPtr att, TypedPtr qkv, i64 B, i64 S, i64 C, i64 H, bool alibi) override {
    dense_.attention_fwd(out.as<float>(), att.as<float>(), qkv.as<float>(), B, S, C, H, alibi);
  }
  void attention_bwd(TypedPtr d_qkv, TypedPtr d_out, TypedPtr qkv, TypedPtr att, i64 B, i64 S, i64 C, i64 H) override {
    dense_.attention_bwd(d_qkv.as<float>(), d_out.as<float>(), qkv.as<float>(), att.as<float>(), B, S, C, H);
  }

  void swiglu_fwd(TypedPtr h, TypedPtr gate_up, i64 N, i64 F) override {
    dense_.swiglu_fwd(h.as<float>(), gate_up.as<float>(), N, F);
  }
  void swiglu_bwd(TypedPtr d_gate_up, TypedPtr d_h, TypedPtr gate_up, i64 N, i64 F) override {
    dense_.swiglu_bwd(d_gate_up.as<float>(), d_h.as<float>(), gate_up.as<float>(), N, F);
  }
  void rmsnorm_fwd(TypedPtr out, TypedPtr rstd, TypedPtr x, TypedPtr w, i64 N, i64 C) override {
    steps_.rmsnorm_fwd(out.as<float>(), rstd.as<float>(), x.as<float>(), w.as<float>(), N, C);
  }
  void rmsnorm_bwd(TypedPtr d_x, TypedPtr d_w, TypedPtr d_out, TypedPtr x, TypedPtr w, TypedPtr rstd, i64 N,
                   i64 C) override {
    steps_.rmsnorm_bwd(d_x.as<float>(), d_w.as<float>(), d_out.as<float>(), x.as<float>(), w.as<float>(),
                       rstd.as<float>(), N, C);
  }
  void cross_entropy_fwd(TypedPtr probs, TypedPtr loss, TypedPtr logits, TypedPtr targets, i64 N, i64 V) override {
    *loss.as<float>() +=
        float(steps_.cross_entropy_fwd(probs.as<float>(), logits.as<float>(), targets.as<int32_t>(), N, V));
  }
  void cross_entropy_bwd(TypedPtr d_logits, TypedPtr probs, TypedPtr targets, i64 N, i64 V, float scale) override {
    steps_.cross_entropy_bwd(d_logits.as<float>(), probs.as<float>(), targets.as<int32_t>(), N, V, scale);
  }
  void add(TypedPtr out, TypedPtr in, i64 n) override {
    if (out.dtype != DType::f32) return ReferenceStepBackend<float>::add(out, in, n);  // the i32 load counters
    steps_.add(out.as<float>(), in.as<float>(), n);
  }
  // The product with the SwiGLU backward in its epilogue; d_h stays unwritten.
  void ffn_down_bwd_swiglu(TypedPtr d_gate_up, TypedPtr, TypedPtr d_w_down, TypedPtr d_out, TypedPtr h, TypedPtr w_down,
                           TypedPtr gate_up, i64 N, i64 F, i64 C) override {
    dense_.ffn_down_bwd_swiglu(d_gate_up.as<float>(), d_w_down.as<float>(), d_out.as<float>(), h.as<float>(),
                               w_down.as<float>(), gate_up.as<float>(), N, F, C);
  }
  // In fixed chunks, summed in chunk order: the same result for any thread count.
  void grad_norm(TypedPtr norm, TypedPtr grads, i64 n) override;
  void adamw(TypedPtr params, TypedPtr weights, TypedPtr grads, TypedPtr m, TypedPtr v, TypedPtr norm, i64 n,
             std::span<const ParamSegment> segments, const AdamWStep& step) override;

 private:
  HostKernelCache kernels_;
  JitHostMoeKernels moe_;
  HostDenseOps dense_;
  HostStepOps steps_;
};

}  // namespace moejit::runtime
