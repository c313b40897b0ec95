// Splits [0, n) into contiguous chunks run on up to one thread per core. The workloads' input
// generation, references and checks use it: at the large token buckets they touch hundreds of
// millions of elements per candidate, and one core made them most of a GPU tuning run's time.
#pragma once
#include <algorithm>
#include <cstdint>
#include <thread>
#include <vector>

namespace moejit {

// Threads parallel_chunks may use; 0 (the default): one per hardware thread. Benchmarks set 1 to
// compare with the serial cost in the same run.
inline int& workload_threads() {
  static int threads = 0;
  return threads;
}

// fn(begin, end) for every chunk; chunks hold at least `min_chunk` items (small n: one thread).
template <typename Fn>
void parallel_chunks(int64_t n, int64_t min_chunk, Fn&& fn) {
  const int64_t cores =
      std::max<int64_t>(1, workload_threads() > 0 ? workload_threads() : std::thread::hardware_concurrency());
  const int64_t chunks = std::clamp<int64_t>(n / std::max<int64_t>(min_chunk, 1), 1, cores);
  if (chunks == 1) {
    if (n > 0) fn(int64_t{0}, n);
    return;
  }
  std::vector<std::thread> threads;
  for (int64_t c = 1; c < chunks; ++c) threads.emplace_back([&, c] { fn(n * c / chunks, n * (c + 1) / chunks); });
  fn(int64_t{0}, n / chunks);
  for (auto& t : threads) t.join();
}

}  // namespace moejit
