// The routing launch helpers' arguments for the MoE layer's routing steps, built once for every
// backend whose MoeKernels run the routing kernels (jit_host_moe_kernels.cpp on process memory,
// cuda_moe_kernels.cpp on device memory): the same pointers in the same roles either way.
#pragma once
#include "moe_kernels.hpp"
#include "routing/routing_spec.hpp"

namespace moejit::runtime::routing_args {

inline GateForwardArgs gate_fwd(const GateParams& gate, const float* bias, int32_t* index, float* weight, float* probs,
                                float* lse, const float* logits) {
  GateForwardArgs a;
  a.logits = logits, a.bias = bias, a.params = gate, a.index = index, a.weight = weight, a.probs = probs, a.lse = lse;
  return a;
}

// Without padding; the caller sets workspace (scratch of its memory).
inline PlanArgs plan(const RouterLossCoefs& coefs, int capacity, int32_t* counts, int32_t* dropped, int32_t* offsets,
                     int32_t* slot, int32_t* row_source, float* aux_scale, float* losses, const int32_t* index,
                     const float* probs, const float* lse) {
  PlanArgs a;
  a.index = index, a.probs = probs, a.lse = lse, a.capacity = capacity, a.pad_to = 1;
  a.loss = LossParams{float(coefs.aux_coef), float(coefs.z_coef), float(coefs.seq_aux_coef), coefs.kernel_seq_tokens()};
  a.counts = counts, a.dropped = dropped, a.offsets = offsets, a.slot = slot, a.row_source = row_source;
  a.aux_scale = aux_scale, a.losses = losses;
  return a;
}

inline ScatterArgs permute_fwd(float* x_perm, const float* x, const int32_t* slot) {
  ScatterArgs a;
  a.src = x, a.slot = slot, a.dst = x_perm;
  return a;
}

// out may alias shared: each vector of out is written after its shared vector is read.
inline GatherArgs combine_fwd(float* out, const float* shared, const float* y_perm, const float* weight,
                              const int32_t* slot) {
  GatherArgs a;
  a.rows = y_perm, a.slot = slot, a.weight = weight, a.shared = shared, a.out = out;
  return a;
}

inline ScatterArgs combine_bwd(float* d_y_perm, float* d_weight, const float* d_out, const float* y_perm,
                               const float* weight, const int32_t* slot) {
  ScatterArgs a;
  a.src = d_out, a.slot = slot, a.weight = weight, a.y = y_perm, a.dst = d_y_perm, a.d_weight = d_weight;
  return a;
}

// d_x += sum_k d_x_perm[slot]: d_x is both the shared input and the output.
inline GatherArgs permute_bwd(float* d_x, const float* d_x_perm, const int32_t* slot) {
  GatherArgs a;
  a.rows = d_x_perm, a.slot = slot, a.shared = d_x, a.out = d_x;
  return a;
}

inline GateBackwardArgs gate_bwd(const GateParams& gate, float* d_logits, const float* logits, const int32_t* index,
                                 const float* d_weight, const float* aux_scale, float z_scale, int64_t seq_tokens) {
  GateBackwardArgs a;
  a.logits = logits, a.index = index, a.d_weight = d_weight, a.aux_scale = aux_scale, a.params = gate;
  a.grad.z_scale = z_scale, a.grad.seq_tokens = seq_tokens;
  a.d_logits = d_logits;
  return a;
}

}  // namespace moejit::runtime::routing_args
