#include "compile_pool.hpp"

#include "binary_cache.hpp"

namespace moejit {

ThreadPool::ThreadPool(unsigned threads) {
  if (threads == 0) threads = std::max(1u, std::thread::hardware_concurrency());
  for (unsigned i = 0; i < threads; ++i) workers_.emplace_back([this] { run(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  ready_.notify_all();
  for (auto& w : workers_) w.join();
}

void ThreadPool::run() {
  for (;;) {
    std::function<void()> job;
    {
      std::unique_lock lock(mutex_);
      ready_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping and drained
      job = std::move(queue_.front());
      queue_.pop_front();
    }
    job();
  }
}

std::vector<std::future<std::shared_ptr<const Binary>>> compile_all(ThreadPool& pool, BinaryCache& cache,
                                                                    const Compiler& compiler,
                                                                    const std::vector<Source>& sources) {
  std::vector<std::future<std::shared_ptr<const Binary>>> futures;
  futures.reserve(sources.size());
  for (const Source& source : sources)
    futures.push_back(pool.submit([&cache, &compiler, source] { return cache.get_or_compile(compiler, source); }));
  return futures;
}

}  // namespace moejit
