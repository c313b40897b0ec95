// Enumerate a KernelSpec's config space and prune it before anything compiles: every dropped config
// is counted under the spec's reason (shared memory, registers, divisibility, arch, problem size).
#pragma once
#include <map>
#include <string>
#include <vector>

#include "moejit/kernel_spec.hpp"

namespace moejit {

struct PruneReport {
  int total = 0;
  std::vector<Config> survivors;       // in the spec's order
  std::map<std::string, int> reasons;  // reason text -> how many configs it dropped
  int pruned() const { return total - static_cast<int>(survivors.size()); }
  std::string summary() const;  // "16 configs, 6 pruned: 4 x d_expert 1000 % vec 8 != 0; ..."
};

PruneReport enumerate_and_prune(const KernelSpec& spec, const Problem& problem, const DeviceDescription& device);

}  // namespace moejit
