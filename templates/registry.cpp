// The kernel families built into moejit. Each family's spec lives beside its template; this list
// is explicit so that linking a static library cannot silently drop one.
#include <algorithm>

#include "grouped_gemm/grouped_gemm_spec.hpp"
#include "moejit/error.hpp"
#include "moejit/kernel_spec.hpp"
#include "routing/routing_spec.hpp"
#include "swiglu/swiglu_spec.hpp"

namespace moejit {

const std::vector<std::unique_ptr<KernelSpec>>& builtin_specs() {
  static const std::vector<std::unique_ptr<KernelSpec>> specs = [] {
    std::vector<std::unique_ptr<KernelSpec>> v;
    v.push_back(std::make_unique<SwigluSpec>(false));
    v.push_back(std::make_unique<SwigluSpec>(true));
    for (int op : {gg::kFwd, gg::kUpSwiglu, gg::kDgrad, gg::kWgrad}) v.push_back(std::make_unique<GroupedGemmSpec>(op));
    for (RoutingKernel kind : {RoutingKernel::gate_fwd, RoutingKernel::gate_bwd, RoutingKernel::plan,
                               RoutingKernel::permute_fwd, RoutingKernel::combine_bwd, RoutingKernel::combine_fwd,
                               RoutingKernel::permute_bwd})
      v.push_back(std::make_unique<RoutingSpec>(kind));
    return v;
  }();
  return specs;
}

const KernelSpec& find_spec(std::string_view family) {
  for (const auto& spec : builtin_specs())
    if (spec->family() == family) return *spec;
  std::string known;
  for (const auto& spec : builtin_specs()) known += " " + spec->family();
  throw Error("unknown kernel family '" + std::string(family) + "'; known:" + known);
}

}  // namespace moejit
