// The tuning workload of every (family, backend) the family table (jit/family.cpp) declares: an
// exhaustive switch, like the specs in templates/registry.cpp, so a family without a workload
// does not compile; tests/autotune/registry_test.cpp checks every declared backend gets one.
#include "grouped_gemm_workload.hpp"
#include "moejit/error.hpp"
#include "routing_workload.hpp"
#include "swiglu_workload.hpp"
#include "workload.hpp"

namespace moejit {

std::unique_ptr<Workload> make_workload(Family family, std::string_view backend) {
  if (!implemented_on(family, backend))
    throw Error(std::string(to_string(family)) + " has no workload for backend '" + std::string(backend) + "'");
  switch (family) {
    case Family::swiglu_fwd:
    case Family::swiglu_bwd:
      return std::make_unique<SwigluWorkload>(family == Family::swiglu_bwd);
    case Family::grouped_gemm_fwd:
    case Family::grouped_gemm_up_swiglu:
    case Family::grouped_gemm_dgrad:
    case Family::grouped_gemm_wgrad:
    case Family::attention_scores:
    case Family::attention_values:
    case Family::attention_grads:
      return std::make_unique<GroupedGemmWorkload>(family, backend == "cuda");
    case Family::route_gate_fwd:
    case Family::route_gate_bwd:
    case Family::route_plan:
    case Family::route_permute_fwd:
    case Family::route_combine_bwd:
    case Family::route_combine_fwd:
    case Family::route_permute_bwd:
      return std::make_unique<RoutingWorkload>(family);
  }
  throw Error("unknown kernel family");
}

}  // namespace moejit
