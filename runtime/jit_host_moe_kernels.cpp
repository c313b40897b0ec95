#include "jit_host_moe_kernels.hpp"

#include <algorithm>
#include <array>
#include <map>

#include "host/grouped_gemm_spec.hpp"
#include "moe_layer_steps.hpp"
#include "moejit/log.hpp"
#include "routing/routing_spec.hpp"
#include "swiglu/swiglu_spec.hpp"

namespace moejit::runtime {
namespace {

// One step's call: its problem, the looked-up config and the loaded kernels.
struct Call {
  const Problem& problem;
  const Config& config;
  std::vector<std::unique_ptr<Kernel>>& kernels;
};

struct StepChoice {
  std::string config = JitHostMoeKernels::kNotRun;
  Rung worst = Rung::exact;
  bool ran = false;
};

}  // namespace

struct JitHostMoeKernels::Impl {
  explicit Impl(HostKernelCache& k) : cache(k), backend(k.backend()) {}

  HostKernelCache& cache;
  HostBackend& backend;
  std::array<StepChoice, kLayerSteps> choices;
  // The 14 problems of the last (shape, token count) and, per step, what they resolved to: the hot
  // path looks nothing up twice.
  LayerShape shape;
  int64_t tokens = -1;
  std::vector<LayerKernel> problems;
  std::array<HostKernelCache::Entry, kLayerSteps> resolved;
  // Scratch: int64 offsets for the GEMMs, a weight gradient before it is accumulated, plan buffers.
  std::vector<int64_t> offsets64;
  std::vector<float> dw, plan_workspace;

  Call prepare(LayerStep step, const MoeShape& s) {
    const LayerShape want{DType::f32, s.d_model, s.d_expert, s.n_experts, s.top_k};
    if (s.tokens != tokens || want != shape) {
      problems = moe_layer_kernels(want, s.tokens);
      shape = want;
      tokens = s.tokens;
      resolved = {};
    }
    const Problem& problem = problems[static_cast<int>(step)].problem;
    HostKernelCache::Entry& r = resolved[static_cast<int>(step)];
    if (!r.kernels) {  // the step's config and rung change only here
      r = cache.resolve(problem);
      StepChoice& choice = choices[static_cast<int>(step)];
      choice.config = r.config().to_string();
      choice.worst = choice.ran ? std::max(choice.worst, r.result->rung) : r.result->rung;
      choice.ran = true;
    }
    return {problem, r.config(), *r.kernels};
  }

  const int64_t* gemm_offsets(const int32_t* offsets, int64_t experts) {
    offsets64.assign(offsets, offsets + experts + 1);
    return offsets64.data();
  }

