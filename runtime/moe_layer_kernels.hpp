// The kernel calls one MoE layer makes per training step (forward and backward), each with the
// Problem it is tuned under and looked up by. One pure function owns this mapping so that
// `moejit tune --model NAME` tunes exactly the problems the runtime later looks up.
//
// The expert GEMMs all compute Y = X . W_e with W (E, K, N), K = Problem::d_model, N = d_expert:
//   up_swiglu               X (A, C)  . W_up (E, C, 2De)  -> gate_up, h   {d_model C,  d_expert De}
//   down_fwd                h (A, De) . W_down (E, De, C) -> y            {d_model De, d_expert C}
//   down_dgrad, down_wgrad  the backward of down_fwd                     {d_model De, d_expert C}
//   up_dgrad, up_wgrad      the backward of the up GEMM, N = 2De          {d_model C,  d_expert 2De}
// Routing steps and swiglu_bwd use the layer's own shape {d_model C, d_expert De}.
#pragma once
#include <cstdint>
#include <string_view>
#include <vector>

#include "moejit/problem.hpp"

namespace moejit::runtime {

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
const char* to_string(LayerStep step);  // "gate_fwd", ...

struct LayerShape {
  DType dtype = DType::f32;
  int64_t d_model = 0, d_expert = 0, experts = 0, top_k = 0;
};

struct LayerKernel {
  LayerStep step;
  Problem problem;  // family and tokens set
};

// The kernel family a step runs on `backend` ("host" or "cuda"); throws Error for another backend.
std::string family_of(LayerStep step, std::string_view backend);

// The activation dtype the layer's kernels run in by default: f32 on the host (the host GEMMs and
// trainer are f32), bf16 on GPUs.
inline DType default_layer_dtype(std::string_view backend) {
  return backend == "host" ? DType::f32 : DType::bf16;
}

// The kLayerSteps kernel calls of one layer step for `tokens` tokens, in step order.
std::vector<LayerKernel> moe_layer_kernels(const LayerShape& shape, int64_t tokens, std::string_view backend);

}  // namespace moejit::runtime
