// Grouped GEMM, mma.sync path (sm_80 and every later arch, sm_90a included): persistent CTAs walk
// the flattened tile list; each tile runs a STAGES-deep cp.async pipeline into XOR-swizzled shared
// memory, ldmatrix (.trans for M-/N-major operands) and m16n8k16 bf16 MMAs with fp32 accumulation.
// One mainloop serves fwd, up_swiglu, dgrad and wgrad: OP picks the operand layouts (see
// grouped_gemm_schedule.h) and the epilogue.
#pragma once
#include "grouped_gemm/grouped_gemm_epilogue.cuh"
#include "grouped_gemm/grouped_gemm_ptx.cuh"

namespace moejit {
namespace gg {

template <int OP, int BM, int BN, int BK, int WARPS_M, int WARPS_N, int STAGES>
struct Sm80Layout {
  static constexpr int kThreads = WARPS_M * WARPS_N * 32;
  static constexpr int kWarpM = BM / WARPS_M, kWarpN = BN / WARPS_N;
  static constexpr int kMi = kWarpM / 16, kNi = kWarpN / 8;
  // Shared tiles, [rows][cols] with cols contiguous.
  static constexpr int kARows = a_k_major(OP) ? BM : BK, kACols = a_k_major(OP) ? BK : BM;
  static constexpr int kBRows = b_k_major(OP) ? BN : BK, kBCols = b_k_major(OP) ? BK : BN;
  static constexpr int kAElems = BM * BK, kBElems = BN * BK;
  static constexpr int kSharedBytes = STAGES * (kAElems + kBElems) * 2;
  static_assert(kWarpM % 16 == 0 && kWarpN % 16 == 0, "warp tile must be a multiple of 16 x 16");
  static_assert(OP != kUpSwiglu || kWarpN % 32 == 0, "up_swiglu: each warp needs >= 2 gate and 2 up n8 pairs");
  static_assert(BK % 16 == 0, "BK must be a multiple of 16");
};

// The shared-memory column of n8 block `ni` of warp `wn`. up_swiglu gives each warp matching gate
// and up column ranges so that one thread holds g and u of the same output column.
template <int OP, int BN, int WARP_N>
__device__ __forceinline__ int warp_col(int wn, int ni) {
  if (OP != kUpSwiglu) return wn * WARP_N + ni * 8;
  constexpr int half = WARP_N / 16;  // n8 blocks per half
  return ni < half ? wn * (WARP_N / 2) + ni * 8 : BN / 2 + wn * (WARP_N / 2) + (ni - half) * 8;
}

// Copies one [ROWS][COLS] operand tile into swizzled shared memory, 16 bytes per cp.async.
template <int ROWS, int COLS, int THREADS>
__device__ __forceinline__ void load_tile(bf16* smem, const OperandTile& t) {
  constexpr int chunks_per_row = COLS / 8, chunks = ROWS * chunks_per_row;
  static_assert(chunks % THREADS == 0, "tile chunks must divide evenly among threads");
#pragma unroll
  for (int i = 0; i < chunks / THREADS; ++i) {
    const int q = threadIdx.x + i * THREADS, r = q / chunks_per_row, c = (q % chunks_per_row) * 8;
    const bf16* src = t.at(r, c);
    ptx::cp_async_16(ptx::smem_addr(smem + swizzled_elem(r, c, COLS)), src ? src : t.base, src ? 16 : 0);
  }
}

template <int OP, typename OutT, int BM, int BN, int BK, int WARPS_M, int WARPS_N, int STAGES>
__global__ void __launch_bounds__(WARPS_M* WARPS_N * 32) grouped_gemm_sm80_kernel(Params p) {
  using L = Sm80Layout<OP, BM, BN, BK, WARPS_M, WARPS_N, STAGES>;
  extern __shared__ __align__(128) unsigned char smem_raw[];
  bf16* smem_a = reinterpret_cast<bf16*>(smem_raw);
  bf16* smem_b = smem_a + STAGES * L::kAElems;

  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int wm = warp % WARPS_M, wn = warp / WARPS_M;
  const Tiling tiling = make_tiling(OP, p.dims, BM, BN, p.raster);
  TileCursor cursor;
  TileCoord tile;

  for (int64 t = blockIdx.x; locate_tile(p.offsets, p.dims, tiling, cursor, t, tile); t += gridDim.x) {
    const int64 kbs = k_blocks(tile, BK);
    auto load_stage = [&](int64 kb) {
      const int s = static_cast<int>(kb % STAGES);
      load_tile<L::kARows, L::kACols, L::kThreads>(smem_a + s * L::kAElems, a_tile(OP, p.dims, p.in, tile, BM, BK, kb));
      load_tile<L::kBRows, L::kBCols, L::kThreads>(smem_b + s * L::kBElems, b_tile(OP, p.dims, p.in, tile, BN, BK, kb));
    };

    float acc[L::kMi][L::kNi][4];
#pragma unroll
    for (int i = 0; i < L::kMi; ++i)
#pragma unroll
      for (int j = 0; j < L::kNi; ++j)
#pragma unroll
        for (int v = 0; v < 4; ++v) acc[i][j][v] = 0.0f;

#pragma unroll
    for (int s = 0; s < STAGES - 1; ++s) {
      if (s < kbs) load_stage(s);
      ptx::cp_async_commit();
    }
    for (int64 kb = 0; kb < kbs; ++kb) {
      ptx::cp_async_wait<STAGES - 2>();
      __syncthreads();  // stage kb landed for everyone; stage kb - 1 is free for the next prefetch
      if (kb + STAGES - 1 < kbs) load_stage(kb + STAGES - 1);
      ptx::cp_async_commit();

      const int s = static_cast<int>(kb % STAGES);
      const bf16* a = smem_a + s * L::kAElems;
      const bf16* b = smem_b + s * L::kBElems;
#pragma unroll
      for (int kk = 0; kk < BK; kk += 16) {
        uint32 af[L::kMi][4], bfr[L::kNi][2];
#pragma unroll
        for (int i = 0; i < L::kMi; ++i) {
          const int m = wm * L::kWarpM + i * 16;
          if (a_k_major(OP)) {  // [m][k]: lanes 0-15 rows m.., lanes 16-31 the k + 8 half
            const int r = m + lane % 16, c = kk + (lane / 16) * 8;
            ptx::ldmatrix_x4(af[i], ptx::smem_addr(a + swizzled_elem(r, c, L::kACols)));
          } else {  // [k][m], transposed on load
            const int r = kk + (lane % 8) + (lane / 16) * 8, c = m + ((lane / 8) % 2) * 8;
            ptx::ldmatrix_x4_trans(af[i], ptx::smem_addr(a + swizzled_elem(r, c, L::kACols)));
          }
        }
#pragma unroll
        for (int j = 0; j < L::kNi; j += 2) {  // two n8 blocks per ldmatrix.x4
          const int n = warp_col<OP, BN, L::kWarpN>(wn, j);
          uint32 r4[4];
          if (b_k_major(OP)) {  // [n][k]
            const int r = n + (lane % 8) + (lane / 16) * 8, c = kk + ((lane / 8) % 2) * 8;
            ptx::ldmatrix_x4(r4, ptx::smem_addr(b + swizzled_elem(r, c, L::kBCols)));
          } else {  // [k][n], transposed on load
            const int r = kk + (lane % 8) + ((lane / 8) % 2) * 8, c = n + (lane / 16) * 8;
            ptx::ldmatrix_x4_trans(r4, ptx::smem_addr(b + swizzled_elem(r, c, L::kBCols)));
          }
          bfr[j][0] = r4[0], bfr[j][1] = r4[1], bfr[j + 1][0] = r4[2], bfr[j + 1][1] = r4[3];
        }
#pragma unroll
        for (int i = 0; i < L::kMi; ++i)
#pragma unroll
          for (int j = 0; j < L::kNi; ++j) ptx::mma_bf16_16816(acc[i][j], af[i], bfr[j][0], bfr[j][1]);
      }
    }
    ptx::cp_async_wait<0>();
    __syncthreads();  // the next tile's prologue overwrites every stage

#pragma unroll
    for (int i = 0; i < L::kMi; ++i)
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int r = wm * L::kWarpM + i * 16 + lane / 4 + h * 8;
        if (OP == kUpSwiglu) {
#pragma unroll
          for (int j = 0; j < L::kNi / 2; ++j) {
            const int col = warp_col<OP, BN, L::kWarpN>(wn, j) + 2 * (lane % 4);
            const float* g = acc[i][j];
            const float* u = acc[i][j + L::kNi / 2];
            store_pair_swiglu<OutT>(p, tile, r, col, g[2 * h], g[2 * h + 1], u[2 * h], u[2 * h + 1]);
          }
        } else {
#pragma unroll
          for (int j = 0; j < L::kNi; ++j) {
            const int col = warp_col<OP, BN, L::kWarpN>(wn, j) + 2 * (lane % 4);
            store_pair<OP, OutT>(p, tile, r, col, acc[i][j][2 * h], acc[i][j][2 * h + 1]);
          }
        }
      }
  }
}

}  // namespace gg
}  // namespace moejit
