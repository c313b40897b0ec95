#include "backend_choice.hpp"

#include "cuda_driver.hpp"
#include "cuda_step_backend.hpp"
#include "reference_step_backend.hpp"
#ifdef MOEJIT_WITH_LLVM
#include "host_step_backend.hpp"
#endif

namespace moejit::runtime {
namespace {

std::string joined(const std::vector<std::string>& names) {
  std::string s;
  for (const auto& n : names) s += (s.empty() ? "" : ", ") + n;
  return s;
}

}  // namespace

std::vector<std::string> available_backends() {
  std::vector<std::string> names;
  // First where a GPU is usable: its step equals the reference step on an H100
  // (bench/results/2026-11-27-h100-quick).
  if (CudaDriver::available()) names.push_back("cuda");
#ifdef MOEJIT_WITH_LLVM
  names.push_back("host");
#endif
  names.push_back("reference");
  return names;
}

DType step_compute_dtype(std::string_view backend) {
  (void)backend;  // bf16 activations on cuda are still to come (docs/gpu_step.md)
  return DType::f32;
}

std::string default_backend() {
  return available_backends().front();
}

std::unique_ptr<StepBackend<float>> make_step_backend(const std::string& name, ThreadPool& par,
                                                      const BackendOptions& options) {
  const std::string available = "available backends: " + joined(available_backends());
  if (name == "reference") return std::make_unique<ReferenceStepBackend<float>>(par);
  if (name == "host") {
#ifdef MOEJIT_WITH_LLVM
    return std::make_unique<HostStepBackend>(par, options);
#else
    (void)options;
    throw UnavailableError(
        "backend host needs the host JIT (Clang/LLVM), which this build lacks (configure with "
        "-DMOEJIT_WITH_LLVM=ON); " +
        available);
#endif
  }
  if (name == "cuda") {
    std::string why;
    if (!CudaDriver::available(&why))
      throw UnavailableError("backend cuda cannot run here: no usable GPU (" + why + "); " + available);
    return std::make_unique<CudaStepBackend>(options);
  }
  throw Error("unknown backend '" + name + "': " + available + " (cuda needs a GPU)");
}

}  // namespace moejit::runtime
