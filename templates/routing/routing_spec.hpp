// KernelSpecs and launch helpers for routing (docs/routing.md):
//   route_gate_fwd / route_gate_bwd   gating + top-k and its backward      config: lanes, tokens
//   route_plan                        counts, offsets, slots, bias update   config: warps
//   route_permute_fwd / route_combine_bwd   scatter rows (one read, K writes)  config: vec, lanes, rows
//   route_combine_fwd / route_permute_bwd   gather rows (K reads, one write)   config: vec, lanes, rows
// Problem: a RoutingShape (E experts, top_k, width of the activation rows), tokens, dtype
// (activations; the router is fp32).
// The launch helpers build one argument array per entry, identical for the GPU kernel and the host
// loop (routing_host.h), so a host Kernel runs the same call.
#pragma once
#include "moejit/kernel_spec.hpp"
#include "routing/routing_gate.h"
#include "routing/routing_plan.h"

namespace moejit {

inline constexpr int kMaxRoutedExperts = 512;
inline constexpr int kMaxTopK = 16;

class RoutingSpec final : public KernelSpec {
 public:
  explicit RoutingSpec(Family family);  // throws Error for a family that is not a routing one
  Family family() const override { return kind_; }
  bool supports_backend(std::string_view backend) const override { return backend == "cuda" || backend == "host"; }
  std::vector<Config> space(const Problem& problem, const DeviceDescription& device) const override;
  std::string prune_reason(const Problem& problem, const Config& config,
                           const DeviceDescription& device) const override;
  Config heuristic(const Problem& problem, const DeviceDescription& device) const override;
  // device.backend "host" renders the host loops with extern "C" entries taking `void** args`.
  Source render(const Problem& problem, const Config& config, const DeviceDescription& device) const override;

  // Entry names of a rendered source, in order (plan: count, offsets, slots, bias_update).
  std::vector<std::string> entries(const Problem& problem, const Config& config, const std::string& backend) const;

 private:
  Family kind_;
};

// Rows the permuted buffers need at most (the exact count stays on the device: offsets[E]).
int64_t route_max_rows(const Problem& problem, int capacity, int pad_to);
// Per-expert capacity for a capacity factor (<= 0: unlimited, returns -1).
int route_capacity(double capacity_factor, const Problem& problem);
// Scratch bytes route_plan needs (chunk counts, chunk sums; one float per sequence with the
// sequence-wise aux loss of LossParams::seq_tokens).
size_t route_plan_workspace_bytes(const Problem& problem, const Config& config, int64_t seq_tokens = 0);

struct GateForwardArgs {
  const float* logits = nullptr;  // (T, E)
  const float* bias = nullptr;    // (E) selection bias, optional
  GateParams params;
  int* index = nullptr;     // (T, K)
  float* weight = nullptr;  // (T, K)
  float* probs = nullptr;   // (T, E) router scores, optional (needed for the aux loss)
  float* lse = nullptr;     // (T) logsumexp, optional (needed for the z loss)
};
struct GateBackwardArgs {
  const float* logits = nullptr;     // (T, E)
  const int* index = nullptr;        // (T, K)
  const float* d_weight = nullptr;   // (T, K), optional
  const float* aux_scale = nullptr;  // (E), or (1 + T / L, E) with grad.seq_tokens = L: the plan's
  GateParams params;
  GateGradParams grad;        // z_scale = z_coef * 2 / T (see route_z_scale); seq_tokens
  float* d_logits = nullptr;  // (T, E)
};
float route_z_scale(float z_coef, int64_t tokens);

struct PlanArgs {
  const int* index = nullptr;    // (T, K)
  const float* probs = nullptr;  // (T, E), optional: aux loss
  const float* lse = nullptr;    // (T), optional: z loss
  int capacity = -1;             // route_capacity()
  int pad_to = 1;                // segment padding (GEMM tile M)
  LossParams loss;               // seq_aux_coef, seq_tokens: the sequence-wise aux loss (needs probs)
  void* workspace = nullptr;     // route_plan_workspace_bytes(.., loss.seq_tokens)
  int* counts = nullptr;         // (E) routed choices per expert (before capacity)
  int* dropped = nullptr;        // (E)
  int* offsets = nullptr;        // (E + 1)
  int* slot = nullptr;           // (T, K)
  int* row_source = nullptr;     // (max rows)
  float* aux_scale = nullptr;    // (E), or (1 + T / L, E) with the sequence-wise aux: the gating
                                 // backward's aux-loss gradient (batch row, then a row per sequence)
  float* losses = nullptr;       // (2): aux, z; optional
};
struct ScatterArgs {
  const void* src = nullptr;      // (T, D) x (permute) or d_out (combine backward)
  const int* slot = nullptr;      // (T, K)
  const float* weight = nullptr;  // (T, K) combine backward only
  const void* y = nullptr;        // (R, D) expert outputs, combine backward only
  void* dst = nullptr;            // (R, D)
  float* d_weight = nullptr;      // (T, K) combine backward only
  const int* offsets = nullptr;   // with row_source: zero the padding rows of dst
  const int* row_source = nullptr;
};
struct GatherArgs {
  const void* rows = nullptr;     // (R, D) y (combine) or d_permuted (permute backward)
  const int* slot = nullptr;      // (T, K)
  const float* weight = nullptr;  // (T, K) combine only
  const void* shared = nullptr;   // (T, D) shared-expert output, optional
  void* out = nullptr;            // (T, D)
};

void launch_route_gate_fwd(Kernel& kernel, const Problem& problem, const Config& config, const GateForwardArgs& a);
void launch_route_gate_bwd(Kernel& kernel, const Problem& problem, const Config& config, const GateBackwardArgs& a);
// Kernels of one route_plan source: count, offsets, slots (entries 0-2), and with the sequence-wise
// aux loss (has_sequence_aux(a.loss)) seq_aux (entry 4; entry 3 is the bias update; 0-based).
void launch_route_plan(Kernel& count, Kernel& offsets, Kernel& slots, const Problem& problem, const Config& config,
                       const PlanArgs& a, Kernel* seq_aux = nullptr);
void launch_route_bias_update(Kernel& kernel, const Problem& problem, const int* counts, float* bias, float gamma);
void launch_route_scatter(Kernel& kernel, const Problem& problem, const Config& config, const ScatterArgs& a);
void launch_route_gather(Kernel& kernel, const Problem& problem, const Config& config, const GatherArgs& a);

}  // namespace moejit
