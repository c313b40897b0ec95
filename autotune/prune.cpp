#include "prune.hpp"

#include <algorithm>

namespace moejit {

PruneReport enumerate_and_prune(const KernelSpec& spec, const Problem& problem, const DeviceDescription& device) {
  PruneReport report;
  std::vector<Config> space = spec.space(problem, device);
  report.total = static_cast<int>(space.size());
  for (Config& config : space) {
    std::string why = spec.prune_reason(problem, config, device);
    if (why.empty())
      report.survivors.push_back(std::move(config));
    else
      ++report.reasons[why];
  }
  return report;
}

std::string PruneReport::summary() const {
  std::string s = std::to_string(total) + " configs, " + std::to_string(pruned()) + " pruned";
  std::vector<std::pair<int, std::string>> ranked;
  for (const auto& [why, count] : reasons) ranked.emplace_back(-count, why);
  std::sort(ranked.begin(), ranked.end());
  for (size_t i = 0; i < ranked.size(); ++i)
    s += (i ? "; " : ": ") + std::to_string(-ranked[i].first) + " x " + ranked[i].second;
  return s;
}

}  // namespace moejit
