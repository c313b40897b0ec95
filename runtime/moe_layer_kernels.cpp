#include "moe_layer_kernels.hpp"

#include <string>

#include "moejit/error.hpp"

namespace moejit::runtime {
namespace {

struct StepInfo {
  const char* name;
  const char* host_family;
  const char* cuda_family;
};

// Indexed by LayerStep.
constexpr StepInfo kSteps[kLayerSteps] = {
    {"gate_fwd", "route_gate_fwd", "route_gate_fwd"},
    {"plan", "route_plan", "route_plan"},
    {"permute_fwd", "route_permute_fwd", "route_permute_fwd"},
    {"up_swiglu", "host_grouped_gemm_swiglu", "grouped_gemm_up_swiglu"},
    {"down_fwd", "host_grouped_gemm_fwd", "grouped_gemm_fwd"},
    {"combine_fwd", "route_combine_fwd", "route_combine_fwd"},
    {"combine_bwd", "route_combine_bwd", "route_combine_bwd"},
    {"down_dgrad", "host_grouped_gemm_dgrad", "grouped_gemm_dgrad"},
    {"down_wgrad", "host_grouped_gemm_wgrad", "grouped_gemm_wgrad"},
    {"swiglu_bwd", "swiglu_bwd", "swiglu_bwd"},
    {"up_dgrad", "host_grouped_gemm_dgrad", "grouped_gemm_dgrad"},
    {"up_wgrad", "host_grouped_gemm_wgrad", "grouped_gemm_wgrad"},
    {"permute_bwd", "route_permute_bwd", "route_permute_bwd"},
    {"gate_bwd", "route_gate_bwd", "route_gate_bwd"},
};

const StepInfo& info(LayerStep step) {
  return kSteps[static_cast<int>(step)];
}

}  // namespace

const char* to_string(LayerStep step) {
  return info(step).name;
}

std::string family_of(LayerStep step, std::string_view backend) {
  if (backend == "host") return info(step).host_family;
  if (backend == "cuda") return info(step).cuda_family;
  throw Error("the MoE layer has no kernels for backend '" + std::string(backend) + "': use host or cuda");
}

std::vector<LayerKernel> moe_layer_kernels(const LayerShape& shape, int64_t tokens, std::string_view backend) {
  if (shape.d_model <= 0 || shape.d_expert <= 0 || shape.experts <= 0 || shape.top_k <= 0 ||
      shape.top_k > shape.experts)
    throw Error("MoE layer shape needs d_model, d_expert, experts > 0 and 0 < top_k <= experts");
  if (tokens < 0) throw Error("MoE layer token count must be >= 0");
  std::vector<LayerKernel> kernels;
  for (int i = 0; i < kLayerSteps; ++i) {
    const auto step = static_cast<LayerStep>(i);
    Problem p;
    p.family = family_of(step, backend);
    p.dtype = shape.dtype;
    p.num_experts = shape.experts;
    p.top_k = shape.top_k;
    p.tokens = tokens;
    p.d_model = shape.d_model;
    p.d_expert = shape.d_expert;
    switch (step) {
      case LayerStep::down_fwd:
      case LayerStep::down_dgrad:
      case LayerStep::down_wgrad:  // h (A, De) . W_down (E, De, C)
        p.d_model = shape.d_expert;
        p.d_expert = shape.d_model;
        break;
      case LayerStep::up_dgrad:
      case LayerStep::up_wgrad:  // the unfused up GEMM: N = 2De
        p.d_expert = 2 * shape.d_expert;
        break;
      default:
        break;
    }
    kernels.push_back({step, std::move(p)});
  }
  return kernels;
}

}  // namespace moejit::runtime
