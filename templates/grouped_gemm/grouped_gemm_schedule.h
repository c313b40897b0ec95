// Grouped (per-expert) GEMM index arithmetic, shared by host and device: the operations and their
// layouts, the persistent tile scheduler over ragged expert segments, tile coordinates, where each
// operand tile comes from in global memory (element addresses for cp.async, TMA box coordinates)
// and epilogue bounds. Everything here is MOEJIT_HD so that the CPU tests check the exact code the
// kernels run.
//
// Tokens are permuted into expert-contiguous segments: expert e owns rows [offsets[e], offsets[e+1])
// of the activations; offsets live on the device and are read only there. Shapes (bf16 inputs):
//   X  (M_total, K)   activations       W  (E, K, N)   weights (up_swiglu: (E, K, 2N), [gate | up])
//   dY (M_total, N)   output gradient
//   fwd:       Y[seg e]  (len, N)  = X[seg e] . W_e
//   up_swiglu: H[seg e]  (len, N)  = silu(X W_gate) * (X W_up); GU (len, 2N) = [X W_gate | X W_up]
//   dgrad:     dX[seg e] (len, K)  = dY[seg e] . W_e^T
//   wgrad:     dW_e      (K, N)    = X[seg e]^T . dY[seg e]   (reduction over the ragged segment)
#pragma once
#include "common/host_device.h"

