// The MoE layer's 14 kernel steps resolved on a KernelCache, shared by every tuned MoeKernels
// (jit_host_moe_kernels.hpp, cuda_moe_kernels.hpp): each call takes its step's Problem from
// moe_layer_kernels(shape, tokens) (templates/moe_layer_steps.hpp: exactly what `moejit tune --model`
// tunes), resolves it once per (shape, token count), and remembers per step the config of its latest
// call and the worst rung that served it during the run.
#pragma once
#include <array>
#include <string>
#include <vector>

#include "kernel_cache.hpp"
#include "moe_layer_steps.hpp"
#include "routing/routing_spec.hpp"  // launch_route_bias_update

namespace moejit::runtime {

class MoeStepResolver {
 public:
  static constexpr const char* kNotRun = "(not run)";
  // `dtype`: the activation dtype of the steps' problems.
  MoeStepResolver(KernelCache& cache, DType dtype) : cache_(cache), dtype_(dtype) {}

  // One step's call: its problem, the looked-up config and the loaded kernels.
  struct Call {
    const Problem& problem;
    const Config& config;
    std::vector<std::unique_ptr<Kernel>>& kernels;
  };
  Call prepare(LayerStep step, const MoeShape& s);
  // The selection-bias update (route_bias_update: entry 3, 0-based, of the route_plan source). It runs once per
  // step on the step's token count, which differs from a micro-batch's: its problem is resolved on
  // its own (the cache keeps it), leaving the hot path's 14 resolved steps alone.
  void bias_update(const MoeShape& s, float* bias, const int32_t* load, float rate) {
    const LayerShape shape{dtype_, s.d_model, s.d_expert, s.n_experts, s.top_k};
    const Problem problem = moe_layer_kernels(shape, s.tokens)[static_cast<int>(LayerStep::plan)].problem;
    launch_route_bias_update(cache_.resolve(problem).kernel(3), problem, load, bias, rate);
  }

  // One entry per LayerStep; a step not run yet reports the heuristic rung with config kNotRun.
  std::vector<KernelChoice> kernel_choices() const;

 private:
  struct StepChoice {
    std::string config = kNotRun;
    Rung worst = Rung::exact;
    bool ran = false;
  };
  KernelCache& cache_;
  DType dtype_;
  std::array<StepChoice, kLayerSteps> choices_;
  // The 14 problems of the last (shape, token count) and, per step, what they resolved to: the hot
  // path looks nothing up twice.
  LayerShape shape_;
  int64_t tokens_ = -1;
  std::vector<LayerKernel> problems_;
  std::array<KernelCache::Entry, kLayerSteps> resolved_;
};

inline MoeStepResolver::Call MoeStepResolver::prepare(LayerStep step, const MoeShape& s) {
  const LayerShape want{dtype_, s.d_model, s.d_expert, s.n_experts, s.top_k};
  if (s.tokens != tokens_ || want != shape_) {
    problems_ = moe_layer_kernels(want, s.tokens);
    shape_ = want;
    tokens_ = s.tokens;
    resolved_ = {};
  }
  const Problem& problem = problems_[static_cast<int>(step)].problem;
  KernelCache::Entry& r = resolved_[static_cast<int>(step)];
  if (!r.kernels) {  // the step's config and rung change only here
    r = cache_.resolve(problem);
    StepChoice& choice = choices_[static_cast<int>(step)];
    choice.config = r.config().to_string();
    choice.worst = choice.ran ? std::max(choice.worst, r.result->rung) : r.result->rung;
    choice.ran = true;
  }
  return {problem, r.config(), *r.kernels};
}

inline std::vector<KernelChoice> MoeStepResolver::kernel_choices() const {
  std::vector<KernelChoice> v;
  for (int i = 0; i < kLayerSteps; ++i) {
    const StepChoice& c = choices_[i];
    v.push_back({std::string(to_string(LayerStep(i))), c.config, c.ran ? c.worst : Rung::heuristic});
  }
  return v;
}

}  // namespace moejit::runtime
