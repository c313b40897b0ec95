// The data-parallel gradient all-reduce, overlapped with the backward. The backward finishes the
// layers' gradients from the last layer down; as soon as one layer's are final the trainer posts
// them here, and a communication thread sums them over the ranks (MPI) while the backward computes
// the layers below. wait() returns when everything posted is summed.
//
// Without overlap (one rank's backend memory is not process memory, MPI gives no thread support, or
// it is switched off) wait() makes the same calls in the same order on the caller's thread, so both
// ways give the same bits. The ranges are reduced in buckets of at most kGradientBucketFloats.
//
// The thread calls MPI while the caller may too (the expert dispatch's all-to-all on the expert
// group during the backward): that needs MPI_THREAD_MULTIPLE (Communicator::concurrent_calls).
// Every rank posts the same ranges in the same order, so the collectives match across ranks.
#pragma once
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#include "comm.hpp"
#include "step_backend.hpp"

namespace moejit::runtime {

class GradientReducer {
 public:
  // grads: the flat gradient buffer (floats) in `memory`. overlap: start the communication thread.
  GradientReducer(BackendMemory& memory, TypedPtr grads, bool overlap);
  ~GradientReducer();
  GradientReducer(const GradientReducer&) = delete;
  GradientReducer& operator=(const GradientReducer&) = delete;

  bool overlapping() const { return thread_.joinable(); }
  // grads[offset, offset + size) is to be summed over `comm`'s ranks; queued, not waited for.
  void post(Communicator& comm, int64_t offset, int64_t size);
  // Returns when every posted range is summed; rethrows the first error the reduction threw.
  void wait();
  // Seconds the ranges of the last wait() took to sum: on the thread, hidden behind the backward
  // but for the time wait() itself waited.
  double last_busy_seconds() const { return last_busy_seconds_; }

 private:
  struct Job {
    Communicator* comm;
    int64_t offset, size;
  };
  void run(const Job& job);
  void run_next(std::unique_lock<std::mutex>& lock);
  void loop();

  BackendMemory& memory_;
  TypedPtr grads_;
  std::vector<float> staging_;  // device memory's buckets, through the host
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<Job> jobs_;
  int64_t posted_ = 0, done_ = 0;
  bool stop_ = false;
  std::exception_ptr error_;
  double busy_seconds_ = 0, last_busy_seconds_ = 0;
  std::thread thread_;  // last: started once everything above exists
};

}  // namespace moejit::runtime
