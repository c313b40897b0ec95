// KernelSpec for the grouped GEMM families on the host backend (templates/host/grouped_gemm_families.h):
//   grouped_gemm_fwd        Y = X . W_e                      args (x, w, y)
//   grouped_gemm_up_swiglu  GU = X . [Wg|Wu]_e, H = silu(g)*u  args (x, w_gate_up, gate_up, h)
//   grouped_gemm_dgrad      dX = dY . W_e^T                  args (dy, w, dx)
//   grouped_gemm_wgrad      dW_e = X_e^T . dY_e              args (x, dy, dw)
//   attention_scores, attention_values, attention_grads: the dgrad, fwd and wgrad views with each
//     group's (rows, K) block lower-triangular (causal attention; host/grouped_gemm_families.h),
//     launched with the same functions.
// Problem: a GemmShape (E, K, N; up_swiglu: W has 2N columns; the backward of the fused
// up-projection is dgrad/wgrad with N = 2F), rows = tokens * top_k, f32 only.
// Config (all lowercase names):
//   compiled into the kernel: isa (1 AVX2 + FMA, 2 AVX-512F), mr x nr micro-tile, pack (0: read
//     operands in place where their layout allows, 1: pack A and B panels);
//   passed at launch: kc, mc, nc cache blocks, threads.
// Source::config holds only the compiled half, so configs that differ in blocks or threads share
// one binary: the cache and the autotuner's precompile see ~10 binaries per family, not hundreds.
#pragma once
#include <cstdint>

#include "moejit/kernel_spec.hpp"

namespace moejit {

// The GEMM view a host grouped-GEMM family runs (fwd, up_swiglu, dgrad or wgrad) and whether it is
// causal: the attention_* families are the causal dgrad, fwd and wgrad views. The one table of that
// mapping (the spec, the tuning workload and the tests read it); throws for other families.
struct HostGemmView {
  Family gemm;
  bool causal;
};
HostGemmView host_gemm_view(Family family);

class HostGroupedGemmSpec final : public KernelSpec {
 public:
  explicit HostGroupedGemmSpec(Family family);

  Family family() const override { return family_; }
  bool supports_backend(std::string_view backend) const override { return backend == "host"; }
  std::vector<Config> space(const Problem& problem, const DeviceDescription& device) const override;
  std::string prune_reason(const Problem& problem, const Config& config,
                           const DeviceDescription& device) const override;
  Config heuristic(const Problem& problem, const DeviceDescription& device) const override;
  Source render(const Problem& problem, const Config& config, const DeviceDescription& device) const override;

  static constexpr const char* kEntry = "moejit_host_grouped_gemm";
  static std::string compiled_config(const Config& config);  // "isa2_mr6_nr32_pack1"

 private:
  Family family_;
};

// The output a launch's micro-tiles cover: an average group's rows (an expert's tokens, or K for
// wgrad, whose output is dW_e (K, N)) and the columns (dgrad: K).
struct HostGemmExtent {
  int64_t rows, cols;
};
HostGemmExtent host_gemm_extent(const Problem& problem);

// The fraction of the mr x nr micro-tiles' work that lands in the output (the rest is padding of
// edge tiles), for an average group: what picks the heuristic's tile.
double host_gemm_tile_use(const Problem& problem, int64_t mr, int64_t nr);

// The work items a launch of `problem` hands to `threads` threads with an mr-row micro-tile and
// mc x nc blocks (host/work_split.h; an expert's rows taken as their average): what the heuristic
// keeps above a few per thread.
int64_t host_gemm_work_items(const Problem& problem, int64_t mr, int64_t mc, int64_t nc, int64_t threads);

// Whether a launch of `problem` writes its output with non-temporal stores (config key "stream"):
// the wgrad view (not causal) when dW (E, K, N) is larger than the device's last-level cache. Such
// an output is written once, read only by the optimizer after the rest of the backward pass, and
// cannot stay cached until then; streaming skips reading its lines before writing them (Qwen3-30B-
// A3B's 805 MB wgrad: 8-10 % faster). Smaller outputs keep ordinary stores, which leave them in
// cache for the optimizer; a tuning run could not see that cost, so the rule is not tuned.
bool host_gemm_streams(const Problem& problem, const DeviceDescription& device);

// What attention_scores does to each row of a group's (S, S) block once it is computed
// (host::ScoresEpilogue in host/grouped_gemm_families.h): nothing (entries above the diagonal
// unspecified), attention's causal ALiBi softmax (scores -> probs), or its backward (d_probs ->
// d_scores, reading the forward's probs); both write zeros above the diagonal.
struct HostScoresEpilogue {
  enum class Mode : int64_t { none = 0, softmax = 1, softmax_bwd = 2 };
  Mode mode = Mode::none;
  float scale = 1.0f;
  int64_t alibi_heads = 0;       // softmax: group g is head g % alibi_heads, with its ALiBi slope; 0: none
  const float* probs = nullptr;  // softmax_bwd: (rows, S), as the output
};

// Where the attention_* families find each group's head-side operands (host::HeadLayout in
// host/grouped_gemm_families.h): group g = b H + h is head h of sequence b, its rows `ld` apart
// inside the model's (B, S, width) rows, at column h hd. ld0 and ld1 belong to the two head-side
// operands in argument order (scores: dy and w; values: w and y; grads: dy and dw); 0 means the
// operand is contiguous (G, S, hd), as the tuner lays it out. The other families ignore it.
struct HostHeadLayout {
  int64_t heads = 1, ld0 = 0, ld1 = 0;
};

// What a launch does beyond C = A B; each view takes the parts that apply to it, and the launch
// functions throw Error for the rest.
struct HostGemmOptions {
  // C += A B (an expert without rows adds nothing), not C = A B. Not attention_scores (its rows are
  // rewritten by the softmax), not with the SwiGLU epilogue.
  bool accumulate = false;
  // The SwiGLU backward as the epilogue (fwd and dgrad views, not causal): the product is d_h, with
  // F columns; the output is d_gate_up (rows, 2F), read against the forward's gate_up (rows, 2F).
  const float* swiglu_gate_up = nullptr;
  HostHeadLayout heads;       // the attention_* families
  HostScoresEpilogue scores;  // attention_scores
};

// Runs a loaded host grouped GEMM. offsets: (E + 1) int64 row offsets per expert, offsets[E] = rows.
void launch_host_gemm_fwd(Kernel& kernel, const Problem& problem, const Config& config, const float* x, const float* w,
                          float* y, const int64_t* offsets, const HostGemmOptions& options = {});
void launch_host_gemm_swiglu(Kernel& kernel, const Problem& problem, const Config& config, const float* x,
                             const float* w_gate_up, float* gate_up, float* h, const int64_t* offsets);
void launch_host_gemm_dgrad(Kernel& kernel, const Problem& problem, const Config& config, const float* dy,
                            const float* w, float* dx, const int64_t* offsets, const HostGemmOptions& options = {});
void launch_host_gemm_wgrad(Kernel& kernel, const Problem& problem, const Config& config, const float* x,
                            const float* dy, float* dw, const int64_t* offsets, const HostGemmOptions& options = {});

}  // namespace moejit
