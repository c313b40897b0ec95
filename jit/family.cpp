// The family table: the only place a family's name is spelled (tests aside).
#include "moejit/family.hpp"

#include <array>
#include <ostream>

#include "moejit/error.hpp"

namespace moejit {
namespace {

using enum Family;
constexpr ShapeKind kGemm = ShapeKind::grouped_gemm, kRouting = ShapeKind::routing, kRows = ShapeKind::rows;
constexpr std::string_view kAttention =
    "a product of causal attention in the dense step (runtime/dense_step_kernels.cpp)";

// Indexed by Family; registry_test checks the order.
constexpr std::array<FamilyInfo, kFamilyCount> kFamilies{{
    {swiglu_fwd, "swiglu_fwd", kRows, true, true, "h = silu(gate) * up per row of [gate | up]",
     "the layer fuses it into grouped_gemm_up_swiglu; kept for up projections run by an unfused GEMM"},
    {swiglu_bwd, "swiglu_bwd", kRows, true, true, "d[gate | up] from dh and the forward's [gate | up]"},
    {grouped_gemm_fwd, "grouped_gemm_fwd", kGemm, true, true, "Y = X . W_e per expert segment"},
    {grouped_gemm_up_swiglu, "grouped_gemm_up_swiglu", kGemm, true, true,
     "[gate | up] = X . [Wg | Wu]_e, h = silu(gate) * up (W has 2N columns)"},
    {grouped_gemm_dgrad, "grouped_gemm_dgrad", kGemm, true, true, "dX = dY . W_e^T per expert segment"},
    {grouped_gemm_wgrad, "grouped_gemm_wgrad", kGemm, true, true, "dW_e = X_e^T . dY_e per expert"},
    {route_gate_fwd, "route_gate_fwd", kRouting, true, true, "router scores, top-k choices and weights"},
    {route_gate_bwd, "route_gate_bwd", kRouting, true, true, "gradient of the router logits"},
    {route_plan, "route_plan", kRouting, true, true, "expert counts, offsets, slots and router losses"},
    {route_permute_fwd, "route_permute_fwd", kRouting, true, true, "rows scattered to expert order"},
    {route_combine_bwd, "route_combine_bwd", kRouting, true, true, "combine backward: weighted scatter"},
    {route_combine_fwd, "route_combine_fwd", kRouting, true, true, "weighted gather of expert outputs"},
    {route_permute_bwd, "route_permute_bwd", kRouting, true, true, "permute backward: gather and sum"},
    // Causal attention's batched products (groups = sequences x heads, K = the group's key count):
    // the grouped GEMM views with the (S, S) operand or result lower-triangular per group, so the
    // masked half is neither computed nor read. The GPU runs attention through cuBLASLt instead.
    {attention_scores, "attention_scores", kGemm, true, false,
     "scores_g = Q_g . K_g^T on and below the diagonal (dgrad view; above it: unspecified)", kAttention},
    {attention_values, "attention_values", kGemm, true, false,
     "O_g = P_g . V_g with P_g lower-triangular (fwd view; also dQ = dS . K)", kAttention},
    {attention_grads, "attention_grads", kGemm, true, false,
     "dV_g = P_g^T . dO_g with P_g lower-triangular (wgrad view; also dK = dS^T . Q)", kAttention},
}};

}  // namespace

std::span<const FamilyInfo> all_families() {
  return kFamilies;
}

const FamilyInfo& family_info(Family family) {
  return kFamilies.at(static_cast<size_t>(family));
}

std::string_view to_string(Family family) {
  return family_info(family).name;
}

std::ostream& operator<<(std::ostream& os, Family family) {
  return os << to_string(family);
}

std::string_view to_string(ShapeKind kind) {
  switch (kind) {
    case ShapeKind::grouped_gemm:
      return "grouped_gemm";
    case ShapeKind::routing:
      return "routing";
    case ShapeKind::rows:
      return "rows";
  }
  return "?";
}

std::optional<Family> find_family(std::string_view name) {
  for (const FamilyInfo& f : kFamilies)
    if (f.name == name) return f.id;
  return std::nullopt;
}

std::string known_family_names() {
  std::string names;
  for (const FamilyInfo& f : kFamilies) names += (names.empty() ? "" : ", ") + std::string(f.name);
  return names;
}

Family parse_family(std::string_view name) {
  if (auto f = find_family(name)) return *f;
  throw Error("unknown kernel family '" + std::string(name) + "'; known: " + known_family_names());
}

bool implemented_on(Family family, std::string_view backend) {
  const FamilyInfo& f = family_info(family);
  return (backend == "host" && f.on_host) || (backend == "cuda" && f.on_cuda);
}

}  // namespace moejit
