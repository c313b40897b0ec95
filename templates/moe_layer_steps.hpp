// The kernel calls one MoE layer makes per training step (forward and backward), each with the
// Problem it is tuned under and looked up by: the layer-step part of the kernel-family registry.
// One pure function owns the mapping, so `moejit tune --model NAME` (autotune/tune_layer.hpp) tunes
// exactly the problems the runtime later looks up, on either backend (one family name per operation).
//
// The expert GEMMs all compute Y = X . W_e with W (E, K, N) (GemmShape k, n):
//   up_swiglu               X (A, C)  . W_up (E, C, 2De)  -> gate_up, h   {k C,  n De}
//   down_fwd                h (A, De) . W_down (E, De, C) -> y            {k De, n C}
//   down_dgrad, down_wgrad  the backward of down_fwd                     {k De, n C}
//   up_dgrad, up_wgrad      the backward of the up GEMM, N = 2De          {k C,  n 2De}
// Routing steps use a RoutingShape of the layer's rows (width C), swiglu_bwd a RowsShape of width De.
#pragma once
#include <cstdint>
#include <string_view>
#include <vector>

#include "moejit/problem.hpp"

namespace moejit {

// In the order a training step runs them.
enum class LayerStep {
  gate_fwd,
  plan,
  permute_fwd,
  up_swiglu,
  down_fwd,
  combine_fwd,
  combine_bwd,
  down_dgrad,
  down_wgrad,
  swiglu_bwd,
  up_dgrad,
  up_wgrad,
  permute_bwd,
  gate_bwd,
};
inline constexpr int kLayerSteps = 14;
std::string_view to_string(LayerStep step);  // "gate_fwd", ...

struct LayerShape {
  DType dtype = DType::f32;
  int64_t d_model = 0, d_expert = 0, experts = 0, top_k = 0;
  bool operator==(const LayerShape&) const = default;
};

struct LayerKernel {
  LayerStep step;
  Problem problem;  // tokens set
};

Family family_of(LayerStep step);

// The activation dtype the layer's kernels run in by default: f32 on the host (the host GEMMs and
// trainer are f32), bf16 on GPUs.
inline DType default_layer_dtype(std::string_view backend) {
  return backend == "host" ? DType::f32 : DType::bf16;
}

// Whether `backend` runs the step as a kernel of its own: the host backend runs swiglu_bwd in the
// epilogue of down_dgrad (templates/host/grouped_gemm_families.h), so it neither looks it up nor
// needs it tuned. The one place that says so: `moejit tune` and the runtime's kernel reports follow it.
inline bool step_runs_on(LayerStep step, std::string_view backend) {
  return !(backend == "host" && step == LayerStep::swiglu_bwd);
}

// The kLayerSteps kernel calls of one layer step for `tokens` tokens, in step order. Throws Error
// for an impossible shape.
std::vector<LayerKernel> moe_layer_kernels(const LayerShape& shape, int64_t tokens);

}  // namespace moejit
