// Epilogues shared by the sm80 and sm90 grouped GEMM templates. Both tensor-core paths hand each
// thread accumulator pairs (row r, columns c and c + 1 of the tile); these functions bound-check
// and store them: plain (fwd, dgrad, wgrad with optional accumulation) or SwiGLU (gate and up
// columns of the same output column, held by the same thread).
#pragma once
#include "grouped_gemm/grouped_gemm_schedule.h"
#include "swiglu/swiglu.h"

namespace moejit {
namespace gg {

// One aligned 2-element store (col and every row stride are even, so p is 2-element aligned).
template <typename OutT>
__device__ __forceinline__ void store2(OutT* p, float v0, float v1, bool accumulate) {
  Vec<OutT, 2> v;
  if (accumulate) {
    v = load_vec<OutT, 2>(p);
    v0 += to_float(v.v[0]);
    v1 += to_float(v.v[1]);
  }
  v.v[0] = from_float<OutT>(v0);
  v.v[1] = from_float<OutT>(v1);
  store_vec<OutT, 2>(p, v);
}

// Output matrix of a tile: element (0, 0) of the expert's output and its row stride.
template <int OP, typename OutT>
__device__ __forceinline__ OutT* output_base(const Params& p, const TileCoord& c, int64& ld) {
  OutT* out = static_cast<OutT*>(p.out);
  if (OP == kWgrad) {
    ld = p.dims.n;
    return out + static_cast<int64>(c.expert) * p.dims.k * p.dims.n;
  }
  ld = OP == kDgrad ? p.dims.k : p.dims.n;
  return out;
}

// Plain epilogue for tile row r, tile columns col and col + 1 (col even; outputs are multiples of 8
// wide, so the pair is either fully inside or fully outside).
template <int OP, typename OutT>
__device__ __forceinline__ void store_pair(const Params& p, const TileCoord& c, int r, int col, float v0, float v1) {
  if (!in_tile(c, r, col)) return;
  int64 ld = 0;
  OutT* out = output_base<OP, OutT>(p, c, ld);
  const bool accumulate = OP == kWgrad && p.accumulate;
  if (accumulate && c.red_len == 0) return;  // empty segment: leave dW_e as accumulated
  store2(out + (c.row0 + r) * ld + c.col0 + col, v0, v1, accumulate);
}

// SwiGLU epilogue: (g0, g1) and (u0, u1) are the gate and up accumulators of output columns col,
// col + 1. Writes H = silu(g) * u and GU = [g | u] (what the backward needs).
template <typename OutT>
__device__ __forceinline__ void store_pair_swiglu(const Params& p, const TileCoord& c, int r, int col, float g0,
                                                  float g1, float u0, float u1) {
  if (!in_tile(c, r, col)) return;
  const int64 n = p.dims.n, row = c.row0 + r, column = c.col0 + col;
  OutT* gu = static_cast<OutT*>(p.out_gate_up) + row * 2 * n + column;
  store2(gu, g0, g1, false);
  store2(gu + n, u0, u1, false);
  // H from the rounded gate/up values, so that it equals swiglu_fwd applied to the stored GU.
  const float gr0 = to_float(from_float<OutT>(g0)), gr1 = to_float(from_float<OutT>(g1));
  const float ur0 = to_float(from_float<OutT>(u0)), ur1 = to_float(from_float<OutT>(u1));
  store2(static_cast<OutT*>(p.out) + row * n + column, swiglu_forward(gr0, ur0), swiglu_forward(gr1, ur1), false);
}

}  // namespace gg
}  // namespace moejit