namespace moejit {
namespace gg {

enum Op : int { kFwd = 0, kUpSwiglu = 1, kDgrad = 2, kWgrad = 3 };

// Which dimension is contiguous in shared memory (and in global memory) for each operand.
// A is (tile M, reduction), B is (reduction, tile N). "K-major": the reduction dim is contiguous.
MOEJIT_HD constexpr bool a_k_major(int op) {
  return op != kWgrad;
}
MOEJIT_HD constexpr bool b_k_major(int op) {
  return op == kDgrad;
}
// The reduction runs over a ragged segment (wgrad) instead of the output rows being ragged.
MOEJIT_HD constexpr bool ragged_reduction(int op) {
  return op == kWgrad;
}
// Output columns per tile: the gated op spends half of its B tile on gate and half on up columns.
MOEJIT_HD constexpr int out_cols_per_tile(int op, int bn) {
  return op == kUpSwiglu ? bn / 2 : bn;
}

MOEJIT_HD int64 ceil_div(int64 a, int64 b) {
  return (a + b - 1) / b;
}
MOEJIT_HD int64 min64(int64 a, int64 b) {
  return a < b ? a : b;
}

// Problem dimensions of one call, as the kernels see them.
struct Dims {
  int64 k = 0;  // weight rows (d_model for the up projection)
  int64 n = 0;  // weight columns (per half for up_swiglu)
  int num_experts = 0;
};

// How a call is cut into tiles.
struct Tiling {
  int op = kFwd;
  int bm = 0, bn = 0;        // CTA tile: output rows, B-tile columns
  int raster = 0;            // 0: output-row tiles vary fastest (CTAs in flight share a weight tile), 1: columns
  int64 out_rows_fixed = 0;  // wgrad: K (every expert has the same output); 0 for ragged-row ops
  int64 out_cols = 0;        // output width: N (fwd, up_swiglu, wgrad) or K (dgrad)
  int64 reduction = 0;       // reduction length for ragged-row ops: K (fwd, up_swiglu) or N (dgrad)
};

MOEJIT_HD Tiling make_tiling(int op, const Dims& d, int bm, int bn, int raster) {
  Tiling t;
  t.op = op, t.bm = bm, t.bn = bn, t.raster = raster;
  t.out_rows_fixed = op == kWgrad ? d.k : 0;
  t.out_cols = op == kDgrad ? d.k : d.n;
  t.reduction = op == kDgrad ? d.n : (op == kWgrad ? 0 : d.k);
  return t;
}

// Tiles of one expert whose segment holds `seg_len` rows. Ragged-row ops skip empty experts
// (0 tiles); wgrad always visits every output tile so an empty segment can write zeros.
MOEJIT_HD int64 tiles_m(const Tiling& t, int64 seg_len) {
  return ceil_div(ragged_reduction(t.op) ? t.out_rows_fixed : seg_len, t.bm);
}
MOEJIT_HD int64 tiles_n(const Tiling& t) {
  return ceil_div(t.out_cols, out_cols_per_tile(t.op, t.bn));
}
MOEJIT_HD int64 expert_tiles(const Tiling& t, int64 seg_len) {
  return tiles_m(t, seg_len) * tiles_n(t);
}

// One output tile of one expert.
struct TileCoord {
  int expert = -1;
  int64 row0 = 0;     // first output row: a global token row (ragged-row ops) or a K row (wgrad)
  int rows = 0;       // valid output rows, 1..bm
  int64 col0 = 0;     // first output column
  int cols = 0;       // valid output columns, 1..out_cols_per_tile
  int64 red0 = 0;     // first reduction index in global rows: segment start (wgrad), else 0
  int64 red_len = 0;  // reduction length: segment length (wgrad, may be 0), else K or N
};

// Walks the flattened tile list [expert 0's tiles, expert 1's tiles, ...] for one persistent CTA.
// The CTA asks for increasing tile indices, so the cursor only moves forward: reading offsets is
// O(E + tiles) per CTA and needs no shared memory or host help (CUDA-graph capturable).
struct TileCursor {
  int expert = -1;
  int64 first_tile = 0;  // flattened index of `expert`'s first tile
  int64 tiles = 0;       // tiles of `expert`
};

// Finds flattened tile `tile` (>= every tile asked before through this cursor). False once the
// list is exhausted. offsets: num_experts + 1 non-decreasing row starts.
MOEJIT_HD bool locate_tile(const int* offsets, const Dims& d, const Tiling& t, TileCursor& cur, int64 tile,
                           TileCoord& out) {
  while (tile >= cur.first_tile + cur.tiles) {
    cur.first_tile += cur.tiles;
    if (++cur.expert >= d.num_experts) return false;
    cur.tiles = expert_tiles(t, static_cast<int64>(offsets[cur.expert + 1]) - offsets[cur.expert]);
  }
  const int64 seg0 = offsets[cur.expert], seg_len = static_cast<int64>(offsets[cur.expert + 1]) - seg0;
  const int64 local = tile - cur.first_tile, tm = tiles_m(t, seg_len), tn = tiles_n(t);
  const int64 im = t.raster == 0 ? local % tm : local / tn;
  const int64 in = t.raster == 0 ? local / tm : local % tn;
  const int bn_out = out_cols_per_tile(t.op, t.bn);
  const int64 rows_total = ragged_reduction(t.op) ? t.out_rows_fixed : seg_len;
  out.expert = cur.expert;
  out.row0 = (ragged_reduction(t.op) ? 0 : seg0) + im * t.bm;
  out.rows = static_cast<int>(min64(t.bm, rows_total - im * t.bm));
  out.col0 = in * bn_out;
  out.cols = static_cast<int>(min64(bn_out, t.out_cols - in * bn_out));
  out.red0 = ragged_reduction(t.op) ? seg0 : 0;
  out.red_len = ragged_reduction(t.op) ? seg_len : t.reduction;
  return true;
}

// Reduction blocks of a tile (0 for an empty wgrad segment).
MOEJIT_HD int64 k_blocks(const TileCoord& c, int bk) {
  return ceil_div(c.red_len, bk);
}

// Where the element at (r, c) of a shared-memory operand tile lives in global memory, or nullptr
// when it is outside the operand (the loader zero-fills it). The shared tile is stored
// [rows][cols] with cols contiguous; which of (M or N, reduction) is the row depends on the layout.
struct OperandTile {
  const bf16* base = nullptr;  // element (0, 0) of the operand's global matrix
  int64 ld = 0;                // elements between consecutive global rows
  int64 row0 = 0, rows = 0;    // global row of tile row 0; valid tile rows
  int64 col0 = 0, cols = 0;    // global column of tile column 0; valid tile columns
  // up_swiglu B: tile columns >= split come from the up half: global column col0b + (c - split).
  int64 split = 1ll << 40, col0b = 0, cols_b = 0;

