#include "moe_layer_steps.hpp"

#include <string>

#include "moejit/error.hpp"

namespace moejit {
namespace {

// How a step's shape follows from the layer's (see the header's table).
enum class ShapeRule { routing, up, down, up_unfused, swiglu };

struct StepInfo {
  std::string_view name;
  Family family;
  ShapeRule rule;
};

// Indexed by LayerStep.
constexpr StepInfo kSteps[kLayerSteps] = {
    {"gate_fwd", Family::route_gate_fwd, ShapeRule::routing},
    {"plan", Family::route_plan, ShapeRule::routing},
    {"permute_fwd", Family::route_permute_fwd, ShapeRule::routing},
    {"up_swiglu", Family::grouped_gemm_up_swiglu, ShapeRule::up},
    {"down_fwd", Family::grouped_gemm_fwd, ShapeRule::down},
    {"combine_fwd", Family::route_combine_fwd, ShapeRule::routing},
    {"combine_bwd", Family::route_combine_bwd, ShapeRule::routing},
    {"down_dgrad", Family::grouped_gemm_dgrad, ShapeRule::down},
    {"down_wgrad", Family::grouped_gemm_wgrad, ShapeRule::down},
    {"swiglu_bwd", Family::swiglu_bwd, ShapeRule::swiglu},
    {"up_dgrad", Family::grouped_gemm_dgrad, ShapeRule::up_unfused},
    {"up_wgrad", Family::grouped_gemm_wgrad, ShapeRule::up_unfused},
    {"permute_bwd", Family::route_permute_bwd, ShapeRule::routing},
    {"gate_bwd", Family::route_gate_bwd, ShapeRule::routing},
};

const StepInfo& info(LayerStep step) {
  return kSteps[static_cast<int>(step)];
}

Shape step_shape(ShapeRule rule, const LayerShape& l) {
  switch (rule) {
    case ShapeRule::routing:
      return RoutingShape{l.experts, l.top_k, l.d_model};
    case ShapeRule::up:  // x_perm (A, C) . W_up (E, C, 2De): the fused kernel's N is De
      return GemmShape{l.experts, l.top_k, l.d_model, l.d_expert};
    case ShapeRule::down:  // h (A, De) . W_down (E, De, C)
      return GemmShape{l.experts, l.top_k, l.d_expert, l.d_model};
    case ShapeRule::up_unfused:  // the up GEMM's backward sees its whole N = 2De
      return GemmShape{l.experts, l.top_k, l.d_model, 2 * l.d_expert};
    case ShapeRule::swiglu:
      return RowsShape{l.top_k, l.d_expert};
  }
  throw Error("unknown layer shape rule");
}

}  // namespace

std::string_view to_string(LayerStep step) {
  return info(step).name;
}

Family family_of(LayerStep step) {
  return info(step).family;
}

std::vector<LayerKernel> moe_layer_kernels(const LayerShape& shape, int64_t tokens) {
  if (shape.d_model <= 0 || shape.d_expert <= 0 || shape.experts <= 0 || shape.top_k <= 0 ||
      shape.top_k > shape.experts)
    throw Error("MoE layer shape needs d_model, d_expert, experts > 0 and 0 < top_k <= experts");
  if (tokens < 0) throw Error("MoE layer token count must be >= 0");
  std::vector<LayerKernel> kernels;
  for (int i = 0; i < kLayerSteps; ++i) {
    const auto step = static_cast<LayerStep>(i);
    kernels.push_back({step, Problem(info(step).family, shape.dtype, step_shape(info(step).rule, shape), tokens)});
  }
  return kernels;
}

}  // namespace moejit
