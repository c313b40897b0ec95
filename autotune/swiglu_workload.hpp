// Workload for the SwiGLU families (swiglu_fwd, swiglu_bwd): rows = tokens * top_k, width F.
//   fwd: gate_up (rows, 2F) -> out (rows, F)
//   bwd: gate_up (rows, 2F), dh (rows, F) -> d_gate_up (rows, 2F)
// Reference: the SwiGLU formulas in double precision on the rounded inputs, element by element in
// check() (not stored: the largest buckets' outputs in double would take gigabytes).
// Tolerance: |out - ref| <= abs + |ref| * eps with abs = 1e-5, eps = 1e-5 (f32) or 2^-7 (bf16: one
// rounding of the output plus float math).
#pragma once
#include <vector>

#include "workload.hpp"

namespace moejit {

class SwigluWorkload final : public Workload {
 public:
  explicit SwigluWorkload(bool backward) : backward_(backward) {}
  void prepare(Backend& backend, const Problem& problem, int copies, std::shared_ptr<ThreadPool> cpu) override;
  size_t bytes_per_copy(const Problem& problem) const override;
  void run(LoadedCandidate& candidate, int copy) override;
  CheckResult check(LoadedCandidate& candidate) override;
  Throughput throughput(const Problem& problem, double time_ms) const override;

 private:
  struct Set {
    DeviceBuffer gate_up, dh, out;  // out: (rows, F) fwd, (rows, 2F) bwd
  };
  bool backward_;
  Backend* backend_ = nullptr;
  std::shared_ptr<ThreadPool> cpu_;
  Problem problem_;
  std::vector<Set> sets_;
  std::vector<char> gate_up_, dh_;  // set 0's inputs on the host, in the problem's dtype
  double expected(size_t row, size_t col) const;
};

}  // namespace moejit
