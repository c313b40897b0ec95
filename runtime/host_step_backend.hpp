// The host backend: process memory, the MoE layer's 14 steps on JIT-compiled host kernels with
// configs from the tuning cache (jit_host_moe_kernels.hpp), and the reference loops for the ops it
// has no tuned kernel for yet. Only built with MOEJIT_WITH_LLVM.
#pragma once
#include "backend_choice.hpp"
#include "jit_host_moe_kernels.hpp"
#include "reference_step_backend.hpp"

namespace moejit::runtime {

class HostStepBackend final : public ReferenceStepBackend<float> {
 public:
  HostStepBackend(Parallel& par, const BackendOptions& options = {});

  std::string name() const override { return "host"; }
  MoeKernels<float>& moe() override { return moe_; }
  // The MoE steps that ran (none for a dense model).
  std::vector<KernelChoice> kernel_choices() const override;

 private:
  JitHostMoeKernels moe_;
};

}  // namespace moejit::runtime
