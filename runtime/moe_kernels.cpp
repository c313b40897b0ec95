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

const std::vector<std::string>& moe_kernel_names() {
  static const std::vector<std::string> names = {"moe_router",
                                                 "moe_gate_topk",
                                                 "moe_route",
                                                 "moe_permute",
                                                 "moe_expert_up_swiglu",
                                                 "moe_expert_down",
                                                 "moe_combine",
                                                 "moe_router_losses",
                                                 "moe_combine_bwd",
                                                 "moe_expert_down_bwd",
                                                 "moe_expert_up_bwd",
                                                 "moe_unpermute_bwd",
                                                 "moe_gate_bwd",
                                                 "moe_router_bwd",
                                                 "moe_expert_down_bwd_weight",
                                                 "moe_expert_up_bwd_weight"};
  return names;
}

std::string summarize_tuning(const std::vector<KernelChoice>& choices) {
  std::string fell;
  size_t n_fell = 0;
  for (const auto& c : choices)
    if (!is_tuned(c.rung)) {
      fell += (n_fell++ ? ", " : "") + c.kernel + " (" + to_string(c.rung) + ")";
    }
  std::string n = std::to_string(choices.size());
  if (n_fell == 0) return "all " + n + " kernels tuned";
  return std::to_string(n_fell) + " of " + n + " kernels fell back: " + fell;
}

template class ReferenceMoeKernels<float>;
template class ReferenceMoeKernels<double>;

}  // namespace moejit::runtime
