#include "gradient_reducer.hpp"

#include <chrono>
#include <utility>

#include "data_parallel.hpp"

namespace moejit::runtime {

GradientReducer::GradientReducer(BackendMemory& memory, TypedPtr grads, bool overlap) : memory_(memory), grads_(grads) {
  if (overlap) thread_ = std::thread([this] { loop(); });
}

GradientReducer::~GradientReducer() {
  if (!thread_.joinable()) return;
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void GradientReducer::run(const Job& job) {
  const auto start = std::chrono::steady_clock::now();
  allreduce_gradients(*job.comm, memory_, grads_.at(job.offset), job.size, staging_);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::lock_guard lock(mutex_);
  busy_seconds_ += seconds;
}

void GradientReducer::post(Communicator& comm, int64_t offset, int64_t size) {
  if (comm.size() == 1 || size == 0) return;
  {
    std::lock_guard lock(mutex_);
    jobs_.push_back({&comm, offset, size});
    ++posted_;
  }
  cv_.notify_all();
}

// Runs the oldest job with the lock released; after an error the rest are skipped (counted done,
// so that wait() returns and rethrows it).
void GradientReducer::run_next(std::unique_lock<std::mutex>& lock) {
  const Job job = jobs_.front();
  jobs_.pop_front();
  const bool skip = error_ != nullptr;
  lock.unlock();
  std::exception_ptr error;
  if (!skip) {
    try {
      run(job);
    } catch (...) {
      error = std::current_exception();
    }
  }
  lock.lock();
  if (error && !error_) error_ = error;
  ++done_;
  cv_.notify_all();
}

// The communication thread: the jobs in posted order.
void GradientReducer::loop() {
  std::unique_lock lock(mutex_);
  for (;;) {
    cv_.wait(lock, [&] { return stop_ || !jobs_.empty(); });
    if (jobs_.empty()) return;  // stopped
    run_next(lock);
  }
}

void GradientReducer::wait() {
  std::unique_lock lock(mutex_);
  if (!overlapping())
    while (!jobs_.empty()) run_next(lock);  // on the caller's thread, in posted order
  cv_.wait(lock, [&] { return done_ == posted_; });
  last_busy_seconds_ = std::exchange(busy_seconds_, 0.0);
  if (error_) std::rethrow_exception(std::exchange(error_, nullptr));
}

}  // namespace moejit::runtime
