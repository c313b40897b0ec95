// The MoE layer's 14 steps on the GPU: the NVRTC routing, grouped GEMM and SwiGLU kernels, each
// step's config looked up on the tuning-cache ladder (MoeStepResolver, as on the host backend), on
// device buffers; expert offsets stay on the device (the launch helpers never read them back).
//
// Precision in this cut: the layer's buffers are fp32 (MoeKernels<float>, the runtime's activation
// dtype until the interface carries bf16 activations), while the GPU grouped GEMMs read bf16
// operands and write fp32: each GEMM's inputs are converted to bf16 scratch first (one pass per
// operand), and weight gradients accumulate in fp32 in the kernel's epilogue. So the steps' problems
// are f32 problems (output dtype), looked up as such. Compiled here; runs only where a GPU is lent.
#pragma once
#include <memory>

#include "cuda_step_ops.hpp"
#include "moe_kernels.hpp"
#include "moe_step_resolver.hpp"
#include "step_backend.hpp"

namespace moejit::runtime {

class CudaMoeKernels final : public MoeKernels<float> {
 public:
  // All outlive this object: the kernels' cache on the "cuda" Backend, its step ops (conversions) and
  // the memory scratch buffers come from.
  CudaMoeKernels(KernelCache& cache, CudaStepOps& ops, BackendMemory& memory);
  ~CudaMoeKernels() override;

  std::string backend() const override { return "cuda"; }
  std::vector<KernelChoice> kernel_choices() const override { return steps_.kernel_choices(); }

  void gate_fwd(const MoeShape& s, const GateParams& gate, const float* bias, int32_t* index, float* weight,
                float* probs, float* lse, const float* logits) override;
  void plan(const MoeShape& s, const RouterLossCoefs& coefs, int capacity, int32_t* counts, int32_t* dropped,
            int32_t* offsets, int32_t* slot, int32_t* row_source, float* aux_scale, float* losses, const int32_t* index,
            const float* probs, const float* lse) override;
  void permute_fwd(const MoeShape& s, float* x_perm, const float* x, const int32_t* slot) override;
  void up_swiglu(const MoeShape& s, float* gate_up, float* h, const float* x_perm, const float* w_up,
                 const int32_t* offsets) override;
  void down_fwd(const MoeShape& s, float* y_perm, const float* h, const float* w_down, const int32_t* offsets) override;
  void combine_fwd(const MoeShape& s, float* out, const float* shared, const float* y_perm, const float* weight,
                   const int32_t* slot) override;
  void combine_bwd(const MoeShape& s, float* d_y_perm, float* d_weight, const float* d_out, const float* y_perm,
                   const float* weight, const int32_t* slot) override;
  void down_dgrad(const MoeShape& s, float* d_h, const float* d_y_perm, const float* w_down,
                  const int32_t* offsets) override;
  void down_wgrad(const MoeShape& s, float* d_w_down, const float* h, const float* d_y_perm,
                  const int32_t* offsets) override;
  void swiglu_bwd(const MoeShape& s, float* d_gate_up, const float* gate_up, const float* d_h) override;
  void up_dgrad(const MoeShape& s, float* d_x_perm, const float* d_gate_up, const float* w_up,
                const int32_t* offsets) override;
  void up_wgrad(const MoeShape& s, float* d_w_up, const float* x_perm, const float* d_gate_up,
                const int32_t* offsets) override;
  void permute_bwd(const MoeShape& s, float* d_x, const float* d_x_perm, const int32_t* slot) override;
  void gate_bwd(const MoeShape& s, const GateParams& gate, float* d_logits, const float* logits, const int32_t* index,
                const float* d_weight, const float* aux_scale, float z_scale, int64_t seq_tokens) override;
  void bias_update(const MoeShape& s, float* bias, const int32_t* load, float rate) override;

 private:
  // A grouped GEMM step: operands a, b (fp32, n_a and n_b elements) converted to bf16, then the
  // kernel writes out (fp32; += for wgrad) and, for up_swiglu, out_gate_up.
  struct GemmCall {
    const float* a;
    int64_t n_a;
    const float* b;
    int64_t n_b;
    float* out;
    float* out_gate_up = nullptr;
    const int32_t* offsets;
  };
  void grouped_gemm(LayerStep step, const MoeShape& s, const GemmCall& g);
  const void* to_bf16(Buffer& scratch, const float* src, int64_t n);

  MoeStepResolver steps_;
  KernelCache& cache_;
  CudaStepOps& ops_;
  BackendMemory& memory_;
  Buffer a16_, b16_;       // the GEMMs' bf16 operands
  Buffer plan_workspace_;  // route_plan's scratch (bytes as f32 words)
};

}  // namespace moejit::runtime
