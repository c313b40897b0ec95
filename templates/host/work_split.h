// How a host grouped GEMM launch cuts its groups' rows (an expert's tokens, a head's queries, a
// dense matmul's one group) into work items. An item packs its B panel once per kc step and reuses
// it over all of its rows (host/grouped_gemm.h), so items want many rows; the backend hands items
// to its threads one at a time, so there must also be enough of them that no thread idles while
// another finishes a long one. The rule, a pure function of the launch:
//   - at least kItemsPerThread x threads items over the whole launch (groups x column blocks);
//   - an item has at least mc rows (as many as one packed A block), so a launch that was already
//     short of items keeps the mc-row items it had;
//   - a group's rows split into equal items (multiples of MR), so no item is a small remainder;
//   - a launch of one group (a dense matmul) gets a multiple of `threads` items;
//   - threads take the heaviest items first (order_by_work).
// Compiled by Clang into the JIT kernels and by the host compiler into the spec's heuristic
// (grouped_gemm_spec.cpp), which must count the same items.
#pragma once
#include "common/host_device.h"

namespace moejit::host {

constexpr int64 kItemsPerThread = 4;

inline int64 ceil_div(int64 a, int64 b) {
  return (a + b - 1) / b;
}
inline int64 round_up(int64 x, int64 m) {
  return ceil_div(x, m) * m;
}

struct RowSplit {
  int64 cap;         // the most rows one item takes: a multiple of mr, at least mc
  int64 mr;          // item rows are multiples of the micro-tile's
  int64 col_blocks;  // items per row range (the output's nc-wide column blocks)
  int64 threads;
  bool one_group;

  // Rows of each item of a group with `rows` rows (its last item may have fewer).
  int64 item_rows(int64 rows) const {
    if (rows <= 0) return mr;
    int64 items = ceil_div(rows, cap);
    if (one_group)
      while ((items * col_blocks) % threads != 0 && items * mr < rows) ++items;
    return round_up(ceil_div(rows, items), mr);
  }
  // Work items of a group with `rows` rows, for one column block.
  int64 items(int64 rows) const { return rows <= 0 ? 0 : ceil_div(rows, item_rows(rows)); }
};

// total_rows: the launch's rows summed over its groups.
inline RowSplit split_rows(int64 total_rows, int64 groups, int64 col_blocks, int64 mr, int64 mc, int64 threads) {
  const int64 target = kItemsPerThread * (threads > 0 ? threads : 1);
  int64 cap = total_rows * col_blocks / target / mr * mr;  // rounded down: at least `target` items
  if (cap < mc) cap = mc;
  return {cap, mr, col_blocks, threads > 0 ? threads : 1, groups == 1};
}

// How many panels a reduction of length k takes (the BLIS kc loop): the nearest whole number of
// kc-long ones, panel i covering [i k / panels, (i + 1) k / panels). Each panel past the first
// reads and writes C again, which a reduction just past kc would pay for a short remainder
// (moe-2b's wgrad: an expert's 311 rows at kc 256, its dgrad's 320 columns: one panel each, 1.04-
// 1.07x faster than 256 + a remainder); no panel is longer than max_panel_depth(kc), which the
// per-worker buffers are sized for.
inline int64 reduction_panels(int64 k, int64 kc) {
  const int64 panels = (k + kc / 2) / kc;
  return panels > 1 ? panels : 1;
}
inline int64 max_panel_depth(int64 kc) {
  return kc + kc / 2;
}

// Orders the groups by the work of one of their items (rows x reduction length), heaviest first,
// the order a launch hands its items out in (longest processing time first); stable, so equal
// groups keep their index order. An insertion sort over precomputed keys: a launch has at most a
// few hundred groups, and equal groups (attention's heads, a dense matmul's one) are in order.
inline void order_by_work(const int64* work, int64 groups, int64* order) {
  for (int64 e = 0; e < groups; ++e) {
    int64 p = e;
    for (; p > 0 && work[order[p - 1]] < work[e]; --p) order[p] = order[p - 1];
    order[p] = e;
  }
}

}  // namespace moejit::host
