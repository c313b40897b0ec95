// One thread pool for everything that runs on the CPU in parallel: the runtime's layer loops, the
// host backend's kernels (through HostLaunch::parallel_for), the autotuner's workloads and its
// compile pipeline. Workers sleep on a condition variable when idle (no busy spin) and are started
// on first use, as many as the work asks for, never more than the pool's thread count allows.
//
// Two ways in:
//   parallel_for: fork-join over [0, n). The calling thread works too (it is worker 0), so a pool
//                 of `threads` runs a loop on at most `threads` threads with threads - 1 workers.
//   submit:       one task on a worker, returned as a future (the compile pipeline: the caller
//                 measures while workers compile). A pool of `threads` runs that many at once.
#pragma once
#include <algorithm>
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
  unsigned idle_ = 0;  // workers waiting for a job
  std::mutex mutex_;
  std::condition_variable ready_;
  bool stopping_ = false;
};

}  // namespace moejit
