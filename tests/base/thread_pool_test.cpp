// The one thread pool: every item is visited exactly once whatever the thread count, worker ids are
// unique among concurrent bodies, exceptions come back to the caller, nested loops do not deadlock,
// for_range's split depends only on n, grain and threads, and submit runs tasks on workers.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <future>
#include <mutex>
#include <numeric>
#include <random>
#include <set>
#include <stdexcept>
#include <thread>
#include <vector>

#include "../common/test_util.hpp"
#include "thread_pool.hpp"

namespace moejit {
namespace {

TEST(ThreadPool, ParallelForVisitsEveryItemOnceForAnyThreadsAndChunk) {
  std::mt19937_64 rng(test::test_seed());
  for (unsigned threads : {1u, 2u, 3u, 8u}) {
    ThreadPool pool(threads);
    for (int trial = 0; trial < 20; ++trial) {
      const int64_t n = static_cast<int64_t>(rng() % 5000), chunk = 1 + static_cast<int64_t>(rng() % 300);
      std::vector<std::atomic<int>> seen(static_cast<size_t>(n));
      std::atomic<int64_t> calls{0};
      pool.parallel_for(n, chunk, [&](unsigned worker, int64_t begin, int64_t end) {
        EXPECT_LT(worker, threads);
        EXPECT_LT(begin, end);
        EXPECT_LE(end - begin, chunk);
        EXPECT_EQ(begin % chunk, 0);  // ranges are the consecutive chunks
        for (int64_t i = begin; i < end; ++i) seen[static_cast<size_t>(i)]++;
        calls++;
      });
      for (int64_t i = 0; i < n; ++i) ASSERT_EQ(seen[static_cast<size_t>(i)].load(), 1) << "item " << i;
      EXPECT_EQ(calls.load(), (n + chunk - 1) / chunk);
    }
  }
}

TEST(ThreadPool, ConcurrentBodiesHaveDistinctWorkerIdsWithinTheCap) {
  ThreadPool pool(4);
  for (unsigned cap : {0u, 1u, 2u, 4u, 9u}) {
    const unsigned limit = cap == 0 || cap > 4 ? 4 : cap;
    std::mutex m;
    std::set<unsigned> inside;
    std::atomic<bool> clash{false};
    pool.parallel_for(
        400, 1,
        [&](unsigned worker, int64_t, int64_t) {
          {
            std::lock_guard lock(m);
            if (worker >= limit || !inside.insert(worker).second) clash = true;
          }
          std::this_thread::yield();
          std::lock_guard lock(m);
          inside.erase(worker);
        },
        cap);
    EXPECT_FALSE(clash.load()) << "cap " << cap;
  }
}

TEST(ThreadPool, ForRangeSplitsEvenlyAndDependsOnlyOnThreads) {
  // The runtime's determinism rests on this: the split of [0, n) is a pure function.
  for (unsigned threads : {1u, 2u, 3u, 7u}) {
    ThreadPool pool(threads);
    for (int64_t n : {0, 1, 5, 64, 1000, 1001}) {
      for (int64_t grain : {1, 4, 100}) {
        std::mutex m;
        std::vector<std::pair<int64_t, int64_t>> ranges;
        pool.for_range(n, grain, [&](int64_t b, int64_t e) {
          std::lock_guard lock(m);
          ranges.emplace_back(b, e);
        });
        std::sort(ranges.begin(), ranges.end());
        const int64_t want = n == 0 ? 0 : std::min<int64_t>(threads, std::max<int64_t>(1, n / grain));
        ASSERT_EQ(static_cast<int64_t>(ranges.size()), want) << "n " << n << " grain " << grain;
        int64_t at = 0;
        for (auto [b, e] : ranges) {
          EXPECT_EQ(b, at);
          EXPECT_LE(e - b, (n + want - 1) / want);
          at = e;
        }
        EXPECT_EQ(at, n);
      }
    }
  }
}

TEST(ThreadPool, TheFirstExceptionReachesTheCaller) {
  ThreadPool pool(3);
  for (int repeat = 0; repeat < 10; ++repeat) {
    EXPECT_THROW(pool.parallel_for(1000, 7,
                                   [&](unsigned, int64_t begin, int64_t) {
                                     if (begin == 7 * 50) throw std::runtime_error("item 350");
                                   }),
                 std::runtime_error);
  }
  std::atomic<int64_t> sum{0};  // the pool still works afterwards
  pool.parallel_for(100, 1, [&](unsigned, int64_t b, int64_t) { sum += b; });
  EXPECT_EQ(sum.load(), 4950);
}

TEST(ThreadPool, NestedLoopsFinish) {
  ThreadPool pool(2);
  std::atomic<int64_t> sum{0};
  pool.parallel_for(16, 1, [&](unsigned, int64_t outer, int64_t) {
    pool.parallel_for(100, 3, [&](unsigned, int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) sum += outer * 100 + i;
    });
  });
  int64_t want = 0;
  for (int64_t i = 0; i < 1600; ++i) want += i;
  EXPECT_EQ(sum.load(), want);
}

TEST(ThreadPool, SubmitRunsTasksOnWorkersAndReturnsTheirResults) {
  ThreadPool pool(2);
  const auto caller = std::this_thread::get_id();
  std::vector<std::future<int>> results;
  std::atomic<int> on_caller{0};
  for (int i = 0; i < 20; ++i)
    results.push_back(pool.submit([i, caller, &on_caller] {
      if (std::this_thread::get_id() == caller) on_caller++;
      return i * i;
    }));
  for (int i = 0; i < 20; ++i) EXPECT_EQ(results[static_cast<size_t>(i)].get(), i * i);
  EXPECT_EQ(on_caller.load(), 0);
  auto failing = pool.submit([]() -> int { throw std::runtime_error("compile failed"); });
  EXPECT_THROW(failing.get(), std::runtime_error);
}

TEST(ThreadPool, ZeroThreadsMeansOnePerHardwareThread) {
  EXPECT_EQ(ThreadPool(0).threads(), hardware_threads());
  EXPECT_GE(hardware_threads(), 1u);
  EXPECT_EQ(ThreadPool(3).threads(), 3u);
}

// Idle threads spin for pool_spin_time() before they sleep (the time is process-wide and settable:
// an oversubscribed node turns it off). Loops give the same results with and without spinning, and
// a pool whose workers are spinning or asleep shuts down.
TEST(ThreadPoolSpin, LoopsAreTheSameSpinningOrNotAndPoolsShutDownEitherWay) {
  const auto saved = pool_spin_time();
  set_pool_spin_time(std::chrono::microseconds(-5));
  EXPECT_EQ(pool_spin_time().count(), 0);
  for (auto spin : {std::chrono::microseconds(0), std::chrono::microseconds(2000)}) {
    set_pool_spin_time(spin);
    EXPECT_EQ(pool_spin_time(), spin);
    ThreadPool pool(3);
    for (int round = 0; round < 50; ++round) {
      std::vector<int> hits(97, 0);
      pool.parallel_for(97, 1 + round % 5, [&](unsigned, int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) hits[i] += 1;
      });
      EXPECT_EQ(std::count(hits.begin(), hits.end(), 1), 97) << "round " << round;
    }
    auto f = pool.submit([] { return 7; });
    EXPECT_EQ(f.get(), 7);
  }  // the workers are spinning (2 ms) when the pool goes

  // One process on every hardware thread keeps spinning; two such ranks on one node stop.
  stop_spinning_if_oversubscribed(1, hardware_threads());
  EXPECT_EQ(pool_spin_time().count(), 2000);
  stop_spinning_if_oversubscribed(2, hardware_threads());
  EXPECT_EQ(pool_spin_time().count(), 0);
  set_pool_spin_time(saved);
}

}  // namespace
}  // namespace moejit
