#include "moe_kernels.hpp"

#include <map>

#include "reference_moe_kernels.hpp"

namespace moejit::runtime {

const char* rung_name(const std::optional<Rung>& rung) {
  return rung ? to_string(*rung) : "reference";
}

std::string summarize_tuning(const std::vector<KernelChoice>& choices) {
  std::map<Rung, int> tuned;  // by rung, best first
  std::string untuned;
  size_t n_untuned = 0;
  for (const auto& c : choices) {
    if (c.rung && is_tuned(*c.rung)) {
      ++tuned[*c.rung];
      continue;
    }
    ++n_untuned;
    if (n_untuned <= 4) untuned += (n_untuned > 1 ? ", " : "") + c.kernel + " (" + rung_name(c.rung) + ")";
  }
  if (choices.empty()) return "no tuned kernels";
  if (n_untuned > 4) untuned += ", and " + std::to_string(n_untuned - 4) + " more";
  std::string counts;
  for (const auto& [rung, n] : tuned)
    counts += (counts.empty() ? "" : ", ") + std::to_string(n) + " " + to_string(rung);
  const std::string n = std::to_string(choices.size());
  // "all tuned" only when every decision was made for this very problem on this device: one tuned for
  // another token bucket or device is a fallback worth a re-tune, and the summary says how many.
  const int n_exact = tuned.count(Rung::exact) ? tuned.at(Rung::exact) : 0;
  if (n_untuned == 0 && size_t(n_exact) == choices.size()) return "all " + n + " kernels tuned (" + counts + ")";
  if (n_untuned == 0)
    return n + " kernels tuned, " + std::to_string(choices.size() - size_t(n_exact)) +
           " of them for another problem: " + counts;
  const size_t n_tuned = choices.size() - n_untuned;
  return std::to_string(n_untuned) + " of " + n + " kernels not tuned: " + untuned + "; " + std::to_string(n_tuned) +
         " tuned" + (n_tuned ? " (" + counts + ")" : "");
}

template class ReferenceMoeKernels<float>;
template class ReferenceMoeKernels<double>;

}  // namespace moejit::runtime
