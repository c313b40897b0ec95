#include "host_step_backend.hpp"

namespace moejit::runtime {

HostStepBackend::HostStepBackend(Parallel& par, const BackendOptions& options)
    : ReferenceStepBackend<float>(par),
      kernels_({options.kernel_threads, options.tuning_dir}),
      moe_(kernels_),
      dense_(kernels_, par) {}

std::vector<KernelChoice> HostStepBackend::kernel_choices() const {
  std::vector<KernelChoice> ran;
  for (auto& c : moe_.kernel_choices())
    if (c.config != JitHostMoeKernels::kNotRun) ran.push_back(c);
  for (auto& c : dense_.choices()) ran.push_back(c);
  return ran;
}

}  // namespace moejit::runtime
