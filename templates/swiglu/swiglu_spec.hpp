// KernelSpec for the SwiGLU activation (Family::swiglu_fwd and swiglu_bwd).
// Problem: dtype and a RowsShape: width = F (the activation width), rows = tokens * top_k.
// Config: vec (elements per access, at most 16 bytes), threads (per block on a GPU; worker threads
// on the host, where the source is a loop wrapper, swiglu_host.h, with the extern "C" entry kHostEntry).
#pragma once
#include "moejit/kernel_spec.hpp"

namespace moejit {

class SwigluSpec final : public KernelSpec {
 public:
  explicit SwigluSpec(bool backward) : backward_(backward) {}
  Family family() const override { return backward_ ? Family::swiglu_bwd : Family::swiglu_fwd; }
  bool supports_backend(std::string_view backend) const override { return backend == "cuda" || backend == "host"; }
  std::vector<Config> space(const Problem& problem, const DeviceDescription& device) const override;
  std::string prune_reason(const Problem& problem, const Config& config,
                           const DeviceDescription& device) const override;
  Config heuristic(const Problem& problem, const DeviceDescription& device) const override;
  Source render(const Problem& problem, const Config& config, const DeviceDescription& device) const override;

  static constexpr const char* kHostEntry = "moejit_swiglu";
  // The one entry of a rendered source.
  static std::string entry(const Problem& problem, const Config& config, bool backward);
  static LaunchDims launch_dims(const Problem& problem, const Config& config, const DeviceDescription& device);

 private:
  bool backward_;
};

// Runs a loaded SwiGLU kernel. fwd: args (gate_up, out); bwd: (gate_up, dh, d_gate_up).
void launch_swiglu_fwd(Kernel& kernel, const Problem& problem, const Config& config, const DeviceDescription& device,
                       const void* gate_up, void* out);
void launch_swiglu_bwd(Kernel& kernel, const Problem& problem, const Config& config, const DeviceDescription& device,
                       const void* gate_up, const void* dh, void* d_gate_up);

}  // namespace moejit
