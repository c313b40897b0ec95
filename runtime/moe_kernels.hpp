// The MoE layer's kernels, one virtual method per kernel call of a training step, so that the backend
// is a parameter: the plain C++ reference (reference_moe_kernels.hpp), the JIT-compiled host kernels
// chosen through the tuning cache (jit_host_moe_kernels.hpp), the GPU kernels later. The methods are
// the 14 steps of templates/moe_layer_steps.hpp (LayerStep), in the decomposition the real kernels have:
// routing (templates/routing, docs/routing.md), the grouped GEMMs (Y = X . W_e, W (E, K, N)) and the
// SwiGLU backward. The router projection itself (logits = x @ w_router^T) is a dense matmul of the
// layer, like attention, and not one of them.
//
// Buffers are row-major; N tokens, C = d_model, E experts, K = top_k, De = d_expert, A = N*K: the
// permuted buffers hold R = offsets[E] <= A rows (R < A when a capacity drops choices; no padding).
// Rows past R are unspecified. Every method writes all of its outputs; gradients of parameters and
// the layer input accumulate (+=) where a comment says so.
//
// The router's options are the routing kernels' GateParams (docs/routing.md): softmax or sigmoid
// scores, renormalised top-k, routed scaling, group-limited routing; a selection bias (E) changes
// which experts are chosen, never the weights; a capacity drops choices (slot -1).
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "moejit/rung.hpp"
#include "routing/routing_gate.h"  // GateParams

namespace moejit::runtime {

struct MoeShape {
  int64_t tokens = 0, d_model = 0, n_experts = 0, top_k = 0, d_expert = 0;
  int64_t assignments() const { return tokens * top_k; }
};

// The router losses' coefficients (the routing kernels' LossParams): the plan's loss values include
// them, aux = aux_coef * E * sum_e f_e p_e and z = z_coef * mean_t lse_t^2; with seq_aux_coef > 0
// the aux adds the same formula per sequence of seq_tokens tokens, averaged over the sequences
// (templates/routing/routing_plan.h).
struct RouterLossCoefs {
  double aux_coef = 0, z_coef = 0, seq_aux_coef = 0;
  int64_t seq_tokens = 0;
  bool sequence_aux() const { return seq_aux_coef > 0 && seq_tokens > 0; }
  // The sequence length the kernels see: 0 turns the sequence-wise loss off.
  int64_t kernel_seq_tokens() const { return sequence_aux() ? seq_tokens : 0; }
  // aux_scale's rows: the batch's, then one per sequence with the sequence-wise loss.
  int64_t aux_rows(int64_t tokens) const { return 1 + (sequence_aux() ? tokens / seq_tokens : 0); }
};

// Which tuning-cache rung served a kernel, for the end-of-run report; no rung: the reference
// kernels (plain loops, nothing to tune).
struct KernelChoice {
  std::string kernel;  // the step, e.g. "up_swiglu"
  std::string config;  // canonical Config text, empty for the reference
  std::optional<Rung> rung;
};

// The rung's name, "reference" for none.
const char* rung_name(const std::optional<Rung>& rung);

// "all 14 kernels tuned (14 exact)"; "14 kernels tuned, 2 of them for another problem: 12 exact,
// 2 nearest_bucket" (decisions for another token bucket or device served); or "3 of 14 kernels not tuned: a
// (heuristic), b (reference), c (heuristic); 11 tuned (11 exact)": every rung is counted; "no tuned
// kernels" for an empty list (the reference backend).
std::string summarize_tuning(const std::vector<KernelChoice>& choices);

template <typename T>
class MoeKernels {
 public:
  virtual ~MoeKernels() = default;
  virtual std::string backend() const = 0;
  // One entry per LayerStep (14, in step order, named by to_string(LayerStep)), with the config and
  // the rung that chose it.
  virtual std::vector<KernelChoice> kernel_choices() const = 0;

