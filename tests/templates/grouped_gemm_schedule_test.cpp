// CPU tests of the grouped GEMM index arithmetic that the GPU kernels run (grouped_gemm_schedule.h):
// the tile scheduler over ragged segments, tile coordinates, operand tile addressing, TMA
// coordinates and the swizzles, checked against the segment layout by brute force.
#include <gtest/gtest.h>

#include <random>
#include <set>
#include <vector>

#include "grouped_gemm/grouped_gemm_schedule.h"

namespace moejit::gg {
namespace {

std::vector<int> offsets_from(const std::vector<int>& lens) {
  std::vector<int> off{0};
  for (int l : lens) off.push_back(off.back() + l);
  return off;
}

const int kOps[] = {kFwd, kUpSwiglu, kDgrad, kWgrad};

// Persistent CTAs: CTA b takes tiles b, b + grid, ... through its own cursor. Every output element
// of every expert must be covered exactly once, nothing outside, and no tile may be empty.
void check_cover(int op, const std::vector<int>& lens, Dims d, int bm, int bn, int raster, int grid) {
  const auto off = offsets_from(lens);
  d.num_experts = static_cast<int>(lens.size());
  const Tiling t = make_tiling(op, d, bm, bn, raster);
  const int64 out_cols = op == kDgrad ? d.k : d.n;
  // Flat hit counts per (expert, output row, output column).
  std::vector<int64> base(d.num_experts + 1, 0);
  for (int e = 0; e < d.num_experts; ++e) base[e + 1] = base[e] + (op == kWgrad ? d.k : lens[e]) * out_cols;
  std::vector<int> hits(base.back(), 0);
  int64 total_tiles = 0;
  for (int b = 0; b < grid; ++b) {
    TileCursor cur;
    TileCoord c;
    for (int64 tile = b; locate_tile(off.data(), d, t, cur, tile, c); tile += grid) {
      ++total_tiles;
      ASSERT_GE(c.expert, 0);
      ASSERT_LT(c.expert, d.num_experts);
      const int64 seg0 = off[c.expert], len = lens[c.expert];
      ASSERT_GT(c.rows, 0);
      ASSERT_LE(c.rows, bm);
      ASSERT_GT(c.cols, 0);
      ASSERT_LE(c.cols, out_cols_per_tile(op, bn));
      if (op == kWgrad) {
        ASSERT_EQ(c.red0, seg0);
        ASSERT_EQ(c.red_len, len);
        ASSERT_LE(c.row0 + c.rows, d.k);
      } else {
        ASSERT_GT(len, 0) << "empty expert got a tile";
        ASSERT_GE(c.row0, seg0);
        ASSERT_LE(c.row0 + c.rows, seg0 + len) << "tile rows leave the segment";
        ASSERT_EQ(c.red_len, op == kDgrad ? d.n : d.k);
      }
      ASSERT_LE(c.col0 + c.cols, out_cols);
      const int64 row_local0 = op == kWgrad ? c.row0 : c.row0 - seg0;
      for (int r = 0; r < bm; ++r)
        for (int col = 0; col < out_cols_per_tile(op, bn); ++col)
          if (in_tile(c, r, col)) ++hits[base[c.expert] + (row_local0 + r) * out_cols + c.col0 + col];
    }
  }
  for (size_t i = 0; i < hits.size(); ++i) ASSERT_EQ(hits[i], 1) << "op " << op << " element " << i;
  int64 sum_tiles = 0;
  for (int l : lens) sum_tiles += expert_tiles(t, l);
  ASSERT_EQ(total_tiles, sum_tiles);
}

TEST(GroupedGemmSchedule, CoversEverySegmentOnceAcrossOpsTilesAndGrids) {
  const std::vector<std::vector<int>> layouts = {
      {1},                            // E = 1, one token
      {300},                          // E = 1
      {0, 0, 5, 0},                   // mostly empty
      {1, 1, 1, 1, 1, 1, 1, 1},       // 1-token segments
      {127, 128, 129, 0, 64, 63, 1},  // around tile boundaries
      {0},                            // nothing at all
  };
  const Dims dims[] = {{64, 128, 0}, {72, 200, 0}, {136, 24, 0}};
  for (int op : kOps)
    for (const auto& lens : layouts)
      for (const Dims& d : dims)
        for (int bm : {64, 128})
          for (int bn : {64, 128})
            for (int raster : {0, 1})
              for (int grid : {1, 3, 132}) {
                SCOPED_TRACE(::testing::Message() << "op " << op << " k " << d.k << " n " << d.n << " bm " << bm
                                                  << " bn " << bn << " raster " << raster << " grid " << grid);
                check_cover(op, lens, d, bm, bn, raster, grid);
                if (HasFatalFailure()) return;
              }
}

TEST(GroupedGemmSchedule, TwoHundredFiftySixMostlyEmptyExperts) {
  std::vector<int> lens(256, 0);
  lens[3] = 17, lens[100] = 1, lens[200] = 300, lens[255] = 64;
  for (int op : kOps) check_cover(op, lens, Dims{64, 64, 0}, 64, 64, 0, 132);
}

TEST(GroupedGemmSchedule, RandomSkewedLoads) {
  std::mt19937 rng(7);
  for (int iter = 0; iter < 20; ++iter) {
    std::vector<int> lens(1 + rng() % 40);
    for (int& l : lens) l = rng() % 3 == 0 ? 0 : static_cast<int>(rng() % 300);
    const Dims d{static_cast<int64>(8 * (1 + rng() % 20)), static_cast<int64>(8 * (1 + rng() % 40)), 0};
    const int raster = static_cast<int>(rng() % 2), grid = static_cast<int>(1 + rng() % 200);
    for (int op : kOps) check_cover(op, lens, d, 64, 128, raster, grid);
  }
}

// Operand tiles address exactly the elements of the maths: A(m, r) and B(r, n) of the expert.
TEST(GroupedGemmSchedule, OperandTilesAddressTheRightElements) {
  const std::vector<int> lens = {5, 0, 70, 9};
  const auto off = offsets_from(lens);
  const int E = 4, bm = 64, bn = 64, bk = 32;
  const Dims d{40, 48, E};
  const int64 m_total = off.back();
  // Fake base pointers: indices into a virtual address space.
  std::vector<bf16> x(m_total * d.k), dy(m_total * d.n), w(E * d.k * d.n * 2);
  for (int op : kOps) {
    const Tiling t = make_tiling(op, d, bm, bn, 0);
    Operands g;
    g.a = op == kDgrad ? dy.data() : x.data();
    g.b = op == kWgrad ? dy.data() : w.data();
    const int64 wwidth = op == kUpSwiglu ? 2 * d.n : d.n;
    TileCursor cur;
    TileCoord c;
    for (int64 tile = 0; locate_tile(off.data(), d, t, cur, tile, c); ++tile)
      for (int64 kb = 0; kb < k_blocks(c, bk); ++kb) {
        const OperandTile a = a_tile(op, d, g, c, bm, bk, kb), b = b_tile(op, d, g, c, bn, bk, kb);
        for (int m = 0; m < bm; ++m)
          for (int r = 0; r < bk; ++r) {
            const int64 red = kb * bk + r;
            const bool valid_m = op == kWgrad ? c.row0 + m < d.k : m < c.rows;
            const bool valid = valid_m && red < c.red_len;
            const bf16* p = a_k_major(op) ? a.at(m, r) : a.at(r, m);
            const bf16* want = nullptr;
            if (valid) {
              if (op == kWgrad)
                want = x.data() + (c.red0 + red) * d.k + c.row0 + m;
              else
                want = g.a + (c.row0 + m) * (op == kDgrad ? d.n : d.k) + red;
            }
            ASSERT_EQ(p, want) << "A op " << op << " m " << m << " r " << r;
          }
        for (int r = 0; r < bk; ++r)
          for (int nn = 0; nn < bn; ++nn) {
            const int64 red = kb * bk + r;
            const bf16* p = b_k_major(op) ? b.at(nn, r) : b.at(r, nn);
            const bf16* want = nullptr;
            if (red < c.red_len) {
              if (op == kWgrad) {
                if (c.col0 + nn < d.n) want = dy.data() + (c.red0 + red) * d.n + c.col0 + nn;
              } else if (op == kDgrad) {  // B(r = n index, nn = k index) = W_e[k][n]
                if (c.col0 + nn < d.k) want = w.data() + c.expert * d.k * d.n + (c.col0 + nn) * d.n + red;
              } else {
                int64 col = c.col0 + nn;
                bool ok = col < d.n;
                if (op == kUpSwiglu) {
                  const int half = bn / 2;
                  col = nn < half ? c.col0 + nn : d.n + c.col0 + nn - half;
                  ok = (nn < half ? nn : nn - half) + c.col0 < d.n;
                }
                if (ok) want = w.data() + c.expert * d.k * wwidth + red * wwidth + col;
              }
            }
            ASSERT_EQ(p, want) << "B op " << op << " r " << r << " n " << nn;
          }
      }
  }
}

// TMA boxes: the coordinates of each box's first element are the global element the operand tile
// addresses at the box's origin (when that element is inside the tensor).
TEST(GroupedGemmSchedule, TmaCoordinatesMatchOperandTiles) {
  const std::vector<int> lens = {130, 0, 7, 64};
  const auto off = offsets_from(lens);
  const Dims d{192, 256, 4};
  const int bk = 64;
  for (int op : kOps)
    for (int bm : {64, 128})
      for (int bn : {128, 256}) {
        const Tiling t = make_tiling(op, d, bm, bn, 1);
        TileCursor cur;
        TileCoord c;
        for (int64 tile = 0; locate_tile(off.data(), d, t, cur, tile, c); ++tile)
          for (int64 kb = 0; kb < k_blocks(c, bk); ++kb) {
            for (int j = 0; j < tma_a_boxes(op, bm); ++j) {
              const TmaCoord tc = tma_a_coord(op, c, bk, kb, j);
              if (a_k_major(op)) {
                EXPECT_EQ(tc.c0, kb * bk);
                EXPECT_EQ(tc.c1, c.row0);
              } else {
                EXPECT_EQ(tc.c0, c.row0 + 64 * j);   // K column of X
                EXPECT_EQ(tc.c1, c.red0 + kb * bk);  // token row
              }
            }
            for (int j = 0; j < tma_b_boxes(op, bn); ++j) {
              const TmaCoord tc = tma_b_coord(op, d, c, bn, bk, kb, j);
              if (op == kDgrad) {
                EXPECT_EQ(tc.c0, kb * bk);
                EXPECT_EQ(tc.c1, c.col0);
                EXPECT_EQ(tc.c2, c.expert);
              } else if (op == kWgrad) {
                EXPECT_EQ(tc.c0, c.col0 + 64 * j);
                EXPECT_EQ(tc.c1, c.red0 + kb * bk);
              } else {
                const int half = bn / 128;
                const int64 col = op == kUpSwiglu && j >= half ? d.n + c.col0 + 64 * (j - half) : c.col0 + 64 * j;
                EXPECT_EQ(tc.c0, col);
                EXPECT_EQ(tc.c1, kb * bk);
                EXPECT_EQ(tc.c2, c.expert);
              }
            }
          }
      }
}

// The wgmma descriptors read each operand element exactly where the TMA boxes put it: for every
// op, consumer, k16 step and element, the canonical-layout read offset (wgmma_read_offset) equals
// the TMA write offset (box j at j * box bytes, element (row, col) of a box at
// swizzle128(row * 128 + col * 2)).
TEST(GroupedGemmSchedule, WgmmaDescriptorsReadWhereTmaWrote) {
  const int bk = 64;
  for (int op : kOps)
    for (int consumers : {1, 2})
      for (int bn : {64, 128, 256}) {
        const int bm = 64 * consumers;
        const uint32 a_box = stage_bytes_a(bm, bk) / tma_a_boxes(op, bm);
        const uint32 b_box = stage_bytes_b(bn, bk) / tma_b_boxes(op, bn);
        for (int kk = 0; kk < bk / 16; ++kk)
          for (int k = 0; k < 16; ++k) {
            const int red = kk * 16 + k;  // reduction index inside the stage
            for (int consumer = 0; consumer < consumers; ++consumer)
              for (int m = 0; m < 64; ++m) {
                const int row = consumer * 64 + m;                                    // tile row
                const uint32 wrote = a_k_major(op) ? swizzle128(row * 128 + red * 2)  // one box [bm][64 red]
                                                   : (row / 64) * a_box + swizzle128(red * 128 + (row % 64) * 2);
                ASSERT_EQ(wgmma_read_offset(wgmma_a_operand(op, consumer, kk, bk), m, k), wrote)
                    << "A op " << op << " consumer " << consumer << " kk " << kk << " m " << m << " k " << k;
              }
            for (int n = 0; n < bn; ++n) {
              const uint32 wrote = b_k_major(op) ? swizzle128(n * 128 + red * 2)  // one box [bn][64 red]
                                                 : (n / 64) * b_box + swizzle128(red * 128 + (n % 64) * 2);
              ASSERT_EQ(wgmma_read_offset(wgmma_b_operand(op, kk, bk), n, k), wrote)
                  << "B op " << op << " bn " << bn << " kk " << kk << " n " << n << " k " << k;
            }
          }
      }
}

// Every operand wgmma reads lies inside its stage, and the stage layouts keep every TMA box on
// a 1024-byte swizzle atom boundary (the swizzle is applied to absolute address bits).
TEST(GroupedGemmSchedule, TmaBoxesAreAtomAligned) {
  for (int op : kOps)
    for (int bm : {64, 128})
      for (int bn : {64, 128, 256}) {
        EXPECT_EQ(stage_bytes_a(bm, 64) % 1024, 0);
        EXPECT_EQ((stage_bytes_a(bm, 64) / tma_a_boxes(op, bm)) % 1024, 0);
        EXPECT_EQ((stage_bytes_b(bn, 64) / tma_b_boxes(op, bn)) % 1024, 0);
      }
}

// The swizzles are permutations of 16-byte chunks within a row, and ldmatrix row groups hit
// distinct chunk slots.
TEST(GroupedGemmSchedule, SwizzlesArePermutations) {
  for (int row_elems : {32, 64, 128, 256}) {
    std::set<int> seen;
    for (int r = 0; r < 16; ++r)
      for (int c = 0; c < row_elems; ++c) {
        const int e = swizzled_elem(r, c, row_elems);
        EXPECT_GE(e, r * row_elems);
        EXPECT_LT(e, (r + 1) * row_elems);
        EXPECT_TRUE(seen.insert(e).second);
      }
    if (row_elems >= 64)  // eight consecutive rows, same logical chunk: eight distinct physical chunks
      for (int c = 0; c < row_elems / 8; ++c) {
        std::set<int> slots;
        for (int r = 0; r < 8; ++r) slots.insert(swizzle_chunk(r, c, row_elems) % 8);
        EXPECT_EQ(slots.size(), 8u);
      }
  }
  std::set<int> seen;
  for (int r = 0; r < 8; ++r)
    for (int c = 0; c < 64; ++c) EXPECT_TRUE(seen.insert(swizzle128_offset(r, c)).second);
  EXPECT_EQ(*seen.rbegin(), 1022);
}

}  // namespace
}  // namespace moejit::gg