  MOEJIT_HD const bf16* at(int64 r, int64 c) const {
    if (r >= rows) return nullptr;
    if (c < split) return c < cols ? base + (row0 + r) * ld + col0 + c : nullptr;
    return c - split < cols_b ? base + (row0 + r) * ld + col0b + (c - split) : nullptr;
  }
};

// Global pointers of one call.
struct Operands {
  const bf16* a = nullptr;  // X (fwd, up_swiglu, wgrad) or dY (dgrad)
  const bf16* b = nullptr;  // W (fwd, up_swiglu, dgrad) or dY (wgrad)
};

// A tile for reduction block kb: fwd/up_swiglu/dgrad [bm][bk] (K-major), wgrad [bk][bm] (M-major).
MOEJIT_HD OperandTile a_tile(int op, const Dims& d, const Operands& g, const TileCoord& c, int bm, int bk, int64 kb) {
  OperandTile t;
  t.base = g.a;
  const int64 red = kb * bk, red_left = c.red_len - red;
  if (a_k_major(op)) {
    t.ld = op == kDgrad ? d.n : d.k;
    t.row0 = c.row0, t.rows = c.rows;
    t.col0 = red, t.cols = min64(bk, red_left);
  } else {  // wgrad: rows are tokens of the segment, columns are K rows of dW
    t.ld = d.k;
    t.row0 = c.red0 + red, t.rows = min64(bk, red_left);
    t.col0 = c.row0, t.cols = min64(bm, d.k - c.row0);
  }
  return t;
}

// B tile for reduction block kb: fwd/up_swiglu/wgrad [bk][bn] (N-major), dgrad [bn][bk] (K-major).
MOEJIT_HD OperandTile b_tile(int op, const Dims& d, const Operands& g, const TileCoord& c, int bn, int bk, int64 kb) {
  OperandTile t;
  const int64 red = kb * bk, red_left = c.red_len - red;
  if (op == kWgrad) {  // dY rows of the segment
    t.base = g.b, t.ld = d.n;
    t.row0 = c.red0 + red, t.rows = min64(bk, red_left);
    t.col0 = c.col0, t.cols = min64(bn, d.n - c.col0);
  } else if (op == kDgrad) {  // W_e^T: tile rows are W_e rows (output columns), columns are N
    t.base = g.b + static_cast<int64>(c.expert) * d.k * d.n, t.ld = d.n;
    t.row0 = c.col0, t.rows = min64(bn, d.k - c.col0);
    t.col0 = red, t.cols = min64(bk, red_left);
  } else {
    const int64 width = op == kUpSwiglu ? 2 * d.n : d.n;
    t.base = g.b + static_cast<int64>(c.expert) * d.k * width, t.ld = width;
    t.row0 = red, t.rows = min64(bk, red_left);
    t.col0 = c.col0;
    if (op == kUpSwiglu) {  // [gate cols col0.. | up cols n + col0..], bn/2 each
      t.cols = min64(bn / 2, d.n - c.col0);
      t.split = bn / 2, t.col0b = d.n + c.col0, t.cols_b = t.cols;
    } else {
      t.cols = min64(bn, d.n - c.col0);
    }
  }
  return t;
}

// TMA: coordinates (innermost first) of box j of the A or B tile for reduction block kb. Tensor
// maps: X or dY as 2D {cols, M_total}; W as 3D {width, K, E} so that K tails of one expert read
// zeros instead of the next expert. Boxes are 64 elements (128 bytes, the 128B swizzle span) wide.
struct TmaCoord {
  int c0 = 0, c1 = 0, c2 = 0;
};
inline constexpr int kTmaBoxCols = 64;

// A: K-major ops load one box {64 (reduction), bm rows}; wgrad loads bm/64 boxes {64 (K), bk tokens}.
MOEJIT_HD TmaCoord tma_a_coord(int op, const TileCoord& c, int bk, int64 kb, int j) {
  TmaCoord t;
  if (a_k_major(op)) {
    t.c0 = static_cast<int>(kb * bk), t.c1 = static_cast<int>(c.row0);
  } else {
    t.c0 = static_cast<int>(c.row0 + j * kTmaBoxCols), t.c1 = static_cast<int>(c.red0 + kb * bk);
  }
  return t;
}

// B: N-major ops load bn/64 boxes {64 (N), bk, 1}; dgrad loads one box {64 (reduction N), bn rows, 1}.
MOEJIT_HD TmaCoord tma_b_coord(int op, const Dims& d, const TileCoord& c, int bn, int bk, int64 kb, int j) {
  TmaCoord t;
  const int red = static_cast<int>(kb * bk);
  if (op == kDgrad) {
    t.c0 = red, t.c1 = static_cast<int>(c.col0), t.c2 = c.expert;
  } else if (op == kWgrad) {
    t.c0 = static_cast<int>(c.col0 + j * kTmaBoxCols), t.c1 = static_cast<int>(c.red0) + red;
  } else {
    const int half_boxes = bn / 2 / kTmaBoxCols;
    int64 col = c.col0 + j * kTmaBoxCols;
    if (op == kUpSwiglu && j >= half_boxes) col = d.n + c.col0 + (j - half_boxes) * kTmaBoxCols;
    t.c0 = static_cast<int>(col), t.c1 = red, t.c2 = c.expert;
  }
  return t;
}

// Boxes per stage and bytes the producer expects per stage.
MOEJIT_HD constexpr int tma_a_boxes(int op, int bm) {
  return a_k_major(op) ? 1 : bm / kTmaBoxCols;
}
MOEJIT_HD constexpr int tma_b_boxes(int op, int bn) {
  return b_k_major(op) ? 1 : bn / kTmaBoxCols;
}
MOEJIT_HD constexpr int stage_bytes_a(int bm, int bk) {
  return bm * bk * 2;
}
MOEJIT_HD constexpr int stage_bytes_b(int bn, int bk) {
  return bn * bk * 2;
}

// 128-byte swizzle as TMA writes it and wgmma reads it: inside each 1024-byte atom (8 rows of 128
// bytes) the 16-byte chunk index is XORed with the row index. Byte offset of element (r, c) of a
// box whose rows are 64 bf16 wide.
MOEJIT_HD int swizzle128_offset(int r, int c) {
  const int chunk = (c >> 3) ^ (r & 7);
  return r * 128 + chunk * 16 + (c & 7) * 2;
}

// Swizzle<3,4,3> on a shared-memory byte offset from a 1024-byte aligned base: the 16-byte chunk
// bits [4, 7) are XORed with the 128-byte row bits [7, 10).
MOEJIT_HD uint32 swizzle128(uint32 offset) {
  return offset ^ (((offset >> 7) & 7u) << 4);
}

// A wgmma shared-memory operand (128B swizzle) relative to its stage base: start offset, leading
// and stride byte offsets, and whether it is M-/N-major (imm-trans = 1).
struct WgmmaOperand {
  uint32 offset = 0, lbo = 0, sbo = 0;
  int mn_major = 0;
};

// A: the consumer's 64 rows for k16 step kk. K-major [BM][64] rows of 128 B: consumer rows start
// 8 KiB apart, a k16 step is 32 B inside the swizzle atom. M-major (wgrad): box `consumer`
// [bk tokens][64 K], a k16 step is 16 rows = 2 KiB; LBO = box stride (next 64 M elements).
MOEJIT_HD WgmmaOperand wgmma_a_operand(int op, int consumer, int kk, int bk) {
  WgmmaOperand d;
  if (a_k_major(op)) {
    d.offset = static_cast<uint32>(consumer * 64 * 128 + kk * 32), d.lbo = 16, d.sbo = 1024;
  } else {
    d.offset = static_cast<uint32>(consumer * bk * 128 + kk * 2048), d.lbo = static_cast<uint32>(bk * 128);
    d.sbo = 1024, d.mn_major = 1;
  }
  return d;
}

// B for k16 step kk. N-major boxes [bk][64] (LBO = box stride), dgrad K-major [BN][64].
MOEJIT_HD WgmmaOperand wgmma_b_operand(int op, int kk, int bk) {
  WgmmaOperand d;
  if (b_k_major(op)) {
    d.offset = static_cast<uint32>(kk * 32), d.lbo = 16, d.sbo = 1024;
  } else {
    d.offset = static_cast<uint32>(kk * 2048), d.lbo = static_cast<uint32>(bk * 128), d.sbo = 1024, d.mn_major = 1;
  }
  return d;
}

// Where wgmma reads element (mn, k) of an operand (mn: M or N index, k < 16), by the PTX ISA's
// canonical 128B-swizzle layouts for 16-bit types (T = 8 elements per 16 bytes):
//   K-major:  ((8, m), (T, 2k)) : ((8T, SBO), (1, T))     MN-major: ((T, 8, m), (8, k)) : ((1, T, LBO), (8T, SBO))
// then Swizzle<3,4,3> on the address. The tests check this against where TMA wrote the element.
MOEJIT_HD uint32 wgmma_read_offset(const WgmmaOperand& d, int mn, int k) {
  const uint32 linear = d.mn_major ? d.offset + (mn % 64) * 2 + (mn / 64) * d.lbo + (k % 8) * 128 + (k / 8) * d.sbo
                                   : d.offset + (mn % 8) * 128 + (mn / 8) * d.sbo + k * 2;
  return swizzle128(linear);
}

// cp.async tiles (mma.sync path) are swizzled the same way per row of `row_elems` bf16: the 16-byte
// chunk index is XORed with the row (mod the chunks a row holds, at most 8), so the eight rows an
// ldmatrix reads land in distinct banks.
MOEJIT_HD int swizzle_chunk(int r, int chunk, int row_elems) {
  const int chunks = row_elems / 8, mask = (chunks < 8 ? chunks : 8) - 1;
  return chunk ^ (r & mask);
}
MOEJIT_HD int swizzled_elem(int r, int c, int row_elems) {
  return r * row_elems + swizzle_chunk(r, c >> 3, row_elems) * 8 + (c & 7);
}

// Everything a grouped GEMM kernel call needs besides its tiles (the kernel's by-value argument;
// plain data with the same layout in host C++ and NVRTC).
struct Params {
  Operands in;
  void* out = nullptr;           // Y (M_total, N) | H (M_total, N) | dX (M_total, K) | dW (E, K, N)
  void* out_gate_up = nullptr;   // up_swiglu: GU (M_total, 2N), [gate | up] per row; else unused
  const int* offsets = nullptr;  // (E + 1) segment starts, on the device
  Dims dims;
  int raster = 0;
  int accumulate = 0;  // wgrad: 1 = dW_e += X_e^T dY_e (empty segment: dW_e untouched), 0 = dW_e = ...
};

// Epilogue: output element (r, c) of a tile (r < bm, c < out cols) is stored iff it is inside.
MOEJIT_HD bool in_tile(const TileCoord& c, int r, int col) {
  return r < c.rows && col < c.cols;
}

}  // namespace gg
}  // namespace moejit
