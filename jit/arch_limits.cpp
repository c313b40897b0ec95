#include "arch_limits.hpp"

#include "moejit/error.hpp"

namespace moejit {

DeviceDescription arch_limits(const std::string& arch) {
  DeviceDescription d;
  d.backend = "cuda";
  d.arch = arch;
  d.name = "generic " + arch;
  d.registers_per_sm = 65536;
  if (arch == "sm_80") {
    d.compute_units = 108, d.shared_per_block_optin = 166912, d.shared_per_sm = 167936, d.l2_bytes = 40 << 20;
  } else if (arch == "sm_86" || arch == "sm_89") {
    d.compute_units = arch == "sm_86" ? 84 : 128, d.shared_per_block_optin = 101376, d.shared_per_sm = 102400;
    d.l2_bytes = arch == "sm_86" ? 6 << 20 : 72 << 20;
  } else if (arch == "sm_90a" || arch == "sm_90") {
    d.compute_units = 132, d.shared_per_block_optin = 232448, d.shared_per_sm = 233472, d.l2_bytes = 50 << 20;
  } else if (arch == "sm_100a" || arch == "sm_100") {
    d.compute_units = 148, d.shared_per_block_optin = 232448, d.shared_per_sm = 233472, d.l2_bytes = 126 << 20;
  } else {
    throw Error("no static limits for arch '" + arch + "': use sm_80, sm_86, sm_89, sm_90a or sm_100a");
  }
  return d;
}

std::string arch_for_compute_capability(int major, int minor) {
  std::string arch = "sm_" + std::to_string(major * 10 + minor);
  if (major == 9 || major == 10) arch += "a";  // arch-specific features (wgmma, tcgen05) need the "a" target
  return arch;
}

}  // namespace moejit
