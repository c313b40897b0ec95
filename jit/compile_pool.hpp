// Compiles many sources at once (the autotuner's precompile). NVRTC programs and Clang instances
// are independent, so a fixed pool of worker threads uses every core; idle workers sleep on a
// condition variable.
#pragma once
#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "moejit/binary.hpp"
#include "moejit/compiler.hpp"
#include "moejit/source.hpp"

namespace moejit {

class BinaryCache;

class ThreadPool {
 public:
  explicit ThreadPool(unsigned threads = 0);  // 0: one per hardware thread
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  template <typename F>
  auto submit(F&& f) -> std::future<decltype(f())> {
    auto task = std::make_shared<std::packaged_task<decltype(f())()>>(std::forward<F>(f));
    auto future = task->get_future();
    {
      std::lock_guard lock(mutex_);
      queue_.emplace_back([task] { (*task)(); });
    }
    ready_.notify_one();
    return future;
  }
  unsigned size() const { return static_cast<unsigned>(workers_.size()); }

 private:
  void run();
  std::vector<std::thread> workers_;
  std::deque<std::function<void()>> queue_;
  std::mutex mutex_;
  std::condition_variable ready_;
  bool stopping_ = false;
};

// Compiles every source through the cache on a pool; futures come back in the sources' order and
// rethrow each source's CompileError on get(), so one bad candidate does not stop the others.
std::vector<std::future<std::shared_ptr<const Binary>>> compile_all(ThreadPool& pool, BinaryCache& cache,
                                                                    const Compiler& compiler,
                                                                    const std::vector<Source>& sources);

}  // namespace moejit
