// Host grouped GEMM for MoE experts: one GEMM per expert over its segment of the permuted rows
// (offsets[e] .. offsets[e+1], read by the kernel). Work items are (expert, row range, nc columns)
// blocks handed to the backend's parallel-for (the row ranges: host/work_split.h); each runs the
// whole reduction for its block with BLIS loops (kc panels; B packed once per panel and reused by
// every mc-row block of the item; NR-wide slivers, MR-high micro-tiles) on per-worker buffers.
// The families (forward, fused SwiGLU up-projection, dgrad, wgrad) differ only in how they view
// their operands: host/grouped_gemm_families.h.
#pragma once
#include <cstdlib>

#include "host/gemm_tile.h"
#include "host/work_split.h"
#include "moejit/abi/host_launch.h"

namespace moejit::host {

// The compile-time half of a config.
template <int VW_, int MR_, int NR_, bool PACK_>
struct Tile {
  static constexpr int VW = VW_, MR = MR_, NR = NR_;
  static constexpr bool PACK = PACK_;
};

// The runtime half.
struct Blocks {
  int64 kc, mc, nc;
};

inline int64 min64(int64 a, int64 b) {
  return a < b ? a : b;
}

// One worker's buffers, carved from a single 64-byte aligned allocation per launch.
struct Scratch {
  float* a;       // (round_up(mc, MR), kc) packed A block
  float* b;       // (kc, round_up(nc, NR)) packed B panel
  float* edge_a;  // (MR, kc) one A sliver, for edge tiles when A is read in place
  float* edge_b;  // (kc, NR) one B sliver, likewise
};

template <class T>
int64 scratch_floats(const Blocks& blk) {
  const int64 kp = max_panel_depth(blk.kc);
  return round_up(blk.mc, T::MR) * kp + kp * round_up(blk.nc, T::NR) + T::MR * kp + kp * T::NR;
}

template <class T>
Scratch scratch_for(float* base, const Blocks& blk) {
  const int64 kp = max_panel_depth(blk.kc);
  Scratch s;
  s.a = base;
  s.b = s.a + round_up(blk.mc, T::MR) * kp;
  s.edge_a = s.b + kp * round_up(blk.nc, T::NR);
  s.edge_b = s.edge_a + T::MR * kp;
  return s;
}

// The zero half of a causal view's operand (host/grouped_gemm_families.h), in the block's own
// coordinates, so that each micro-tile skips it rather than the block as a whole:
//   a_rows  A (i, p) is 0 for p >= i + diag + 1: a tile's reduction ends at its last row's diagonal;
//   a_cols  A (i, p) is 0 for p < i + diag: a tile's reduction starts at its first row's diagonal;
//   c       C (i, j) for j > i + diag is not needed: tiles wholly above the diagonal are skipped.
struct Causal {
  enum Kind { none, a_rows, a_cols, c };
  Kind kind = none;
  int64 diag = 0;
};

// The part [begin, end) of the panel [pc, pc + kb) that rows ir .. ir + m of A need.
inline void causal_span(const Causal& causal, int64 ir, int64 m, int64 pc, int64 kb, int64& begin, int64& end) {
  begin = 0, end = kb;
  if (causal.kind == Causal::a_rows) end = min64(kb, causal.diag + ir + m - pc);
  if (causal.kind == Causal::a_cols) begin = min64(kb, causal.diag + ir - pc);
  if (begin < 0) begin = 0;
  if (end < begin) end = begin;  // no terms: the tile is written as zeros (or left, when accumulating)
}

// One kc panel of C (mb, nb) (+)= A (mb, kb) B (kb, nb) for at most mc rows, A and C offset to the
// rows' origin; B's panel is already packed in s.b when b_packed (else read in place). stream: C's
// full tiles are written with non-temporal stores (micro_tile).
template <class T>
void gemm_panel(const View& a, const View& b, bool b_packed, float* c, int64 ldc, int64 mb, int64 nb, int64 pc,
                int64 kb, const Scratch& s, const Causal& causal, bool accumulate, bool stream = false) {
  if (T::PACK) pack_a<T::MR>(a, 0, pc, mb, kb, s.a);
  for (int64 jr = 0; jr < nb; jr += T::NR) {
    const int64 n = min64(T::NR, nb - jr);
    const float* bp;
    int64 brs = T::NR;
    if (b_packed) {
      bp = s.b + jr * kb;
    } else if (n == T::NR) {
      bp = b.ptr(pc, jr);
      brs = b.rs;
    } else {
      pack_b<T::NR>(b, pc, jr, kb, n, s.edge_b);
      bp = s.edge_b;
    }
    for (int64 ir = 0; ir < mb; ir += T::MR) {
      const int64 m = min64(T::MR, mb - ir);
      if (causal.kind == Causal::c && jr > ir + m - 1 + causal.diag) continue;
      int64 p0, p1;
      causal_span(causal, ir, m, pc, kb, p0, p1);
      if (p1 == p0 && accumulate) continue;  // nothing to add
      float* cp = c + ir * ldc + jr;
      const float* bq = bp + p0 * brs;
      if (T::PACK) {
        micro_tile<T::MR, T::NR, T::VW, true>(p1 - p0, s.a + ir * kb + p0 * T::MR, 1, T::MR, bq, brs, cp, ldc, m, n,
                                              accumulate, stream);
      } else if (m == T::MR) {
        micro_tile<T::MR, T::NR, T::VW, false>(p1 - p0, a.ptr(ir, pc + p0), a.rs, a.cs, bq, brs, cp, ldc, m, n,
                                               accumulate, stream);
      } else {
        pack_a<T::MR>(a, ir, pc + p0, m, p1 - p0, s.edge_a);
        micro_tile<T::MR, T::NR, T::VW, true>(p1 - p0, s.edge_a, 1, T::MR, bq, brs, cp, ldc, m, n, accumulate);
      }
    }
  }
}

// C (mb, nb) = (or += when `into`) A (mb, k) * B (k, nb), all three already offset to the block's
// origin; mb may exceed mc: the rows are walked in mc blocks under each packed B panel. A is read
// in place when the tile says so; B too when its rows are contiguous. stream: the last panel writes
// C's final values with non-temporal stores (micro_tile).
template <class T>
void gemm_block(const View& a, const View& b, float* c, int64 ldc, int64 mb, int64 nb, int64 k, const Blocks& blk,
                const Scratch& s, const Causal& causal = {}, bool into = false, bool stream = false) {
  if (k == 0) {  // an expert with no rows still owes zeros (wgrad), or nothing when accumulating
    for (int64 i = 0; i < mb && !into; ++i)
      for (int64 j = 0; j < nb; ++j) c[i * ldc + j] = 0.0f;
    return;
  }
  const bool b_packed = T::PACK || b.cs != 1;
  const int64 panels = reduction_panels(k, blk.kc);
  for (int64 panel = 0; panel < panels; ++panel) {
    const int64 pc = k * panel / panels, kb = k * (panel + 1) / panels - pc;
    if (b_packed) pack_b<T::NR>(b, pc, 0, kb, nb, s.b);
    for (int64 ic = 0; ic < mb; ic += blk.mc)  // the causal diagonal, in the row block's coordinates
      gemm_panel<T>(View{a.ptr(ic, 0), a.rs, a.cs}, b, b_packed, c + ic * ldc, ldc, min64(blk.mc, mb - ic), nb, pc, kb,
                    s, Causal{causal.kind, causal.diag + ic}, into || pc > 0, stream && panel == panels - 1);
  }
}

// Runs family F over every expert: F provides rows(e) (M of expert e, cut into items by RowSplit),
// cols() (N, tiled by nc), depth(e) (the reduction's length: K, or wgrad's expert rows), streams()
// (whether its blocks write with non-temporal stores) and block<T>(e, i0, mb, j0, nb, blocks,
// scratch). Threads take items in order, so the experts go heaviest item first (longest-processing-
// time order): a trained router sends up to a quarter of the rows to one expert, and wgrad runs an
// expert's whole reduction in one item; were it last, one thread would still run it while the
// others wait. No item depends on which thread runs it or when, so the order changes no result.
template <class T, class F>
struct GroupedRun {
  const F* family;
  Blocks blocks;
  RowSplit split;
  int64 experts, col_blocks;
  const int64* order;       // (E) the experts, heaviest item first
  const int64* first_item;  // (E + 1) prefix counts of work items, in that order
  float* scratch;
  int64 scratch_stride;

