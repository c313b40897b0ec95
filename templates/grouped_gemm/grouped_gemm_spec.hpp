// KernelSpec for the grouped GEMM families on GPUs: grouped_gemm_fwd, grouped_gemm_up_swiglu,
// grouped_gemm_dgrad and grouped_gemm_wgrad (see grouped_gemm_schedule.h for the maths).
// Problem: a GemmShape (the weight is W (E, K, N); up_swiglu: (E, K, 2N) [gate | up]),
// rows M_total = tokens * top_k, dtype = output dtype (inputs are bf16).
// Configs, two template paths:
//   tc80: mma.sync (any arch >= sm_80, sm_90a included)  bm, bn, bk, w (warps), s (stages)
//   tc90: wgmma + TMA, warp-specialised (sm_90a only)    bm (64 per consumer warpgroup), bn, s
#pragma once
#include "grouped_gemm/grouped_gemm_schedule.h"
#include "moejit/kernel_spec.hpp"

namespace moejit {

class GroupedGemmSpec final : public KernelSpec {
 public:
  explicit GroupedGemmSpec(Family family) : op_(op_of(family)) {}
  Family family() const override { return family_of(op_); }
  bool supports_backend(std::string_view backend) const override { return backend == "cuda"; }
  std::vector<Config> space(const Problem& problem, const DeviceDescription& device) const override;
  std::string prune_reason(const Problem& problem, const Config& config,
                           const DeviceDescription& device) const override;
  Config heuristic(const Problem& problem, const DeviceDescription& device) const override;
  Source render(const Problem& problem, const Config& config, const DeviceDescription& device) const override;

  int op() const { return op_; }
  // The per-path defaults (heuristic() picks tc90 on sm_90a, else tc80); both are in space().
  static Config tc90_heuristic();
  static Config tc80_heuristic(const DeviceDescription& device);
  static Family family_of(int op);  // gg::kFwd -> Family::grouped_gemm_fwd, ...
  static int op_of(Family family);  // throws Error for a family that is not a grouped GEMM
  static std::string entry(int op, const Problem& problem, const Config& config);
  static size_t shared_bytes(int op, const Config& config);
  static int threads(const Config& config);
  // Persistent grid: enough CTAs to fill the device, never more than the tiles can use.
  static LaunchDims launch_dims(int op, const Problem& problem, const Config& config, const DeviceDescription& device);

 private:
  int op_;
};

// Device pointers of one grouped GEMM call (all device memory; offsets is (E + 1) int32).
//   fwd, up_swiglu: a = X (M_total, K), b = W;  dgrad: a = dY (M_total, N), b = W;
//   wgrad: a = X, b = dY.  out / out_gate_up as in gg::Params.
struct GroupedGemmArgs {
  const void* a = nullptr;
  const void* b = nullptr;
  void* out = nullptr;
  void* out_gate_up = nullptr;
  const int* offsets = nullptr;
  bool accumulate = false;  // wgrad only
};

// Runs a loaded grouped GEMM kernel (builds the TMA tensor maps for tc90 configs). Never reads
// offsets on the host, so it can be captured in a CUDA graph.
void launch_grouped_gemm(Kernel& kernel, const Problem& problem, const Config& config, const DeviceDescription& device,
                         const GroupedGemmArgs& args);

}  // namespace moejit
