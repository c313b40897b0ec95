// Static device descriptions per CUDA architecture, for pruning and compile checks on machines
// without that GPU (the numbers are the CUDA programming guide's per-compute-capability limits).
#pragma once
#include <string>

#include "moejit/backend.hpp"

namespace moejit {

// "sm_80", "sm_86", "sm_89", "sm_90a", "sm_100a"; throws Error for an unknown arch.
DeviceDescription arch_limits(const std::string& arch);
// "sm_90a" for compute capability 9.0, "sm_86" for 8.6, ...
std::string arch_for_compute_capability(int major, int minor);

}  // namespace moejit
