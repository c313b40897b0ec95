// Workload for the seven routing families (docs/routing.md), one class parameterised by the kernel:
//   route_gate_fwd     logits (T, E) -> index, weight (T, K), probs (T, E), lse (T)
//   route_gate_bwd     logits, index, d_weight, aux_scale -> d_logits (T, E)
//   route_plan         index (T, K), probs, lse -> counts, dropped, offsets, slot, row_source, losses
//                      (entries count, offsets, slots, bias update; check() runs the bias update once)
//   route_permute_fwd  x (T, D) -> permuted (R, D), padding rows zeroed
//   route_combine_bwd  d_out (T, D), y (R, D), weight -> d_y (R, D), d_weight (T, K)
//   route_combine_fwd  y (R, D), weight -> out (T, D)
//   route_permute_bwd  d_permuted (R, D) -> d_x (T, D)
// Inputs are random with a fixed seed; expert choices are skewed and leave the last expert empty
// (when E > top_k); segments are padded to 8 rows. The reference is autotune/routing_reference.hpp
// in double precision; the permute / combine steps' expected rows are computed in check(), not
// stored (at 64k tokens of width 2048 and top-8 they are half a billion values). Tolerances (abs + |ref| * rel): index
// exact but for near ties (keys within 1e-6); weights, scores, lse 1e-5 + 1e-5; d_logits 1e-6 + 1e-4; plan integers
// exact, losses 1e-7 + 1e-4; permuted rows exact; combine / d_x / d_y 1e-5 + 1e-5 (f32) or 1e-2 + 1e-2 (bf16); d_weight
// 1e-4 + 1e-4. Throughput: the bytes each step must read and write, in GB/s.
#pragma once
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "routing/routing_spec.hpp"
#include "workload.hpp"

namespace moejit {

class RoutingWorkload final : public Workload {
 public:
  explicit RoutingWorkload(Family kind) : kind_(kind) {}
  void prepare(Backend& backend, const Problem& problem, int copies, std::shared_ptr<ThreadPool> cpu) override;
  size_t bytes_per_copy(const Problem& problem) const override;
  void run(LoadedCandidate& candidate, int copy) override;
  CheckResult check(LoadedCandidate& candidate) override;
  Throughput throughput(const Problem& problem, double time_ms) const override;

  static constexpr int kPadTo = 8;

  // Host-side inputs and expected outputs of set 0 (all sets hold the same inputs).
  struct Reference;

 private:
  // Device buffers of one input/output set; a family uses the ones it needs.
  struct Set {
    DeviceBuffer logits, index, weight, probs, lse, d_weight_in, aux_in, d_logits;          // gating
    DeviceBuffer workspace, counts, dropped, offsets, slot, row_source, aux_scale, losses;  // plan
    DeviceBuffer src, rows, dst, d_weight;  // permute / combine: (T, D) src / out, (R, D) rows / dst
  };
  void allocate_set(Set& set) const;
  std::vector<std::pair<DeviceBuffer*, uint8_t>> outputs(Set& set) const;
  void launch(LoadedCandidate& candidate, Set& set) const;
  void expected_row(int64_t item, double* want, double* scratch) const;
  CheckResult check_rows(const Set& set) const;

  Family kind_;
  Backend* backend_ = nullptr;
  std::shared_ptr<ThreadPool> cpu_;  // input generation and check()
  Problem problem_;
  std::vector<Set> sets_;
  std::shared_ptr<const Reference> ref_;
};

}  // namespace moejit
