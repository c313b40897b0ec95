#include "cuda_moe_kernels.hpp"

#include "grouped_gemm/grouped_gemm_spec.hpp"
#include "routing/routing_spec.hpp"
#include "swiglu/swiglu_spec.hpp"

namespace moejit::runtime {
namespace {

// The router of the MoE configs: softmax scores, no renormalisation, scaling 1, no groups.
GateParams softmax_router() {
  return GateParams{};
}

}  // namespace

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

void CudaMoeKernels::gate_fwd(const MoeShape& s, int32_t* index, float* weight, float* probs, float* lse,
                              const float* logits) {
  auto c = steps_.prepare(LayerStep::gate_fwd, s);
  GateForwardArgs a;
  a.logits = logits, a.params = softmax_router(), a.index = index, a.weight = weight, a.probs = probs, a.lse = lse;
  launch_route_gate_fwd(*c.kernels[0], c.problem, c.config, a);
}

void CudaMoeKernels::plan(const MoeShape& s, const RouterLossCoefs& coefs, int32_t* counts, int32_t* offsets,
                          int32_t* slot, int32_t* row_source, float* aux_scale, float* losses, const int32_t* index,
                          const float* probs, const float* lse) {
  auto c = steps_.prepare(LayerStep::plan, s);
  ensure(plan_workspace_, memory_, DType::f32, int64_t(route_plan_workspace_bytes(c.problem, c.config) / 4 + 1));
  ensure(plan_dropped_, memory_, DType::i32, s.n_experts);
  PlanArgs a;
  a.index = index, a.probs = probs, a.lse = lse, a.capacity = -1, a.pad_to = 1;
  a.loss = LossParams{float(coefs.aux_coef), float(coefs.z_coef)};
  a.workspace = plan_workspace_.ptr().data;
  a.counts = counts, a.dropped = plan_dropped_.as<int32_t>(), a.offsets = offsets, a.slot = slot;
  a.row_source = row_source, a.aux_scale = aux_scale, a.losses = losses;
  launch_route_plan(*c.kernels[0], *c.kernels[1], *c.kernels[2], c.problem, c.config, a);
}

void CudaMoeKernels::permute_fwd(const MoeShape& s, float* x_perm, const float* x, const int32_t* slot) {
  auto c = steps_.prepare(LayerStep::permute_fwd, s);
  ScatterArgs a;
  a.src = x, a.slot = slot, a.dst = x_perm;
  launch_route_scatter(*c.kernels[0], c.problem, c.config, a);
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
  GatherArgs a;  // out may alias shared: each vector of out is written after its shared vector is read
  a.rows = y_perm, a.slot = slot, a.weight = weight, a.shared = shared, a.out = out;
  launch_route_gather(*c.kernels[0], c.problem, c.config, a);
}

void CudaMoeKernels::combine_bwd(const MoeShape& s, float* d_y_perm, float* d_weight, const float* d_out,
                                 const float* y_perm, const float* weight, const int32_t* slot) {
  auto c = steps_.prepare(LayerStep::combine_bwd, s);
  ScatterArgs a;
  a.src = d_out, a.slot = slot, a.weight = weight, a.y = y_perm, a.dst = d_y_perm, a.d_weight = d_weight;
  launch_route_scatter(*c.kernels[0], c.problem, c.config, a);
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
  GatherArgs a;  // d_x += sum_k d_x_perm[slot]: d_x is both the shared input and the output
  a.rows = d_x_perm, a.slot = slot, a.shared = d_x, a.out = d_x;
  launch_route_gather(*c.kernels[0], c.problem, c.config, a);
}

void CudaMoeKernels::gate_bwd(const MoeShape& s, float* d_logits, const float* logits, const int32_t* index,
                              const float* d_weight, const float* aux_scale, float z_scale) {
  auto c = steps_.prepare(LayerStep::gate_bwd, s);
  GateBackwardArgs a;
  a.logits = logits, a.index = index, a.d_weight = d_weight, a.aux_scale = aux_scale, a.params = softmax_router();
  a.grad.z_scale = z_scale;
  a.d_logits = d_logits;
  launch_route_gate_bwd(*c.kernels[0], c.problem, c.config, a);
}

}  // namespace moejit::runtime
