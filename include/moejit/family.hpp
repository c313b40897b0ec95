// Kernel families: one typed id per operation, whatever backend runs it. The family table
// (jit/family.cpp) is the one place that maps ids to names, shape kinds and the backends that
// implement them; the KernelSpec per (family, backend) is attached in templates/registry.cpp and
// the tuning workload in autotune/workloads.cpp, both by exhaustive switches over this enum, so a
// new family that lacks either does not compile (and tests/registry_test.cpp checks the rest).
#pragma once
#include <cstdint>
#include <iosfwd>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace moejit {

enum class Family : uint8_t {
  swiglu_fwd,
  swiglu_bwd,
  grouped_gemm_fwd,
  grouped_gemm_up_swiglu,
  grouped_gemm_dgrad,
  grouped_gemm_wgrad,
  route_gate_fwd,
  route_gate_bwd,
  route_plan,
  route_permute_fwd,
  route_combine_bwd,
  route_combine_fwd,
  route_permute_bwd,
  attention_scores,
  attention_values,
  attention_grads,
};
inline constexpr int kFamilyCount = 16;

// What a family's Problem describes (problem.hpp has the typed shapes).
enum class ShapeKind : uint8_t {
  grouped_gemm,  // GemmShape: E groups, rows = tokens * top_k, Y (rows, N) = X (rows, K) . W_e (K, N)
  routing,       // RoutingShape: E experts, top_k choices per token, rows of `width` elements
  rows,          // RowsShape: rows = tokens * top_k rows of `width` elements, element-wise
};

// The backends a kernel can run on (DeviceDescription::backend, Validators::backend).
inline constexpr std::string_view kBackendNames[] = {"host", "cuda"};

struct FamilyInfo {
  Family id;
  std::string_view name;  // stable: file names, URIs, decision JSON, CLI flags
  ShapeKind shape;
  bool on_host, on_cuda;  // backends with a KernelSpec and a workload
  std::string_view summary;
  // Empty for a family that serves a step of the MoE layer (templates/moe_layer_steps.hpp);
  // otherwise why it is registered without one (registry_test checks both ways).
  std::string_view standalone = {};
};

std::span<const FamilyInfo> all_families();  // in enum order
const FamilyInfo& family_info(Family family);
std::string_view to_string(Family family);
std::ostream& operator<<(std::ostream& os, Family family);  // its name
std::string_view to_string(ShapeKind kind);
std::optional<Family> find_family(std::string_view name);
// Throws Error naming the known families.
Family parse_family(std::string_view name);
// "host" | "cuda"; false for any other name.
bool implemented_on(Family family, std::string_view backend);
// "swiglu_fwd, swiglu_bwd, ..." for error messages.
std::string known_family_names();

}  // namespace moejit
