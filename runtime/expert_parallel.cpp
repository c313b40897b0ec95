#include "expert_parallel.hpp"

#include <algorithm>

#include "moejit/error.hpp"

namespace moejit::runtime {

ExpertExchange::ExpertExchange(Communicator& group, int64_t n_experts)
    : group_(group), experts_(n_experts), local_(n_experts / group.size()), first_(group.rank() * local_) {
  if (n_experts % group.size() != 0)
    throw Error("--expert-parallel " + std::to_string(group.size()) + " does not divide the " +
                std::to_string(n_experts) + " experts of the model: choose a divisor of " + std::to_string(n_experts));
}

int64_t ExpertExchange::plan(const int32_t* offsets) {
  const int64_t P = group_.size();
  sent_.assign(size_t(experts_), 0);
  for (int64_t e = 0; e < experts_; ++e) sent_[e] = offsets[e + 1] - offsets[e];
  received_ = group_.alltoall(sent_);  // block q of sent_ = the counts of rank q's experts
  send_rows_.assign(size_t(P), 0);
  recv_rows_.assign(size_t(P), 0);
  send_at_.assign(size_t(P), 0);
  recv_at_.assign(size_t(P), 0);
  local_offsets_.assign(size_t(local_ + 1), 0);
  int64_t received_total = 0;
  for (int64_t q = 0; q < P; ++q) {
    send_at_[q] = offsets[q * local_];
    send_rows_[q] = offsets[(q + 1) * local_] - offsets[q * local_];
    recv_at_[q] = received_total;
    for (int64_t j = 0; j < local_; ++j) {
      recv_rows_[q] += received_[q * local_ + j];
      local_offsets_[j + 1] += int32_t(received_[q * local_ + j]);
    }
    received_total += recv_rows_[q];
  }
  for (int64_t j = 0; j < local_; ++j) local_offsets_[j + 1] += local_offsets_[j];
  return received_total;
}

void ExpertExchange::reorder(const float* from, float* to, int64_t width, bool to_expert_major) const {
  const int64_t P = group_.size();
  for (int64_t j = 0, at = 0; j < local_; ++j)  // `at`: the expert-major row of (j, s)
    for (int64_t s = 0; s < P; ++s) {
      int64_t src = recv_at_[s];  // the source-major row of (s, j)
      for (int64_t i = 0; i < j; ++i) src += received_[s * local_ + i];
      const int64_t rows = received_[s * local_ + j];
      const float* a = from + (to_expert_major ? src : at) * width;
      std::copy(a, a + rows * width, to + (to_expert_major ? at : src) * width);
      at += rows;
    }
}

// forward: send my rows to the experts' owners; else send the owners' results back.
void ExpertExchange::exchange(const float* send, float* recv, int64_t width, bool forward) {
  const int64_t P = group_.size();
  const size_t peers = size_t(P);
  std::vector<int64_t> sc(peers), so(peers), rc(peers), ro(peers);
  for (int64_t q = 0; q < P; ++q) {
    sc[q] = (forward ? send_rows_[q] : recv_rows_[q]) * width;
    so[q] = (forward ? send_at_[q] : recv_at_[q]) * width;
    rc[q] = (forward ? recv_rows_[q] : send_rows_[q]) * width;
    ro[q] = (forward ? recv_at_[q] : send_at_[q]) * width;
  }
  for (int64_t q = 0; q < P; ++q)
    if (q != group_.rank()) bytes_sent_ += sc[q] * int64_t(sizeof(float));
  const int64_t sent = forward ? send_at_.back() + send_rows_.back() : local_offsets_.back();
  const int64_t got = forward ? local_offsets_.back() : send_at_.back() + send_rows_.back();
  group_.alltoallv({send, size_t(sent * width)}, sc, so, {recv, size_t(got * width)}, rc, ro);
}

void ExpertExchange::dispatch(const float* rows, float* local, int64_t width) {
  staging_.resize(size_t(local_offsets_.back() * width));
  exchange(rows, staging_.data(), width, true);
  reorder(staging_.data(), local, width, true);
}

void ExpertExchange::combine(const float* local, float* rows, int64_t width) {
  staging_.resize(size_t(local_offsets_.back() * width));
  reorder(local, staging_.data(), width, false);
  exchange(staging_.data(), rows, width, false);
}

}  // namespace moejit::runtime