  // dw_sum (size) += what `wgrad` writes into a scratch buffer (the host wgrad overwrites its output).
  template <typename F>
  void accumulate(float* dw_sum, int64_t size, F&& wgrad) {
    dw.resize(size);
    wgrad(dw.data());
    for (int64_t i = 0; i < size; ++i) dw_sum[i] += dw[i];
  }
};

JitHostMoeKernels::JitHostMoeKernels(HostKernelCache& kernels) : impl_(std::make_unique<Impl>(kernels)) {}
JitHostMoeKernels::~JitHostMoeKernels() = default;

std::vector<KernelChoice> JitHostMoeKernels::kernel_choices() const {
  std::vector<KernelChoice> v;
  for (int i = 0; i < kLayerSteps; ++i) {
    const StepChoice& c = impl_->choices[i];
    v.push_back({std::string(to_string(LayerStep(i))), c.config, c.ran ? c.worst : Rung::heuristic});
  }
  return v;
}

void JitHostMoeKernels::gate_fwd(const MoeShape& s, const GateParams& gate, const float* bias, int32_t* index,
                                 float* weight, float* probs, float* lse, const float* logits) {
  Call c = impl_->prepare(LayerStep::gate_fwd, s);
  GateForwardArgs a;
  a.logits = logits, a.bias = bias, a.params = gate, a.index = index, a.weight = weight, a.probs = probs, a.lse = lse;
  launch_route_gate_fwd(*c.kernels[0], c.problem, c.config, a);
}

void JitHostMoeKernels::plan(const MoeShape& s, const RouterLossCoefs& coefs, int capacity, int32_t* counts,
                             int32_t* dropped, int32_t* offsets, int32_t* slot, int32_t* row_source, float* aux_scale,
                             float* losses, const int32_t* index, const float* probs, const float* lse) {
  Call c = impl_->prepare(LayerStep::plan, s);
  impl_->plan_workspace.resize(route_plan_workspace_bytes(c.problem, c.config) / sizeof(float) + 1);
  PlanArgs a;
  a.index = index, a.probs = probs, a.lse = lse, a.capacity = capacity, a.pad_to = 1;
  a.loss = LossParams{float(coefs.aux_coef), float(coefs.z_coef)};
  a.workspace = impl_->plan_workspace.data();
  a.counts = counts, a.dropped = dropped, a.offsets = offsets, a.slot = slot, a.row_source = row_source;
  a.aux_scale = aux_scale, a.losses = losses;
  launch_route_plan(*c.kernels[0], *c.kernels[1], *c.kernels[2], c.problem, c.config, a);
}

void JitHostMoeKernels::permute_fwd(const MoeShape& s, float* x_perm, const float* x, const int32_t* slot) {
  Call c = impl_->prepare(LayerStep::permute_fwd, s);
  ScatterArgs a;
  a.src = x, a.slot = slot, a.dst = x_perm;
  launch_route_scatter(*c.kernels[0], c.problem, c.config, a);
}

void JitHostMoeKernels::up_swiglu(const MoeShape& s, float* gate_up, float* h, const float* x_perm, const float* w_up,
                                  const int32_t* offsets) {
  Call c = impl_->prepare(LayerStep::up_swiglu, s);
  launch_host_gemm_swiglu(*c.kernels[0], c.problem, c.config, x_perm, w_up, gate_up, h,
                          impl_->gemm_offsets(offsets, s.n_experts));
}

void JitHostMoeKernels::down_fwd(const MoeShape& s, float* y_perm, const float* h, const float* w_down,
                                 const int32_t* offsets) {
  Call c = impl_->prepare(LayerStep::down_fwd, s);
  launch_host_gemm_fwd(*c.kernels[0], c.problem, c.config, h, w_down, y_perm,
                       impl_->gemm_offsets(offsets, s.n_experts));
}

void JitHostMoeKernels::combine_fwd(const MoeShape& s, float* out, const float* shared, const float* y_perm,
                                    const float* weight, const int32_t* slot) {
  Call c = impl_->prepare(LayerStep::combine_fwd, s);
  GatherArgs a;  // out may alias shared: each vector of out is written after its shared vector is read
  a.rows = y_perm, a.slot = slot, a.weight = weight, a.shared = shared, a.out = out;
  launch_route_gather(*c.kernels[0], c.problem, c.config, a);
}

void JitHostMoeKernels::combine_bwd(const MoeShape& s, float* d_y_perm, float* d_weight, const float* d_out,
                                    const float* y_perm, const float* weight, const int32_t* slot) {
  Call c = impl_->prepare(LayerStep::combine_bwd, s);
  ScatterArgs a;
  a.src = d_out, a.slot = slot, a.weight = weight, a.y = y_perm, a.dst = d_y_perm, a.d_weight = d_weight;
  launch_route_scatter(*c.kernels[0], c.problem, c.config, a);
}

void JitHostMoeKernels::down_dgrad(const MoeShape& s, float* d_h, const float* d_y_perm, const float* w_down,
                                   const int32_t* offsets) {
  Call c = impl_->prepare(LayerStep::down_dgrad, s);
  launch_host_gemm_dgrad(*c.kernels[0], c.problem, c.config, d_y_perm, w_down, d_h,
                         impl_->gemm_offsets(offsets, s.n_experts));
}

void JitHostMoeKernels::down_wgrad(const MoeShape& s, float* d_w_down, const float* h, const float* d_y_perm,
                                   const int32_t* offsets) {
  Call c = impl_->prepare(LayerStep::down_wgrad, s);
  const int64_t* off = impl_->gemm_offsets(offsets, s.n_experts);
  impl_->accumulate(d_w_down, s.n_experts * s.d_expert * s.d_model, [&](float* dw) {
    launch_host_gemm_wgrad(*c.kernels[0], c.problem, c.config, h, d_y_perm, dw, off);
  });
}

void JitHostMoeKernels::swiglu_bwd(const MoeShape& s, float* d_gate_up, const float* gate_up, const float* d_h) {
  Call c = impl_->prepare(LayerStep::swiglu_bwd, s);
  launch_swiglu_bwd(*c.kernels[0], c.problem, c.config, impl_->backend.device(), gate_up, d_h, d_gate_up);
}

void JitHostMoeKernels::up_dgrad(const MoeShape& s, float* d_x_perm, const float* d_gate_up, const float* w_up,
                                 const int32_t* offsets) {
  Call c = impl_->prepare(LayerStep::up_dgrad, s);
  launch_host_gemm_dgrad(*c.kernels[0], c.problem, c.config, d_gate_up, w_up, d_x_perm,
                         impl_->gemm_offsets(offsets, s.n_experts));
}

void JitHostMoeKernels::up_wgrad(const MoeShape& s, float* d_w_up, const float* x_perm, const float* d_gate_up,
                                 const int32_t* offsets) {
  Call c = impl_->prepare(LayerStep::up_wgrad, s);
  const int64_t* off = impl_->gemm_offsets(offsets, s.n_experts);
  impl_->accumulate(d_w_up, s.n_experts * s.d_model * 2 * s.d_expert, [&](float* dw) {
    launch_host_gemm_wgrad(*c.kernels[0], c.problem, c.config, x_perm, d_gate_up, dw, off);
  });
}

void JitHostMoeKernels::permute_bwd(const MoeShape& s, float* d_x, const float* d_x_perm, const int32_t* slot) {
  Call c = impl_->prepare(LayerStep::permute_bwd, s);
  GatherArgs a;  // d_x += sum_k d_x_perm[slot]: d_x is both the shared input and the output
  a.rows = d_x_perm, a.slot = slot, a.shared = d_x, a.out = d_x;
  launch_route_gather(*c.kernels[0], c.problem, c.config, a);
}

void JitHostMoeKernels::gate_bwd(const MoeShape& s, const GateParams& gate, float* d_logits, const float* logits,
                                 const int32_t* index, const float* d_weight, const float* aux_scale, float z_scale) {
  Call c = impl_->prepare(LayerStep::gate_bwd, s);
  GateBackwardArgs a;
  a.logits = logits, a.index = index, a.d_weight = d_weight, a.aux_scale = aux_scale, a.params = gate;
  a.grad.z_scale = z_scale;
  a.d_logits = d_logits;
  launch_route_gate_bwd(*c.kernels[0], c.problem, c.config, a);
}

// The bias update is entry 4 of the route_plan source. It runs once per step on the step's token
// count, which differs from a micro-batch's: its problem is resolved on its own (cached by key),
// leaving the hot path's 14 resolved steps alone.
void JitHostMoeKernels::bias_update(const MoeShape& s, float* bias, const int32_t* load, float rate) {
  const LayerShape shape{DType::f32, s.d_model, s.d_expert, s.n_experts, s.top_k};
  const Problem problem = moe_layer_kernels(shape, s.tokens)[static_cast<int>(LayerStep::plan)].problem;
  const HostKernelCache::Entry e = impl_->cache.resolve(problem);
  launch_route_bias_update(e.kernel(3), problem, load, bias, rate);
}

}  // namespace moejit::runtime
