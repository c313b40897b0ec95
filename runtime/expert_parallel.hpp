// Expert parallelism: the E experts of every MoE layer are split over the P ranks of an expert-
// parallel group, rank q computing experts [q E/P, (q+1) E/P) for the tokens of the whole group.
// Each rank routes its own tokens as before (gate, plan, permute: rows in expert order); this
// exchange then sends every row to the rank owning its expert and brings the results back:
//   plan      per-expert row counts, all-to-all (the layer's only host synchronisation: the sizes of
//             the transfers depend on the routing)
//   dispatch  rows (A, width) in expert order -> MPI_Alltoallv -> local (M, width), expert-major:
//             expert j's rows from source rank 0, then 1, ... (what the grouped GEMM reads)
//   combine   the inverse: local (M, width) -> MPI_Alltoallv -> rows (A, width) in expert order
// The backward moves gradients the same way with the forward's counts. Host buffers (float).
#pragma once
#include <cstdint>
#include <vector>

#include "comm.hpp"

namespace moejit::runtime {

class ExpertExchange {
 public:
  // `group`: the expert-parallel group (its size divides n_experts).
  ExpertExchange(Communicator& group, int64_t n_experts);

  int64_t first_expert() const { return first_; }
  int64_t local_experts() const { return local_; }
  // offsets (E + 1): this rank's rows per expert in expert order. Returns M, the rows this rank
  // computes; local_offsets() (local_experts() + 1) then splits them by local expert.
  int64_t plan(const int32_t* offsets);
  const std::vector<int32_t>& local_offsets() const { return local_offsets_; }
  void dispatch(const float* rows, float* local, int64_t width);
  void combine(const float* local, float* rows, int64_t width);
  // Bytes this rank sent to other ranks in dispatches and combines so far (benchmarks).
  int64_t bytes_sent() const { return bytes_sent_; }

 private:
  // Copies between the received order (source-major) and the local order (expert-major).
  void reorder(const float* from, float* to, int64_t width, bool to_expert_major) const;
  void exchange(const float* send, float* recv, int64_t width, bool forward);

  Communicator& group_;
  int64_t experts_, local_, first_;
  std::vector<int64_t> sent_;                                       // (E) this rank's rows per expert, grouped by owner
  std::vector<int64_t> received_;                                   // (P, local) rows from source s for local expert j
  std::vector<int64_t> send_rows_, send_at_, recv_rows_, recv_at_;  // (P) rows per peer and offsets
  std::vector<int32_t> local_offsets_;
  std::vector<float> staging_;  // (M, width) source-major
  int64_t bytes_sent_ = 0;
};

}  // namespace moejit::runtime
