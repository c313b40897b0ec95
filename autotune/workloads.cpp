// The workloads built into moejit, one per tunable kernel family. Owners of new families add a
// line here (explicit: a static library cannot silently drop a self-registering object).
#include <map>
#include <mutex>

#include "grouped_gemm/grouped_gemm_schedule.h"
#include "grouped_gemm_workload.hpp"
#include "routing_workload.hpp"
#include "swiglu_workload.hpp"
#include "workload.hpp"

namespace moejit {
namespace {

struct Registry {
  std::mutex mutex;
  std::map<std::string, WorkloadFactory, std::less<>> factories;
};

Registry& registry() {
  static Registry* r = [] {
    auto* reg = new Registry;
    reg->factories["swiglu_fwd"] = [] { return std::make_unique<SwigluWorkload>(false); };
    reg->factories["swiglu_bwd"] = [] { return std::make_unique<SwigluWorkload>(true); };
    // Grouped GEMMs: one workload class, GPU (grouped_gemm_*) and host (host_grouped_gemm_*).
    const std::pair<int, const char*> gemms[] = {
        {gg::kFwd, "fwd"}, {gg::kUpSwiglu, "swiglu"}, {gg::kDgrad, "dgrad"}, {gg::kWgrad, "wgrad"}};
    for (const auto& [op, name] : gemms) {
      const std::string gpu = op == gg::kUpSwiglu ? "up_swiglu" : name;
      reg->factories["grouped_gemm_" + gpu] = [op = op] { return std::make_unique<GroupedGemmWorkload>(op, true); };
      reg->factories["host_grouped_gemm_" + std::string(name)] = [op = op] {
        return std::make_unique<GroupedGemmWorkload>(op, false);
      };
    }
    for (RoutingKernel kind :
         {RoutingKernel::gate_fwd, RoutingKernel::gate_bwd, RoutingKernel::plan, RoutingKernel::permute_fwd,
          RoutingKernel::combine_bwd, RoutingKernel::combine_fwd, RoutingKernel::permute_bwd})
      reg->factories[RoutingSpec(kind).family()] = [kind] { return std::make_unique<RoutingWorkload>(kind); };
    return reg;
  }();
  return *r;
}

}  // namespace

std::unique_ptr<Workload> make_workload(std::string_view family) {
  Registry& r = registry();
  std::lock_guard lock(r.mutex);
  auto it = r.factories.find(family);
  return it == r.factories.end() ? nullptr : it->second();
}

void register_workload(std::string family, WorkloadFactory factory) {
  Registry& r = registry();
  std::lock_guard lock(r.mutex);
  r.factories[std::move(family)] = std::move(factory);
}

}  // namespace moejit
