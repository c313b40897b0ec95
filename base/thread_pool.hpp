// One thread pool for everything that runs on the CPU in parallel: the runtime's layer loops, the
// host backend's kernels (through HostLaunch::parallel_for), the autotuner's workloads and its
// compile pipeline. Workers are started on first use, as many as the work asks for, never more than
// the pool's thread count allows. An idle worker, and a caller waiting for its helpers, first spin
// for a short while (kDefaultSpin, $MOEJIT_POOL_SPIN_US; 0: never) and then sleep on a condition
// variable: a training step launches hundreds of kernels a few hundred microseconds apart, and
// waking a sleeping thread costs 50-90 us on a virtual machine, a quarter of such a launch
// (bench/results/2026-11-28-host-gemm-b-reuse/).
//
// Two ways in:
//   parallel_for: fork-join over [0, n). The calling thread works too (it is worker 0), so a pool
//                 of `threads` runs a loop on at most `threads` threads with threads - 1 workers.
//   submit:       one task on a worker, returned as a future (the compile pipeline: the caller
//                 measures while workers compile). A pool of `threads` runs that many at once.
#pragma once
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <thread>
#include <type_traits>
#include <vector>

namespace moejit {

// Threads this machine runs at once (at least 1): the default wherever a thread count is 0.
unsigned hardware_threads();

// How long an idle worker (or a caller waiting for its helpers) spins before it sleeps, process-wide:
// $MOEJIT_POOL_SPIN_US (microseconds, 0 disables spinning), else kDefaultSpin. A process that shares
// its cores with others (ranks oversubscribing a node) sets 0: a spinning thread takes a core that
// another process needs.
constexpr std::chrono::microseconds kDefaultSpin{200};
std::chrono::microseconds pool_spin_time();
void set_pool_spin_time(std::chrono::microseconds spin);
// Turns spinning off when `ranks_on_node` processes of `threads_per_rank` threads each oversubscribe
// this machine's hardware threads (the trainer and the tuner under mpirun).
void stop_spinning_if_oversubscribed(int ranks_on_node, int64_t threads_per_rank);

// Spins (with a pause per check) until ready() or `spin` has passed; returns ready().
template <typename Ready>
bool spin_until(Ready&& ready, std::chrono::microseconds spin);

class ThreadPool {
 public:
  // threads: the most threads one parallel_for uses (the caller included) and the most tasks that
  // run at once; 0 means hardware_threads(). No thread starts until work asks for it.
  explicit ThreadPool(unsigned threads = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  unsigned threads() const { return threads_; }

  // Calls body(worker, begin, end) on consecutive ranges of `chunk` items (the last may be
  // shorter) that cover [0, n) once. Ranges are handed out one at a time, so uneven work balances.
  // worker is in [0, min(threads(), max_threads)) and no two calls running at once share one: bodies
  // may index per-worker scratch with it. Returns when every range is done and rethrows the first
  // exception a body threw (the remaining ranges are skipped). A body may itself call parallel_for:
  // the caller never waits for a worker that has not started, so nested loops cannot deadlock.
  template <typename Body>
  void parallel_for(int64_t n, int64_t chunk, Body&& body, unsigned max_threads = 0) {
    auto call = [](void* b, unsigned worker, int64_t begin, int64_t end) {
      (*static_cast<std::remove_reference_t<Body>*>(b))(worker, begin, end);
    };
    run(n, chunk, max_threads, call, const_cast<void*>(static_cast<const void*>(&body)));
  }

  // The runtime's split: [0, n) in at most threads() contiguous ranges of at least `grain` items,
  // one per thread, as even as possible: body(begin, end). Range bounds depend only on n, grain and
  // threads(); bodies own disjoint outputs, so results do not depend on which thread ran what.
  template <typename Body>
  void for_range(int64_t n, int64_t grain, Body&& body) {
    parallel_for(n, even_chunk(n, grain), [&body](unsigned, int64_t begin, int64_t end) { body(begin, end); });
  }
  // The chunk for_range uses: ceil(n / ranges), ranges = min(threads(), max(1, n / grain)).
  int64_t even_chunk(int64_t n, int64_t grain) const;

  template <typename F>
  auto submit(F&& f) -> std::future<std::invoke_result_t<F&>> {
    using R = std::invoke_result_t<F&>;
    auto task = std::make_shared<std::packaged_task<R()>>(std::forward<F>(f));
    auto future = task->get_future();
    enqueue({[task] { (*task)(); }}, threads_);
    return future;
  }

 private:
  using RangeFn = void (*)(void* body, unsigned worker, int64_t begin, int64_t end);
  void run(int64_t n, int64_t chunk, unsigned max_threads, RangeFn fn, void* body);
  // Queues jobs and starts workers (up to `max_workers`) so that each queued job has one.
  void enqueue(std::vector<std::function<void()>> jobs, unsigned max_workers);
  void work();

  const unsigned threads_;
  std::vector<std::thread> workers_;
  std::deque<std::function<void()>> queue_;
  std::atomic<size_t> queued_{0};  // queue_.size(), for spinning workers to watch without the mutex
  unsigned idle_ = 0;              // workers waiting for a job
  std::mutex mutex_;
  std::condition_variable ready_;
  std::atomic<bool> stopping_{false};
};

void cpu_relax();

template <typename Ready>
bool spin_until(Ready&& ready, std::chrono::microseconds spin) {
  if (spin.count() <= 0) return ready();
  const auto until = std::chrono::steady_clock::now() + spin;
  for (unsigned i = 1;; ++i) {
    if (ready()) return true;
    cpu_relax();
    if (i % 64 == 0 && std::chrono::steady_clock::now() >= until) return ready();
  }
}

}  // namespace moejit
