// How a host grouped GEMM launch cuts rows into work items (templates/host/work_split.h): items
// cover every row exactly once, take whole micro-tiles, never exceed the cap, and there are
// enough of them for the threads; one group gets a multiple of the thread count; the heaviest go first.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "host/work_split.h"

using namespace moejit;
using namespace moejit::host;

namespace {

void expect_covers(const RowSplit& s, int64 rows) {
  const int64 step = s.item_rows(rows), items = s.items(rows);
  EXPECT_EQ(step % s.mr, 0) << rows;
  EXPECT_LE(step, s.cap) << rows;
  EXPECT_GE(items * step, rows) << rows;
  EXPECT_LT((items - 1) * step, rows) << rows;  // no empty item
}

}  // namespace

TEST(HostWorkSplit, OneDenseGroupGetsEqualItemsAMultipleOfTheThreads) {
  const RowSplit s = split_rows(2048, 1, 1, 6, 96, 2);
  // At least kItemsPerThread x 2 threads (was 22 items of one mc block each): 10 of 210 rows.
  EXPECT_EQ(s.items(2048), 10);
  EXPECT_EQ(s.item_rows(2048), 210);
  expect_covers(s, 2048);
  const RowSplit three_cols = split_rows(2048, 1, 3, 6, 96, 2);
  EXPECT_EQ(three_cols.items(2048) * 3 % 2, 0) << three_cols.items(2048);
  expect_covers(three_cols, 2048);
}

TEST(HostWorkSplit, ExpertsOfAFewHundredRowsAreOneItemEach) {
  const RowSplit s = split_rows(46 * 178, 46, 1, 6, 96, 2);
  for (int64 rows : {0, 1, 100, 178, 300}) {
    EXPECT_EQ(s.items(rows), rows ? 1 : 0) << rows;
    if (rows) expect_covers(s, rows);
  }
}

TEST(HostWorkSplit, AShortLaunchKeepsItsMcRowItems) {
  const RowSplit s = split_rows(46, 1, 8, 6, 96, 2);  // the router's weight gradient: 46 rows, 8 column blocks
  EXPECT_EQ(s.cap, 96);
  EXPECT_EQ(s.items(46), 1);
  const RowSplit few = split_rows(5 * 100, 5, 1, 6, 96, 4);
  EXPECT_EQ(few.cap, 96);
  EXPECT_EQ(few.items(100), 2);
}

TEST(HostWorkSplit, RandomLaunchesCoverTheirRowsWithEnoughItems) {
  std::mt19937 rng(std::random_device{}());
  for (int trial = 0; trial < 2000; ++trial) {
    const int64 groups = 1 + rng() % 64, cols = 1 + rng() % 8, mr = 1 + rng() % 12, mc = mr * (1 + rng() % 16);
    const int64 threads = 1 + rng() % 8;
    std::vector<int64> rows(groups);
    int64 total = 0;
    for (auto& r : rows) total += r = rng() % 3000;
    const RowSplit s = split_rows(total, groups, cols, mr, mc, threads);
    EXPECT_EQ(s.cap % mr, 0);
    EXPECT_GE(s.cap, mc);
    int64 items = 0, mc_items = 0;
    for (int64 r : rows) {
      if (r) expect_covers(s, r);
      items += s.items(r) * cols;
      mc_items += (r + mc - 1) / mc * cols;
    }
    // Fewer, larger items than one per mc rows (one group: at most threads - 1 more per column block,
    // to even it out), but never fewer than the target when that had more.
    EXPECT_LE(items, groups == 1 ? mc_items + (threads - 1) * cols : mc_items);
    EXPECT_GE(items, std::min(mc_items, kItemsPerThread * threads))
        << "groups " << groups << " cols " << cols << " mr " << mr << " mc " << mc << " threads " << threads;
  }
}

// A trained router sends up to a quarter of a step's rows to one expert, and wgrad runs an expert's
// whole reduction in one item: handed out last, it would leave the other threads waiting.
TEST(HostWorkSplit, TheHeaviestItemsGoFirstAndEqualOnesKeepTheirOrder) {
  const std::vector<int64> work = {5, 0, 40, 5, 7, 40, 0};
  std::vector<int64> order(work.size(), -1);
  order_by_work(work.data(), int64(work.size()), order.data());
  EXPECT_EQ(order, (std::vector<int64>{2, 5, 4, 0, 3, 1, 6}));
}

TEST(HostWorkSplit, RandomWorksAreOrderedAsAStableSortWould) {
  std::mt19937 rng(std::random_device{}());
  for (int trial = 0; trial < 200; ++trial) {
    std::vector<int64> work(rng() % 300);
    for (auto& w : work) w = rng() % 8 == 0 ? 0 : int64(rng() % 1000);
    std::vector<int64> order(work.size(), -1), want(work.size());
    order_by_work(work.data(), int64(work.size()), order.data());
    for (size_t i = 0; i < want.size(); ++i) want[i] = int64(i);
    std::stable_sort(want.begin(), want.end(), [&](int64 a, int64 b) { return work[a] > work[b]; });
    EXPECT_EQ(order, want);
  }
}

// A reduction's panels: as many as the nearest whole number of kc (at least one), their lengths
// within one of each other (a remainder never gets a panel of its own), none longer than
// max_panel_depth, which the kernels' buffers are sized for.
TEST(HostWorkSplit, ReductionPanelsAreEqualAndNeverAShortRemainder) {
  EXPECT_EQ(reduction_panels(311, 256), 1);  // moe-2b's wgrad: one panel, not 256 + 55
  EXPECT_EQ(reduction_panels(320, 256), 1);  // its dgrad
  EXPECT_EQ(reduction_panels(2048, 256), 8);
  EXPECT_EQ(reduction_panels(400, 256), 2);
  EXPECT_EQ(reduction_panels(100, 256), 1);
  std::mt19937 rng(7);
  for (int i = 0; i < 2000; ++i) {
    const int64 kc = 1 + rng() % 512, k = 1 + rng() % 5000, panels = reduction_panels(k, kc);
    ASSERT_EQ(panels, std::max<int64>(1, int64(std::floor(double(k) / double(kc) + 0.5)))) << k << " " << kc;
    int64 shortest = k, longest = 0, end = 0;
    for (int64 p = 0; p < panels; ++p) {  // as gemm_block walks them
      const int64 pc = k * p / panels, kb = k * (p + 1) / panels - pc;
      ASSERT_EQ(pc, end);
      end = pc + kb;
      shortest = std::min(shortest, kb), longest = std::max(longest, kb);
    }
    ASSERT_EQ(end, k);
    ASSERT_LE(longest - shortest, 1) << k << " " << kc;
    ASSERT_LE(longest, max_panel_depth(kc)) << k << " " << kc;
  }
}
