// The MoE layer on JIT-compiled host kernels: each call takes its step's Problem from
// moe_layer_kernels(shape, tokens) (templates/moe_layer_steps.hpp: exactly what `moejit tune --model`
// tunes), resolves its config and kernels through the host backend's HostKernelCache (the tuning
// cache's lookup ladder, built and loaded once per problem key and config) and launches it with the
// spec's launch helper on the runtime's buffers (host backend memory is plain process memory).
// kernel_choices() says which rung served each of the 14 steps. Only built with MOEJIT_WITH_LLVM.
#pragma once
#include <memory>

#include "host_kernel_cache.hpp"
#include "moe_kernels.hpp"
#include "moe_step_resolver.hpp"

namespace moejit::runtime {

class JitHostMoeKernels final : public MoeKernels<float> {
 public:
  static constexpr const char* kNotRun = MoeStepResolver::kNotRun;
  explicit JitHostMoeKernels(HostKernelCache& kernels);
  ~JitHostMoeKernels() override;

  std::string backend() const override { return "jit-host"; }
  // Per step: the config of its latest call and the lowest rung that served it during the run; a
  // step not run yet reports the heuristic rung with config kNotRun.
  std::vector<KernelChoice> kernel_choices() const override;

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
  // The down_dgrad kernel with the SwiGLU backward in its epilogue (templates/host/grouped_gemm_families.h).
  void down_dgrad_swiglu(const MoeShape& s, float* d_gate_up, float* d_h, const float* d_y_perm, const float* w_down,
                         const float* gate_up, const int32_t* offsets) override;
  void up_dgrad(const MoeShape& s, float* d_x_perm, const float* d_gate_up, const float* w_up,
                const int32_t* offsets) override;
  void up_wgrad(const MoeShape& s, float* d_w_up, const float* x_perm, const float* d_gate_up,
                const int32_t* offsets) override;
  void permute_bwd(const MoeShape& s, float* d_x, const float* d_x_perm, const int32_t* slot) override;
  void gate_bwd(const MoeShape& s, const GateParams& gate, float* d_logits, const float* logits, const int32_t* index,
                const float* d_weight, const float* aux_scale, float z_scale, int64_t seq_tokens) override;
  void bias_update(const MoeShape& s, float* bias, const int32_t* load, float rate) override;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace moejit::runtime
