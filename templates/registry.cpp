// The KernelSpec of every (family, backend) the family table (jit/family.cpp) declares. An
// exhaustive switch, no default: a family added to the enum without a spec here does not compile;
// tests/templates/registry_test.cpp checks that every declared backend gets a spec that serves it.
#include "grouped_gemm/grouped_gemm_spec.hpp"
#include "host/grouped_gemm_spec.hpp"
#include "moejit/error.hpp"
#include "moejit/kernel_spec.hpp"
#include "routing/routing_spec.hpp"
#include "swiglu/swiglu_spec.hpp"

namespace moejit {
namespace {

const KernelSpec* gemm_spec(Family family, std::string_view backend) {
  if (backend == "host") {
    static const HostGroupedGemmSpec fwd(Family::grouped_gemm_fwd), up(Family::grouped_gemm_up_swiglu),
        dgrad(Family::grouped_gemm_dgrad), wgrad(Family::grouped_gemm_wgrad), scores(Family::attention_scores),
        values(Family::attention_values), grads(Family::attention_grads);
    for (const KernelSpec* s : {&fwd, &up, &dgrad, &wgrad, &scores, &values, &grads})
      if (s->family() == family) return s;
  }
  if (backend == "cuda") {
    static const GroupedGemmSpec fwd(Family::grouped_gemm_fwd), up(Family::grouped_gemm_up_swiglu),
        dgrad(Family::grouped_gemm_dgrad), wgrad(Family::grouped_gemm_wgrad);
    for (const KernelSpec* s : {&fwd, &up, &dgrad, &wgrad})
      if (s->family() == family) return s;
  }
  return nullptr;
}

const KernelSpec* routing_spec(Family family) {
  static const RoutingSpec specs[] = {RoutingSpec(Family::route_gate_fwd),    RoutingSpec(Family::route_gate_bwd),
                                      RoutingSpec(Family::route_plan),        RoutingSpec(Family::route_permute_fwd),
                                      RoutingSpec(Family::route_combine_bwd), RoutingSpec(Family::route_combine_fwd),
                                      RoutingSpec(Family::route_permute_bwd)};
  for (const RoutingSpec& s : specs)
    if (s.family() == family) return &s;
  return nullptr;
}

// Null when the family has no spec for `backend`.
const KernelSpec* find(Family family, std::string_view backend) {
  switch (family) {
    case Family::swiglu_fwd: {
      static const SwigluSpec spec(false);
      return &spec;
    }
    case Family::swiglu_bwd: {
      static const SwigluSpec spec(true);
      return &spec;
    }
    case Family::grouped_gemm_fwd:
    case Family::grouped_gemm_up_swiglu:
    case Family::grouped_gemm_dgrad:
    case Family::grouped_gemm_wgrad:
    case Family::attention_scores:
    case Family::attention_values:
    case Family::attention_grads:
      return gemm_spec(family, backend);
    case Family::route_gate_fwd:
    case Family::route_gate_bwd:
    case Family::route_plan:
    case Family::route_permute_fwd:
    case Family::route_combine_bwd:
    case Family::route_combine_fwd:
    case Family::route_permute_bwd:
      return routing_spec(family);
  }
  return nullptr;
}

std::string backends_of(Family family) {
  std::string names;
  for (std::string_view b : kBackendNames)
    if (implemented_on(family, b)) names += (names.empty() ? "" : ", ") + std::string(b);
  return names.empty() ? "none" : names;
}

}  // namespace

const KernelSpec& spec_for(Family family, std::string_view backend) {
  const KernelSpec* spec = implemented_on(family, backend) ? find(family, backend) : nullptr;
  if (!spec || !spec->supports_backend(backend))
    throw Error(std::string(to_string(family)) + " has no kernel for backend '" + std::string(backend) +
                "' (implemented on: " + backends_of(family) + ")");
  return *spec;
}

std::vector<RegisteredSpec> registered_specs() {
  std::vector<RegisteredSpec> out;
  for (const FamilyInfo& f : all_families())
    for (std::string_view b : kBackendNames)
      if (implemented_on(f.id, b)) out.push_back({f.id, b, &spec_for(f.id, b)});
  return out;
}

}  // namespace moejit
