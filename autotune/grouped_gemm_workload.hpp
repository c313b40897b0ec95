// Workload for the four grouped GEMM families on both backends, and the causal attention views
// (attention_scores / values / grads: host only; even segments, A lower-triangular per group for
// the fwd and wgrad views, dgrad checked on and below each group's diagonal only): one implementation, parameterised
// by the family (fwd, up_swiglu, dgrad, wgrad) and the backend (cuda: bf16 inputs, int32 offsets,
// output dtype = problem.dtype; host: f32, int64 offsets). Inputs, offsets, the double-precision
// reference and the check are shared; only run() differs.
// Shapes (the problem's GemmShape: K, N, E; M = tokens * top_k, per-expert row segments):
//   fwd:    X (M, K), W (E, K, N)            -> Y (M, N)
//   swiglu: X (M, K), W (E, K, 2N) [gate|up] -> GU (M, 2N), H (M, N) = silu(g) * u
//   dgrad:  dY (M, N), W (E, K, N)           -> dX (M, K)
//   wgrad:  X (M, K), dY (M, N)              -> dW (E, K, N) (overwritten, accumulate off)
// Tolerance per element (see grouped_gemm_workload.cpp for why): 1e-6 + R * 2^-24 * sum|terms|
// + eps * |ref|, R the reduction length (K, N or the segment length), eps 2^-8 (bf16 output) or
// 2^-23 (f32); H inherits its inputs' tolerances through silu's derivative.
#pragma once
#include <cstdint>
#include <vector>

#include "workload.hpp"

namespace moejit {

// Row offsets (E + 1 entries, 0 .. rows) of a deterministic skewed split: expert e gets a share
// proportional to 1 / sqrt(e + 1) (Zipf, s = 0.5: the busiest expert holds several times the mean)
// and the last expert none when E > 1, so every tune sees imbalance and an empty expert.
std::vector<int64_t> skewed_offsets(int64_t rows, int64_t experts);

class GroupedGemmWorkload final : public Workload {
 public:
  GroupedGemmWorkload(Family family, bool gpu);
  void prepare(Backend& backend, const Problem& problem, int copies, std::shared_ptr<ThreadPool> cpu) override;
  size_t bytes_per_copy(const Problem& problem) const override;
  void run(LoadedCandidate& candidate, int copy) override;
  CheckResult check(LoadedCandidate& candidate) override;
  Throughput throughput(const Problem& problem, double time_ms) const override;

  // Output rows the reference covers (every row at test sizes; a sample that includes every
  // segment's first and last row once the reference would cost more than kReferenceMacs).
  static constexpr int64_t kReferenceMacs = int64_t{1} << 27;
  size_t checked_rows() const { return rows_.size(); }

 private:
  struct Set {
    DeviceBuffer a, b, out, gate_up, offsets;  // a: X or dY; b: W or dY (wgrad); gate_up: swiglu only
  };
  struct Shape;
  // A generated input on the host: f32 (host families) or bf16 bits (GPU). Value i depends only on
  // (seed, i), so a later bucket reuses what an earlier one generated: W is the same at every
  // token count, X and dY of a smaller bucket are a prefix of a larger one's.
  struct HostInput {
    uint64_t seed = 0;
    std::vector<float> f32;
    std::vector<uint16_t> b16;
    size_t size() const { return b16.empty() ? f32.size() : b16.size(); }
    float operator[](size_t i) const;
  };
  const HostInput& input(HostInput& cache, size_t count, uint64_t seed, ThreadPool& cpu) const;
  Shape shape(const Problem& problem) const;
  DType in_type() const { return gpu_ ? DType::bf16 : DType::f32; }
  DType out_type() const { return gpu_ ? problem_.dtype : DType::f32; }
  double output_eps() const { return out_type() == DType::bf16 ? 1.0 / 256 : 1.0 / (1 << 23); }  // one rounding
  // prepare()'s stages, after the inputs: sets, which rows to check, their reference.
  void upload_sets(const HostInput& a, const HostInput& b, const std::vector<int64_t>& offsets, int copies);
  void choose_checked_rows(const Shape& s, const std::vector<int64_t>& offsets);
  void compute_reference(const Shape& s, const std::vector<int64_t>& offsets, const HostInput& a, const HostInput& b);
  void swiglu_reference(const Shape& s);
  const HostInput& lower_triangular(const HostInput& a, const Shape& s, const std::vector<int64_t>& offsets);

  int op_;
  bool causal_;
  bool gpu_;
  Backend* backend_ = nullptr;
  std::shared_ptr<ThreadPool> cpu_;
  Problem problem_;
  std::vector<Set> sets_;
  HostInput a_cache_, b_cache_, masked_;
  // Reference of the checked rows of the GEMM output (GU for swiglu): value and tolerance per
  // element, row-major over rows_; swiglu also H's. slot_[row] = index into rows_ or -1.
  std::vector<int64_t> rows_;
  std::vector<int64_t> slot_;
  std::vector<int64_t> checked_cols_;  // per output row: its leading columns that are defined
  std::vector<double> want_, tol_, want_h_, tol_h_;
};

}  // namespace moejit
