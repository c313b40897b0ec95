// Fork-join parallel loops on a fixed pool (jit/compile_pool's ThreadPool: idle workers sleep on a
// condition variable, no busy spin). Each chunk owns a disjoint range of outputs and reductions run in a
// fixed order inside a chunk, so results do not depend on the thread count: training is deterministic.
#pragma once
#include <algorithm>
#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <vector>

#include "compile_pool.hpp"

namespace moejit::runtime {

class Parallel {
 public:
  // threads <= 1: everything runs on the calling thread.
  explicit Parallel(unsigned threads = 1) : threads_(std::max(1u, threads)) {
    if (threads_ > 1) pool_ = std::make_unique<ThreadPool>(threads_ - 1);
  }
  unsigned threads() const { return threads_; }

  // Calls body(begin, end) over [0, n) split into at most threads() chunks of at least `grain` items.
  // Never call it from inside a body (the pool is not re-entrant).
  void for_range(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& body) {
    if (n <= 0) return;
    int64_t chunks = std::min<int64_t>(threads_, std::max<int64_t>(1, n / std::max<int64_t>(1, grain)));
    if (chunks <= 1 || !pool_) return body(0, n);
    std::vector<std::future<void>> done;
    int64_t step = (n + chunks - 1) / chunks;
    for (int64_t c = 1; c < chunks; ++c) {
      int64_t b = c * step, e = std::min(n, b + step);
      if (b < e) done.push_back(pool_->submit([&body, b, e] { body(b, e); }));
    }
    body(0, std::min(n, step));
    for (auto& f : done) f.get();
  }

 private:
  unsigned threads_;
  std::unique_ptr<ThreadPool> pool_;
};

}  // namespace moejit::runtime
