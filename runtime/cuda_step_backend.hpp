// The cuda backend of the training step (issue 15; its step equals the reference step on an H100):
// device memory and one stream of the jit's CudaBackend (driver API, dlopen'ed), the dense products
// on cuBLASLt (cuda_dense_products.hpp), the MoE layer's 14 steps on the NVRTC routing, grouped
// GEMM and SwiGLU kernels with configs from the tuning cache (cuda_moe_kernels.hpp), the dense
// FFN's SwiGLU on the SwiGLU family (tuning cache too), and the memory-bound ops on the NVRTC step
// ops (cuda_step_ops.hpp). Nothing is read back inside a step: the loss and gradient norm stay on
// the device, the AdamW clip factor is computed there, every sum runs in a fixed order without
// float atomics.
//
// Precision in this cut: fp32 storage for activations and weights (precision() = {f32, f32}),
// because the runtime's MoE layer still hands its kernels master-typed activations; the grouped
// GEMMs compute on bf16 copies of their operands with fp32 accumulation, the dense products in fp32.
// bf16 activations are the next step (MoeLayer's a() and the interface's compute dtype).
//
// After two eager steps a training step is one CUDA graph, captured once and replayed
// (cuda_step_graph.hpp; MOEJIT_NO_GRAPH=1: eager).
//
// Buffers are poisoned (0xff bytes, NaN) on allocation, like process memory, so that a kernel
// reading what nobody wrote shows up in the step-equality test. Compiled here; runs only where a
// GPU is lent.
#pragma once
#include <memory>

#include "backend_choice.hpp"
#include "cuda_backend.hpp"
#include "cuda_dense_products.hpp"
#include "cuda_moe_kernels.hpp"
#include "cuda_step_graph.hpp"
#include "cuda_step_ops.hpp"
#include "cuda_step_timer.hpp"
#include "kernel_cache.hpp"

namespace moejit::runtime {

class CudaStepBackend final : public StepBackend<float> {
 public:
  // Throws UnavailableError without a driver or GPU (before any work).
  explicit CudaStepBackend(const BackendOptions& options = {});
  ~CudaStepBackend() override;

  std::string name() const override { return "cuda"; }
  void* device_stream() override { return gpu_.stream(); }
  DeviceTimer* device_timer() override { return &timer_; }
  Precision precision() const override { return {step_compute_dtype("cuda"), DType::f32}; }
  MoeKernels<float>& moe() override { return moe_; }
  std::vector<KernelChoice> kernel_choices() const override;

  void begin_step(const std::string& refusal) override { graph_.begin_step(refusal); }
  void end_step() override { graph_.end_step(); }
  void abandon_step() noexcept override { graph_.abandon_step(); }
  int64_t graph_replays() const { return graph_.replays(); }

  // BackendMemory: device memory; copies wait for the queued ops.
  bool host_memory() const override { return false; }
  double device_free_bytes() override { return double(gpu_.free_bytes()); }
  void copy_from_host(TypedPtr dst, const void* src, i64 count) override;
  void copy_to_host(void* dst, TypedPtr src, i64 count) override;
  void zero(TypedPtr p, i64 count) override;
  void convert(TypedPtr dst, TypedPtr src, i64 count) override;

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
  void rope(TypedPtr qkv, i64 B, i64 S, i64 C, i64 H, bool inverse) override;
  void attention_bwd(TypedPtr d_qkv, TypedPtr d_out, TypedPtr qkv, TypedPtr att, i64 B, i64 S, i64 C, i64 H) override {
    dense_.attention_bwd(d_qkv.as<float>(), d_out.as<float>(), qkv.as<float>(), att.as<float>(), B, S, C, H);
  }
  void rmsnorm_fwd(TypedPtr out, TypedPtr rstd, TypedPtr x, TypedPtr w, i64 N, i64 C) override;
  void rmsnorm_bwd(TypedPtr d_x, TypedPtr d_w, TypedPtr d_out, TypedPtr x, TypedPtr w, TypedPtr rstd, i64 N,
                   i64 C) override;
  void embedding_fwd(TypedPtr out, TypedPtr tokens, TypedPtr wte, i64 N, i64 C) override;
  void embedding_bwd(TypedPtr d_wte, TypedPtr d_out, TypedPtr tokens, i64 N, i64 C) override;
  void cross_entropy_fwd(TypedPtr probs, TypedPtr loss, TypedPtr logits, TypedPtr targets, i64 N, i64 V) override;
  void cross_entropy_bwd(TypedPtr d_logits, TypedPtr probs, TypedPtr targets, i64 N, i64 V, float scale) override;
  void swiglu_fwd(TypedPtr h, TypedPtr gate_up, i64 N, i64 F) override;
  void swiglu_bwd(TypedPtr d_gate_up, TypedPtr d_h, TypedPtr gate_up, i64 N, i64 F) override;
  void add(TypedPtr out, TypedPtr in, i64 n) override;
  void scale(TypedPtr out, TypedPtr in, i64 n, float alpha) override;
  void grad_norm(TypedPtr norm, TypedPtr grads, i64 n) override;
  void adamw(TypedPtr params, TypedPtr weights, TypedPtr grads, TypedPtr m, TypedPtr v, TypedPtr norm, i64 n,
             std::span<const ParamSegment> segments, const AdamWStep& step) override;

 protected:
  void* allocate(DType dtype, i64 count) override;
  void release(void* data) override;

 private:
  // out (1) = (add_scaled: out + scale *) (sqrt: sqrt of) the sum of in (n) (squares: of in^2), in a
  // fixed order: per-block partials, then one finishing block.
  void device_sum(float* out, const float* in, i64 n, bool squares, bool finish_sqrt, float scale);
  unsigned blocks(StepOp op, i64 work) const { return ops_.grid_for(op, work); }

  CudaBackend gpu_;  // first: every member below holds buffers or kernels of its context
  StepGraph graph_;  // before any buffer: allocations tell it
  CudaStepTimer timer_;
  KernelCache cache_;
  CudaStepOps ops_;
  CudaMoeKernels moe_;
  CudaDenseProducts dense_;
  ChoiceLog swiglu_log_;
  Buffer partials_, row_loss_, dw_partials_;  // scratch of the sums, the loss rows, RMSNorm's d_w
  Buffer adamw_coefs_;  // the step's AdamWCoefs, uploaded per step (a graph's kernels read them there)
};

}  // namespace moejit::runtime