  // ---- forward ----
  // gate_fwd: probs (N, E) = the scores (softmax or sigmoid of logits (N, E)), lse (N) = logsumexp
  // of the logits; index, weight (N, K): the K best keys (score + bias (E), bias may be null) inside
  // the topk_groups best groups, best first (ties: lower index), weight = scaling * score, divided by
  // the sum of the K scores (+1e-20) when renormalised.
  virtual void gate_fwd(const MoeShape& s, const GateParams& gate, const T* bias, int32_t* index, T* weight, T* probs,
                        T* lse, const T* logits) = 0;
  // plan: counts (E) choices per expert (before capacity), dropped (E) choices beyond `capacity`
  // (< 0: none; the earliest tokens are kept), offsets (E+1) exclusive prefix sum of the kept
  // choices, slot (N, K) the permuted row of choice (t, k) (rows sorted by expert, then token; -1:
  // dropped), row_source (R) = t*K + k of each row, aux_scale (coefs.aux_rows(N), E): row 0
  // aux_coef * E * f_e / N (d aux / d score, f_e = counts_e / A), then with the sequence-wise loss
  // one row per sequence s: (seq_aux_coef / S) * E * f_{s,e} / L; losses (2) = {aux (both), z}.
  virtual void plan(const MoeShape& s, const RouterLossCoefs& coefs, int capacity, int32_t* counts, int32_t* dropped,
                    int32_t* offsets, int32_t* slot, int32_t* row_source, T* aux_scale, T* losses, const int32_t* index,
                    const T* probs, const T* lse) = 0;
  // permute_fwd: x_perm (R, C), x_perm[slot[t, k]] = x[t] (dropped choices: nothing).
  virtual void permute_fwd(const MoeShape& s, T* x_perm, const T* x, const int32_t* slot) = 0;
  // up_swiglu: per expert e, rows [offsets[e], offsets[e+1]): gate_up (A, 2De) = x_perm . w_up[e] with
  // w_up (E, C, 2De), columns [gate | up]; h (A, De) = silu(gate) * up.
  virtual void up_swiglu(const MoeShape& s, T* gate_up, T* h, const T* x_perm, const T* w_up,
                         const int32_t* offsets) = 0;
  // down_fwd: y_perm (A, C) = h . w_down[e] per segment, w_down (E, De, C).
  virtual void down_fwd(const MoeShape& s, T* y_perm, const T* h, const T* w_down, const int32_t* offsets) = 0;
  // combine_fwd: out (N, C) = shared[t] + sum_k weight[t, k] * y_perm[slot[t, k]] over the kept
  // choices; shared (N, C) may be null (no shared expert) or equal to out.
  virtual void combine_fwd(const MoeShape& s, T* out, const T* shared, const T* y_perm, const T* weight,
                           const int32_t* slot) = 0;

  // ---- backward ----
  // combine_bwd: d_y_perm[slot[t, k]] = weight[t, k] * d_out[t]; d_weight (N, K) = d_out[t] . y_perm[slot]
  // (0 for a dropped choice).
  virtual void combine_bwd(const MoeShape& s, T* d_y_perm, T* d_weight, const T* d_out, const T* y_perm,
                           const T* weight, const int32_t* slot) = 0;
  // down_dgrad: d_h (A, De) = d_y_perm . w_down[e]^T per segment.
  virtual void down_dgrad(const MoeShape& s, T* d_h, const T* d_y_perm, const T* w_down, const int32_t* offsets) = 0;
  // down_wgrad: d_w_down (E, De, C) += h_e^T . d_y_perm_e (an empty expert adds nothing).
  virtual void down_wgrad(const MoeShape& s, T* d_w_down, const T* h, const T* d_y_perm, const int32_t* offsets) = 0;
  // swiglu_bwd: d_gate_up (A, 2De) from d_h (A, De) and the forward's gate_up.
  virtual void swiglu_bwd(const MoeShape& s, T* d_gate_up, const T* gate_up, const T* d_h) = 0;
  // down_dgrad, then swiglu_bwd: d_gate_up from d_y_perm, d_h scratch. A backend that runs the
  // SwiGLU backward in the dgrad's epilogue overrides it and leaves d_h unwritten.
  virtual void down_dgrad_swiglu(const MoeShape& s, T* d_gate_up, T* d_h, const T* d_y_perm, const T* w_down,
                                 const T* gate_up, const int32_t* offsets) {
    down_dgrad(s, d_h, d_y_perm, w_down, offsets);
    swiglu_bwd(s, d_gate_up, gate_up, d_h);
  }
  // up_dgrad: d_x_perm (A, C) = d_gate_up . w_up[e]^T per segment.
  virtual void up_dgrad(const MoeShape& s, T* d_x_perm, const T* d_gate_up, const T* w_up, const int32_t* offsets) = 0;
  // up_wgrad: d_w_up (E, C, 2De) += x_perm_e^T . d_gate_up_e.
  virtual void up_wgrad(const MoeShape& s, T* d_w_up, const T* x_perm, const T* d_gate_up, const int32_t* offsets) = 0;
  // permute_bwd: d_x (N, C) += sum_k d_x_perm[slot[t, k]].
  virtual void permute_bwd(const MoeShape& s, T* d_x, const T* d_x_perm, const int32_t* slot) = 0;
  // gate_bwd: d_logits (N, E) = the score function's backward of d_score = aux_scale + the weights'
  // backward (scaling, renormalisation) of d_weight at the chosen experts, plus z_scale * lse_t *
  // softmax_t (z_scale = 2 z_coef / N times the loss scale; aux_scale is scaled too). seq_tokens > 0:
  // token t also adds aux_scale row 1 + t / seq_tokens (the plan's sequence-wise rows).
  virtual void gate_bwd(const MoeShape& s, const GateParams& gate, T* d_logits, const T* logits, const int32_t* index,
                        const T* d_weight, const T* aux_scale, T z_scale, int64_t seq_tokens) = 0;

  // ---- between steps ----
  // bias_update (auxiliary-loss-free balancing): bias_e += rate * sign(N*K/E - load_e), load (E) the
  // choices per expert over the step's N = s.tokens tokens (route_bias_update).
  virtual void bias_update(const MoeShape& s, T* bias, const int32_t* load, T rate) = 0;
};

}  // namespace moejit::runtime
