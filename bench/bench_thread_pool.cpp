// The pool's fork-join cost on launches of the size a host training step makes (a few microseconds
// to a few hundred per launch): each launch is 8 items of busy work, timed from the call to its
// return, 2000 launches 10 us apart, median and 90th percentile against the ideal (the work split
// evenly over the threads), with idle threads spinning (the default) and sleeping at once
// (MOEJIT_POOL_SPIN_US=0), in one run.
// Usage: bench_thread_pool [threads=2]
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "thread_pool.hpp"

using namespace moejit;

namespace {

double now_us() {
  return std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

void busy_us(double us) {
  for (const double t0 = now_us(); now_us() - t0 < us;) {
  }
}

void measure(ThreadPool& pool, double item_us) {
  const int launches = 2000, items = 8;
  std::vector<double> t;
  std::atomic<int> on_helpers{0};
  for (int r = 0; r < launches; ++r) {
    const double t0 = now_us();
    pool.parallel_for(items, 1, [&](unsigned worker, int64_t, int64_t) {
      if (worker) on_helpers.fetch_add(1, std::memory_order_relaxed);
      busy_us(item_us);
    });
    t.push_back(now_us() - t0);
    busy_us(10);  // the serial code between two kernels of a step
  }
  std::sort(t.begin(), t.end());
  std::printf("  %2d items x %6.2f us: ideal %7.1f us, median %7.1f, p90 %7.1f (x%.2f); helpers ran %3.0f%% of items\n",
              items, item_us, items * item_us / pool.threads(), t[t.size() / 2], t[t.size() * 9 / 10],
              t[t.size() / 2] / (items * item_us / pool.threads()), 100.0 * on_helpers / (launches * items));
}

}  // namespace

int main(int argc, char** argv) {
  const unsigned threads = argc > 1 ? unsigned(std::atoi(argv[1])) : 2;
  const auto spin = pool_spin_time();
  for (auto setting : {spin, std::chrono::microseconds(0)}) {
    set_pool_spin_time(setting);
    std::printf("%u threads, idle threads spin %lld us before sleeping\n", threads, (long long)setting.count());
    ThreadPool pool(threads);
    for (double item_us : {1.25, 5.0, 12.5, 50.0}) measure(pool, item_us);
  }
  return 0;
}