  static void item(void* ctx, int worker, long long index) {
    const GroupedRun& run = *static_cast<const GroupedRun*>(ctx);
    int64 lo = 0, hi = run.experts;  // the place p with first_item[p] <= index < first_item[p + 1]
    while (hi - lo > 1) {
      const int64 mid = (lo + hi) / 2;
      if (run.first_item[mid] <= index)
        lo = mid;
      else
        hi = mid;
    }
    const int64 e = run.order[lo], local = index - run.first_item[lo], rows = run.family->rows(e);
    const int64 step = run.split.item_rows(rows);
    const int64 i0 = (local / run.col_blocks) * step, j0 = (local % run.col_blocks) * run.blocks.nc;
    const int64 mb = min64(step, rows - i0), nb = min64(run.blocks.nc, run.family->cols() - j0);
    run.family->template block<T>(e, i0, mb, j0, nb, run.blocks,
                                  scratch_for<T>(run.scratch + worker * run.scratch_stride, run.blocks));
    // Non-temporal stores are weakly ordered: they must be visible before the item counts as done.
    if (run.family->streams()) __builtin_ia32_sfence();
  }
};

template <class T, class F>
void run_grouped(const F& family, int64 experts, const Blocks& blocks, const HostLaunch* launch) {
  int64* tables = static_cast<int64*>(std::malloc(sizeof(int64) * (3 * experts + 1)));
  int64 *order = tables, *work = tables + experts, *first_item = tables + 2 * experts;
  const int64 col_blocks = ceil_div(family.cols(), blocks.nc);
  int64 total_rows = 0;
  for (int64 e = 0; e < experts; ++e) total_rows += family.rows(e);
  const RowSplit split = split_rows(total_rows, experts, col_blocks, T::MR, blocks.mc, launch->threads);
  for (int64 e = 0; e < experts; ++e) {  // the work of the expert's first (largest) item
    const int64 rows = family.rows(e);
    work[e] = rows > 0 ? min64(split.item_rows(rows), rows) * family.depth(e) : 0;
  }
  order_by_work(work, experts, order);
  first_item[0] = 0;
  for (int64 p = 0; p < experts; ++p)
    first_item[p + 1] = first_item[p] + split.items(family.rows(order[p])) * col_blocks;
  const int64 stride = round_up(scratch_floats<T>(blocks), 16);
  float* scratch = static_cast<float*>(std::aligned_alloc(64, sizeof(float) * stride * launch->threads));
  GroupedRun<T, F> run{&family, blocks, split, experts, col_blocks, order, first_item, scratch, stride};
  if (first_item[experts] > 0) launch->parallel_for(launch, first_item[experts], &GroupedRun<T, F>::item, &run);
  std::free(scratch);
  std::free(tables);
}

}  // namespace moejit::host
