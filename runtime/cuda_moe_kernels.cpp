#include "cuda_moe_kernels.hpp"

#include "grouped_gemm/grouped_gemm_spec.hpp"
#include "moe_routing_args.hpp"
#include "swiglu/swiglu_spec.hpp"

namespace moejit::runtime {

CudaMoeKernels::CudaMoeKernels(KernelCache& cache, CudaStepOps& ops, BackendMemory& memory)
    : steps_(cache, DType::f32), cache_(cache), ops_(ops), memory_(memory) {}
CudaMoeKernels::~CudaMoeKernels() = default;

const void* CudaMoeKernels::to_bf16(Buffer& scratch, const float* src, int64_t n) {
  ensure(scratch, memory_, DType::bf16, n);
  if (n > 0)
    ops_.launch(StepOp::convert_to_bf16, ops_.grid_for(StepOp::convert_to_bf16, n), 1u, scratch.as<bf16>(), src,
                static_cast<unsigned long long>(n));
  return scratch.ptr().data;
}

void CudaMoeKernels::grouped_gemm(LayerStep step, const MoeShape& s, const GemmCall& g) {
  auto c = steps_.prepare(step, s);
  GroupedGemmArgs args;
  args.a = to_bf16(a16_, g.a, g.n_a);
  args.b = to_bf16(b16_, g.b, g.n_b);
  args.out = g.out;
  args.out_gate_up = g.out_gate_up;
  args.offsets = g.offsets;
  args.accumulate = step == LayerStep::down_wgrad || step == LayerStep::up_wgrad;
  launch_grouped_gemm(*c.kernels[0], c.problem, c.config, cache_.backend().device(), args);
}

void CudaMoeKernels::gate_fwd(const MoeShape& s, const GateParams& gate, const float* bias, int32_t* index,
                              float* weight, float* probs, float* lse, const float* logits) {
  auto c = steps_.prepare(LayerStep::gate_fwd, s);
  launch_route_gate_fwd(*c.kernels[0], c.problem, c.config,
                        routing_args::gate_fwd(gate, bias, index, weight, probs, lse, logits));
}

void CudaMoeKernels::plan(const MoeShape& s, const RouterLossCoefs& coefs, int capacity, int32_t* counts,
                          int32_t* dropped, int32_t* offsets, int32_t* slot, int32_t* row_source, float* aux_scale,
                          float* losses, const int32_t* index, const float* probs, const float* lse) {
  auto c = steps_.prepare(LayerStep::plan, s);
  const int64_t workspace = int64_t(route_plan_workspace_bytes(c.problem, c.config, coefs.seq_tokens));
  ensure(plan_workspace_, memory_, DType::f32, workspace / 4 + 1);
  PlanArgs a = routing_args::plan(coefs, capacity, counts, dropped, offsets, slot, row_source, aux_scale, losses, index,
                                  probs, lse);
  a.workspace = plan_workspace_.ptr().data;
  launch_route_plan(*c.kernels[0], *c.kernels[1], *c.kernels[2], c.problem, c.config, a, c.kernels[4].get());
}

void CudaMoeKernels::permute_fwd(const MoeShape& s, float* x_perm, const float* x, const int32_t* slot) {
  auto c = steps_.prepare(LayerStep::permute_fwd, s);
  launch_route_scatter(*c.kernels[0], c.problem, c.config, routing_args::permute_fwd(x_perm, x, slot));
}

void CudaMoeKernels::up_swiglu(const MoeShape& s, float* gate_up, float* h, const float* x_perm, const float* w_up,
                               const int32_t* offsets) {
  const int64_t A = s.assignments(), C = s.d_model, E = s.n_experts, F = s.d_expert;
  grouped_gemm(LayerStep::up_swiglu, s, {x_perm, A * C, w_up, E * C * 2 * F, h, gate_up, offsets});
}

void CudaMoeKernels::down_fwd(const MoeShape& s, float* y_perm, const float* h, const float* w_down,
                              const int32_t* offsets) {
  const int64_t A = s.assignments(), C = s.d_model, E = s.n_experts, F = s.d_expert;
  grouped_gemm(LayerStep::down_fwd, s, {h, A * F, w_down, E * F * C, y_perm, nullptr, offsets});
}

void CudaMoeKernels::combine_fwd(const MoeShape& s, float* out, const float* shared, const float* y_perm,
                                 const float* weight, const int32_t* slot) {
  auto c = steps_.prepare(LayerStep::combine_fwd, s);
  launch_route_gather(*c.kernels[0], c.problem, c.config, routing_args::combine_fwd(out, shared, y_perm, weight, slot));
}

void CudaMoeKernels::combine_bwd(const MoeShape& s, float* d_y_perm, float* d_weight, const float* d_out,
                                 const float* y_perm, const float* weight, const int32_t* slot) {
  auto c = steps_.prepare(LayerStep::combine_bwd, s);
  launch_route_scatter(*c.kernels[0], c.problem, c.config,
                       routing_args::combine_bwd(d_y_perm, d_weight, d_out, y_perm, weight, slot));
}

void CudaMoeKernels::down_dgrad(const MoeShape& s, float* d_h, const float* d_y_perm, const float* w_down,
                                const int32_t* offsets) {
  const int64_t A = s.assignments(), C = s.d_model, E = s.n_experts, F = s.d_expert;
  grouped_gemm(LayerStep::down_dgrad, s, {d_y_perm, A * C, w_down, E * F * C, d_h, nullptr, offsets});
}

void CudaMoeKernels::down_wgrad(const MoeShape& s, float* d_w_down, const float* h, const float* d_y_perm,
                                const int32_t* offsets) {
  const int64_t A = s.assignments(), C = s.d_model, F = s.d_expert;
  grouped_gemm(LayerStep::down_wgrad, s, {h, A * F, d_y_perm, A * C, d_w_down, nullptr, offsets});
}

void CudaMoeKernels::swiglu_bwd(const MoeShape& s, float* d_gate_up, const float* gate_up, const float* d_h) {
  auto c = steps_.prepare(LayerStep::swiglu_bwd, s);
  launch_swiglu_bwd(*c.kernels[0], c.problem, c.config, cache_.backend().device(), gate_up, d_h, d_gate_up);
}

void CudaMoeKernels::up_dgrad(const MoeShape& s, float* d_x_perm, const float* d_gate_up, const float* w_up,
                              const int32_t* offsets) {
  const int64_t A = s.assignments(), C = s.d_model, E = s.n_experts, F = s.d_expert;
  grouped_gemm(LayerStep::up_dgrad, s, {d_gate_up, A * 2 * F, w_up, E * C * 2 * F, d_x_perm, nullptr, offsets});
}

void CudaMoeKernels::up_wgrad(const MoeShape& s, float* d_w_up, const float* x_perm, const float* d_gate_up,
                              const int32_t* offsets) {
  const int64_t A = s.assignments(), C = s.d_model, F = s.d_expert;
  grouped_gemm(LayerStep::up_wgrad, s, {x_perm, A * C, d_gate_up, A * 2 * F, d_w_up, nullptr, offsets});
}

void CudaMoeKernels::permute_bwd(const MoeShape& s, float* d_x, const float* d_x_perm, const int32_t* slot) {
  auto c = steps_.prepare(LayerStep::permute_bwd, s);
  launch_route_gather(*c.kernels[0], c.problem, c.config, routing_args::permute_bwd(d_x, d_x_perm, slot));
}

void CudaMoeKernels::gate_bwd(const MoeShape& s, const GateParams& gate, float* d_logits, const float* logits,
                              const int32_t* index, const float* d_weight, const float* aux_scale, float z_scale,
                              int64_t seq_tokens) {
  auto c = steps_.prepare(LayerStep::gate_bwd, s);
  launch_route_gate_bwd(
      *c.kernels[0], c.problem, c.config,
      routing_args::gate_bwd(gate, d_logits, logits, index, d_weight, aux_scale, z_scale, seq_tokens));
}

void CudaMoeKernels::bias_update(const MoeShape& s, float* bias, const int32_t* load, float rate) {
  steps_.bias_update(s, bias, load, rate);
}

}  // namespace moejit::runtime
