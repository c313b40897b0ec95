// The MoE layer's kernels, one virtual method per step, so that the backend is a parameter: the plain
// C++ reference (reference_moe_kernels.hpp) today; the JIT-compiled, tuning-cache-selected host kernels
// (issues 4/5/6) and the GPU kernels later, without touching moe_layer.hpp. Buffers are row-major;
// N tokens, C = d_model, E experts, K = top_k, De = d_expert, A = N*K assignments. Every method writes
// all of its outputs (no host sync is needed between steps: routing results stay in buffers).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace moejit::runtime {

struct MoeShape {
  int64_t tokens = 0, d_model = 0, n_experts = 0, top_k = 0, d_expert = 0;
  int64_t assignments() const { return tokens * top_k; }
};

// Which tuning-cache rung served a kernel (the ladder of ARCHITECTURE.md), for the end-of-run report.
enum class TuningRung { kExact, kNearestBucket, kOtherDevice, kHeuristic, kReference };
const char* to_string(TuningRung r);
inline bool is_tuned(TuningRung r) {
  return r == TuningRung::kExact || r == TuningRung::kNearestBucket || r == TuningRung::kOtherDevice;
}

struct KernelChoice {
  std::string kernel;  // e.g. "moe_expert_up_swiglu"
  std::string config;  // canonical Config text, empty for the reference
  TuningRung rung = TuningRung::kReference;
};

// "all 14 kernels tuned" or "3 of 14 kernels fell back: a (heuristic), b (reference), ...".
std::string summarize_tuning(const std::vector<KernelChoice>& choices);

template <typename T>
class MoeKernels {
 public:
  virtual ~MoeKernels() = default;
  virtual std::string backend() const = 0;
  // One entry per distinct kernel this backend launches, with the rung that chose its config.
  virtual std::vector<KernelChoice> kernel_choices() const = 0;

  // ---- forward ----
  // logits (N, E) = x (N, C) @ w_router^T, w_router (E, C).
  virtual void router(const MoeShape& s, T* logits, const T* x, const T* w_router) = 0;
  // probs (N, E) = softmax(logits); expert, gate (N, K): the K largest probs (ties: lower expert index),
  // in descending order, gate = prob (softmax over all E, no renormalisation over the K).
  virtual void gate_topk(const MoeShape& s, T* probs, int32_t* expert, T* gate, const T* logits) = 0;
  // offsets (E+1): exclusive prefix sum of per-expert counts. Assignments sorted by expert, then by
  // token (stable): slot (N, K) = row of assignment (t, k); token_of_row (A) = its token.
  virtual void route(const MoeShape& s, int32_t* offsets, int32_t* slot, int32_t* token_of_row,
                     const int32_t* expert) = 0;
  // x_perm (A, C) = x[token_of_row].
  virtual void permute(const MoeShape& s, T* x_perm, const T* x, const int32_t* token_of_row) = 0;
  // Per expert e, rows [offsets[e], offsets[e+1]): gate_up (A, 2De) = x_perm @ w_up[e]^T with
  // w_up (E, 2De, C) = [gate | up]; h (A, De) = silu(gate) * up (fused epilogue).
  virtual void expert_up_swiglu(const MoeShape& s, T* gate_up, T* h, const T* x_perm, const T* w_up,
                                const int32_t* offsets) = 0;
  // y_perm (A, C) = h @ w_down[e]^T per segment, w_down (E, C, De).
  virtual void expert_down(const MoeShape& s, T* y_perm, const T* h, const T* w_down, const int32_t* offsets) = 0;
  // out (N, C) += sum_k gate[t, k] * y_perm[slot[t, k]] (out holds the shared expert's output).
  virtual void combine(const MoeShape& s, T* out, const T* y_perm, const T* gate, const int32_t* slot) = 0;
  // losses[0] = aux = E * sum_i f_i p_i with f_i = count_i / A, p_i = mean_t probs[t, i];
  // losses[1] = z = mean_t logsumexp(logits_t)^2.
  virtual void router_losses(const MoeShape& s, T* losses, const T* probs, const T* logits, const int32_t* offsets) = 0;

  // ---- backward (parameter gradients accumulate: +=) ----
  // d_y_perm (A, C) = gate * d_out[token]; d_gate (N, K) = d_out[t] . y_perm[slot[t, k]].
  virtual void combine_backward(const MoeShape& s, T* d_y_perm, T* d_gate, const T* d_out, const T* y_perm,
                                const T* gate, const int32_t* slot) = 0;
  // d_h (A, De) = d_y_perm @ w_down[e];  d_w_down (E, C, De) += d_y_perm^T @ h per segment.
  virtual void expert_down_backward(const MoeShape& s, T* d_h, T* d_w_down, const T* d_y_perm, const T* h,
                                    const T* w_down, const int32_t* offsets) = 0;
  // d_gate_up (A, 2De) = SwiGLU backward of d_h; d_x_perm (A, C) = d_gate_up @ w_up[e];
  // d_w_up (E, 2De, C) += d_gate_up^T @ x_perm per segment.
  virtual void expert_up_backward(const MoeShape& s, T* d_x_perm, T* d_w_up, T* d_gate_up, const T* d_h,
                                  const T* gate_up, const T* x_perm, const T* w_up, const int32_t* offsets) = 0;
  // d_x (N, C) += sum_k d_x_perm[slot[t, k]].
  virtual void unpermute_backward(const MoeShape& s, T* d_x, const T* d_x_perm, const int32_t* slot) = 0;
  // d_logits (N, E): softmax backward of dprobs = scatter(d_gate) + aux_coef * E f_i / N, plus
  // z_coef * 2 lse_t probs / N. The coefficients already include the loss scale.
  virtual void gate_backward(const MoeShape& s, T* d_logits, const T* d_gate, const T* probs, const T* logits,
                             const int32_t* expert, const int32_t* offsets, T aux_coef, T z_coef) = 0;
  // d_x (N, C) += d_logits @ w_router;  d_w_router (E, C) += d_logits^T @ x.
  virtual void router_backward(const MoeShape& s, T* d_x, T* d_w_router, const T* d_logits, const T* x,
                               const T* w_router) = 0;
};

}  // namespace moejit::runtime
