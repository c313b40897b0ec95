#include "thread_pool.hpp"

#include <atomic>
#include <cstdlib>
#include <exception>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace moejit {
namespace {

// One parallel_for, shared by its caller and the helper jobs it queued. A helper that starts after
// the caller finished must not touch `body` (it lived on the caller's stack), so helpers join
// under the mutex and the caller closes the loop before it returns; the state itself is
// reference-counted and outlives late helpers.
struct ForkJoin {
  ForkJoin(int64_t items, int64_t step, void (*call)(void*, unsigned, int64_t, int64_t), void* context)
      : n(items), chunk(step), fn(call), body(context) {}
  const int64_t n, chunk;
  void (*const fn)(void*, unsigned, int64_t, int64_t);
  void* const body;
  std::atomic<int64_t> next{0};
  std::mutex mutex;
  std::condition_variable finished;
  std::atomic<int> running{0};  // helpers inside work(); changed under the mutex, read by close's spin
  bool closed = false;
  std::exception_ptr error;

  void work(unsigned worker) {
    for (int64_t begin; (begin = next.fetch_add(chunk, std::memory_order_relaxed)) < n;) {
      try {
        fn(body, worker, begin, std::min(n, begin + chunk));
      } catch (...) {
        std::lock_guard lock(mutex);
        if (!error) error = std::current_exception();
        next.store(n, std::memory_order_relaxed);  // skip what is left
      }
    }
  }
  void help(unsigned worker) {
    {
      std::lock_guard lock(mutex);
      if (closed) return;
      ++running;
    }
    work(worker);
    std::lock_guard lock(mutex);
    if (--running == 0) finished.notify_one();
  }
  // The caller, after its own share: no helper may start from now on; wait for those inside.
  void close() {
    std::unique_lock lock(mutex);
    closed = true;
    lock.unlock();
    spin_until([this] { return running.load(std::memory_order_acquire) == 0; }, pool_spin_time());
    lock.lock();
    finished.wait(lock, [this] { return running == 0; });
  }
};

}  // namespace

unsigned hardware_threads() {
  return std::max(1u, std::thread::hardware_concurrency());
}

namespace {
std::atomic<int64_t>& spin_us() {
  static std::atomic<int64_t> us = [] {
    const char* text = std::getenv("MOEJIT_POOL_SPIN_US");
    char* end = nullptr;
    const long long v = text && *text ? std::strtoll(text, &end, 10) : -1;
    return int64_t(text && *text && *end == '\0' && v >= 0 ? v : kDefaultSpin.count());
  }();
  return us;
}
}  // namespace

std::chrono::microseconds pool_spin_time() {
  return std::chrono::microseconds(spin_us().load(std::memory_order_relaxed));
}

void set_pool_spin_time(std::chrono::microseconds spin) {
  spin_us().store(std::max<int64_t>(0, spin.count()), std::memory_order_relaxed);
}

void stop_spinning_if_oversubscribed(int ranks_on_node, int64_t threads_per_rank) {
  if (int64_t(std::max(ranks_on_node, 1)) * threads_per_rank > int64_t(hardware_threads()))
    set_pool_spin_time(std::chrono::microseconds(0));
}

void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#else
  std::this_thread::yield();
#endif
}

ThreadPool::ThreadPool(unsigned threads) : threads_(threads ? threads : hardware_threads()) {}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  ready_.notify_all();
  for (auto& w : workers_) w.join();
}

int64_t ThreadPool::even_chunk(int64_t n, int64_t grain) const {
  const int64_t ranges = std::min<int64_t>(threads_, std::max<int64_t>(1, n / std::max<int64_t>(1, grain)));
  return std::max<int64_t>(1, (n + ranges - 1) / ranges);
}

void ThreadPool::run(int64_t n, int64_t chunk, unsigned max_threads, RangeFn fn, void* body) {
  if (n <= 0) return;
  chunk = std::max<int64_t>(chunk, 1);
  const int64_t ranges = (n - 1) / chunk + 1;
  const int64_t threads = std::min<int64_t>({threads_, max_threads ? max_threads : threads_, ranges});
  if (threads <= 1) {
    for (int64_t begin = 0; begin < n; begin += chunk) fn(body, 0, begin, std::min(n, begin + chunk));
    return;
  }
  auto state = std::make_shared<ForkJoin>(n, chunk, fn, body);
  std::vector<std::function<void()>> helpers;
  for (unsigned w = 1; w < threads; ++w) helpers.emplace_back([state, w] { state->help(w); });
  enqueue(std::move(helpers), threads_ - 1);
  state->work(0);
  state->close();
  if (state->error) std::rethrow_exception(state->error);
}

void ThreadPool::enqueue(std::vector<std::function<void()>> jobs, unsigned max_workers) {
  {
    std::lock_guard lock(mutex_);
    for (auto& job : jobs) queue_.push_back(std::move(job));
    queued_.store(queue_.size(), std::memory_order_release);
    while (queue_.size() > idle_ && workers_.size() < max_workers) {
      workers_.emplace_back([this] { work(); });
      ++idle_;  // counted before it runs, so that one job does not start two workers
    }
  }
  for (size_t i = 0; i < jobs.size(); ++i) ready_.notify_one();
}

void ThreadPool::work() {
  std::unique_lock lock(mutex_);
  for (;;) {
    if (queue_.empty() && !stopping_) {  // spin a while before sleeping: the next launch is likely close
      lock.unlock();
      spin_until([this] { return queued_.load(std::memory_order_acquire) > 0 || stopping_; }, pool_spin_time());
      lock.lock();
    }
    ready_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopping and drained
    std::function<void()> job = std::move(queue_.front());
    queue_.pop_front();
    queued_.store(queue_.size(), std::memory_order_release);
    --idle_;
    lock.unlock();
    job();
    lock.lock();
    ++idle_;
  }
}

}  // namespace moejit
