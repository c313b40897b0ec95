#include "moe_kernels.hpp"

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
  // Every rung counted, in ladder order; the kernels that fell back named when there are few.
  constexpr TuningRung kLadder[] = {TuningRung::kExact, TuningRung::kNearestBucket, TuningRung::kOtherDevice,
                                    TuningRung::kHeuristic, TuningRung::kReference};
  size_t fell_back = 0;
  for (const auto& c : choices) fell_back += !is_tuned(c.rung);
  std::string text = std::to_string(choices.size()) + " kernels:";
  const char* sep = " ";
  for (TuningRung rung : kLadder) {
    std::string names;
    size_t n = 0;
    for (const auto& c : choices)
      if (c.rung == rung) names += (n++ ? ", " : "") + c.kernel;
    if (n == 0) continue;
    text += sep + std::to_string(n) + " " + to_string(rung);
    if (!is_tuned(rung) && fell_back <= 4) text += " (" + names + ")";
    sep = ", ";
  }
  return text;
}

template class ReferenceMoeKernels<float>;
template class ReferenceMoeKernels<double>;

}  // namespace moejit::runtime
