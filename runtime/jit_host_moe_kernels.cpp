#include "jit_host_moe_kernels.hpp"

#include "host/grouped_gemm_spec.hpp"
#include "moe_layer_steps.hpp"
#include "moe_routing_args.hpp"
#include "moe_step_resolver.hpp"
#include "moejit/log.hpp"
#include "swiglu/swiglu_spec.hpp"

namespace moejit::runtime {

struct JitHostMoeKernels::Impl {
  explicit Impl(HostKernelCache& k) : steps(k.cache(), DType::f32), backend(k.backend()) {}

  MoeStepResolver steps;
  HostBackend& backend;
  // Scratch: int64 offsets for the GEMMs, plan buffers.
  std::vector<int64_t> offsets64;
  std::vector<float> plan_workspace;

  MoeStepResolver::Call prepare(LayerStep step, const MoeShape& s) { return steps.prepare(step, s); }

  const int64_t* gemm_offsets(const int32_t* offsets, int64_t experts) {
    offsets64.assign(offsets, offsets + experts + 1);
    return offsets64.data();
  }
};

JitHostMoeKernels::JitHostMoeKernels(HostKernelCache& kernels) : impl_(std::make_unique<Impl>(kernels)) {}
JitHostMoeKernels::~JitHostMoeKernels() = default;

std::vector<KernelChoice> JitHostMoeKernels::kernel_choices() const {
  return impl_->steps.kernel_choices();
}

void JitHostMoeKernels::gate_fwd(const MoeShape& s, const GateParams& gate, const float* bias, int32_t* index,
                                 float* weight, float* probs, float* lse, const float* logits) {
  auto c = impl_->prepare(LayerStep::gate_fwd, s);
  launch_route_gate_fwd(*c.kernels[0], c.problem, c.config,
                        routing_args::gate_fwd(gate, bias, index, weight, probs, lse, logits));
}

void JitHostMoeKernels::plan(const MoeShape& s, const RouterLossCoefs& coefs, int capacity, int32_t* counts,
                             int32_t* dropped, int32_t* offsets, int32_t* slot, int32_t* row_source, float* aux_scale,
                             float* losses, const int32_t* index, const float* probs, const float* lse) {
  auto c = impl_->prepare(LayerStep::plan, s);
  impl_->plan_workspace.resize(route_plan_workspace_bytes(c.problem, c.config, coefs.seq_tokens) / sizeof(float) + 1);
  PlanArgs a = routing_args::plan(coefs, capacity, counts, dropped, offsets, slot, row_source, aux_scale, losses, index,
                                  probs, lse);
  a.workspace = impl_->plan_workspace.data();
  launch_route_plan(*c.kernels[0], *c.kernels[1], *c.kernels[2], c.problem, c.config, a, c.kernels[4].get());
}

void JitHostMoeKernels::permute_fwd(const MoeShape& s, float* x_perm, const float* x, const int32_t* slot) {
  auto c = impl_->prepare(LayerStep::permute_fwd, s);
  launch_route_scatter(*c.kernels[0], c.problem, c.config, routing_args::permute_fwd(x_perm, x, slot));
}

void JitHostMoeKernels::up_swiglu(const MoeShape& s, float* gate_up, float* h, const float* x_perm, const float* w_up,
                                  const int32_t* offsets) {
  auto c = impl_->prepare(LayerStep::up_swiglu, s);
  launch_host_gemm_swiglu(*c.kernels[0], c.problem, c.config, x_perm, w_up, gate_up, h,
                          impl_->gemm_offsets(offsets, s.n_experts));
}

void JitHostMoeKernels::down_fwd(const MoeShape& s, float* y_perm, const float* h, const float* w_down,
                                 const int32_t* offsets) {
  auto c = impl_->prepare(LayerStep::down_fwd, s);
  launch_host_gemm_fwd(*c.kernels[0], c.problem, c.config, h, w_down, y_perm,
                       impl_->gemm_offsets(offsets, s.n_experts));
}

void JitHostMoeKernels::combine_fwd(const MoeShape& s, float* out, const float* shared, const float* y_perm,
                                    const float* weight, const int32_t* slot) {
  auto c = impl_->prepare(LayerStep::combine_fwd, s);
  launch_route_gather(*c.kernels[0], c.problem, c.config, routing_args::combine_fwd(out, shared, y_perm, weight, slot));
}

void JitHostMoeKernels::combine_bwd(const MoeShape& s, float* d_y_perm, float* d_weight, const float* d_out,
                                    const float* y_perm, const float* weight, const int32_t* slot) {
  auto c = impl_->prepare(LayerStep::combine_bwd, s);
  launch_route_scatter(*c.kernels[0], c.problem, c.config,
                       routing_args::combine_bwd(d_y_perm, d_weight, d_out, y_perm, weight, slot));
}

void JitHostMoeKernels::down_dgrad(const MoeShape& s, float* d_h, const float* d_y_perm, const float* w_down,
                                   const int32_t* offsets) {
  auto c = impl_->prepare(LayerStep::down_dgrad, s);
  launch_host_gemm_dgrad(*c.kernels[0], c.problem, c.config, d_y_perm, w_down, d_h,
                         impl_->gemm_offsets(offsets, s.n_experts));
}

void JitHostMoeKernels::down_dgrad_swiglu(const MoeShape& s, float* d_gate_up, float*, const float* d_y_perm,
                                          const float* w_down, const float* gate_up, const int32_t* offsets) {
  auto c = impl_->prepare(LayerStep::down_dgrad, s);
  launch_host_gemm_dgrad(*c.kernels[0], c.problem, c.config, d_y_perm, w_down, d_gate_up,
                         impl_->gemm_offsets(offsets, s.n_experts), {.swiglu_gate_up = gate_up});
}

void JitHostMoeKernels::down_wgrad(const MoeShape& s, float* d_w_down, const float* h, const float* d_y_perm,
                                   const int32_t* offsets) {
  auto c = impl_->prepare(LayerStep::down_wgrad, s);
  launch_host_gemm_wgrad(*c.kernels[0], c.problem, c.config, h, d_y_perm, d_w_down,
                         impl_->gemm_offsets(offsets, s.n_experts), {.accumulate = true});
}

void JitHostMoeKernels::swiglu_bwd(const MoeShape& s, float* d_gate_up, const float* gate_up, const float* d_h) {
  auto c = impl_->prepare(LayerStep::swiglu_bwd, s);
  launch_swiglu_bwd(*c.kernels[0], c.problem, c.config, impl_->backend.device(), gate_up, d_h, d_gate_up);
}

void JitHostMoeKernels::up_dgrad(const MoeShape& s, float* d_x_perm, const float* d_gate_up, const float* w_up,
                                 const int32_t* offsets) {
  auto c = impl_->prepare(LayerStep::up_dgrad, s);
  launch_host_gemm_dgrad(*c.kernels[0], c.problem, c.config, d_gate_up, w_up, d_x_perm,
                         impl_->gemm_offsets(offsets, s.n_experts));
}

void JitHostMoeKernels::up_wgrad(const MoeShape& s, float* d_w_up, const float* x_perm, const float* d_gate_up,
                                 const int32_t* offsets) {
  auto c = impl_->prepare(LayerStep::up_wgrad, s);
  launch_host_gemm_wgrad(*c.kernels[0], c.problem, c.config, x_perm, d_gate_up, d_w_up,
                         impl_->gemm_offsets(offsets, s.n_experts), {.accumulate = true});
}

void JitHostMoeKernels::permute_bwd(const MoeShape& s, float* d_x, const float* d_x_perm, const int32_t* slot) {
  auto c = impl_->prepare(LayerStep::permute_bwd, s);
  launch_route_gather(*c.kernels[0], c.problem, c.config, routing_args::permute_bwd(d_x, d_x_perm, slot));
}

void JitHostMoeKernels::gate_bwd(const MoeShape& s, const GateParams& gate, float* d_logits, const float* logits,
                                 const int32_t* index, const float* d_weight, const float* aux_scale, float z_scale,
                                 int64_t seq_tokens) {
  auto c = impl_->prepare(LayerStep::gate_bwd, s);
  launch_route_gate_bwd(
      *c.kernels[0], c.problem, c.config,
      routing_args::gate_bwd(gate, d_logits, logits, index, d_weight, aux_scale, z_scale, seq_tokens));
}

void JitHostMoeKernels::bias_update(const MoeShape& s, float* bias, const int32_t* load, float rate) {
  impl_->steps.bias_update(s, bias, load, rate);
}

}  // namespace moejit::runtime
