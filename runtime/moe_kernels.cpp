#include "moe_kernels.hpp"

#include <map>

#include "reference_moe_kernels.hpp"

namespace moejit::runtime {

const char* to_string(TuningRung r) {
  switch (r) {
    case TuningRung::kExact:
      return "exact";
    case TuningRung::kNearestBucket:
      return "nearest-bucket";
    case TuningRung::kOtherDevice:
      return "other-device";
    case TuningRung::kHeuristic:
      return "heuristic";
    case TuningRung::kReference:
      return "reference";
  }
  return "?";
}

std::string summarize_tuning(const std::vector<KernelChoice>& choices) {
  std::string listed;
  std::map<std::string, int> per_rung;
  size_t n_fell = 0;
  for (const auto& c : choices)
    if (!is_tuned(c.rung)) {
      listed += (n_fell++ ? ", " : "") + c.kernel + " (" + to_string(c.rung) + ")";
      ++per_rung[to_string(c.rung)];
    }
  if (choices.empty()) return "no tuned kernels";
  std::string n = std::to_string(choices.size());
  if (n_fell == 0) return "all " + n + " kernels tuned";
  std::string head = std::to_string(n_fell) + " of " + n + " kernels fell back: ";
  if (n_fell <= 4) return head + listed;
  std::string counts;  // many fell back: count them per rung instead of naming each
  for (const auto& [rung, k] : per_rung) counts += (counts.empty() ? "" : ", ") + std::to_string(k) + " " + rung;
  return head + counts;
}

template class ReferenceMoeKernels<float>;
template class ReferenceMoeKernels<double>;

}  // namespace moejit::runtime
