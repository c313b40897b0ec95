// Grouped GEMM, Hopper path (sm_90a): persistent, warp-specialised CTAs. Warpgroup 0 is the
// producer: one thread walks the same tile list as the consumers and issues TMA loads into a
// STAGES-deep ring of 128B-swizzled shared tiles, each stage guarded by a "full" mbarrier
// (transaction bytes) and an "empty" mbarrier (one arrival per consumer warp). Warpgroups
// 1..CONSUMERS each own 64 rows of the tile and run wgmma.mma_async (m64 x BN x k16) straight
// from shared memory, then store from registers through the shared epilogues. setmaxnreg moves
// registers from the producer to the consumers. OP picks layouts exactly as on the sm80 path.
#pragma once
#include "grouped_gemm/grouped_gemm_epilogue.cuh"
#include "grouped_gemm/grouped_gemm_ptx.cuh"
#include "moejit/abi/tma_descriptor.h"  // TmaDescriptor: the tensor maps, passed by value

namespace moejit {
namespace gg {

template <int OP, int BN, int STAGES, int CONSUMERS>
struct Sm90Layout {
  static constexpr int kBK = 64;  // one 128-byte swizzle span of bf16
  static constexpr int kBM = 64 * CONSUMERS;
  static constexpr int kThreads = 128 * (CONSUMERS + 1);
  static_assert(CONSUMERS == 1 || CONSUMERS == 2, "one or two consumer warpgroups");
  static constexpr int kABytes = stage_bytes_a(kBM, kBK), kBBytes = stage_bytes_b(BN, kBK);
  static constexpr int kBarrierBytes = 2 * STAGES * 8;
  // + 1024: the dynamic shared base is re-aligned to the 1024-byte swizzle atom.
  static constexpr int kSharedBytes = STAGES * (kABytes + kBBytes) + kBarrierBytes + 1024;
  static_assert(BN == 64 || BN == 128 || BN == 256, "wgmma N must be 64, 128 or 256 here");
  static_assert(OP != kUpSwiglu || BN >= 128, "up_swiglu needs whole 64-column TMA boxes per half");
};

// Register split after setmaxnreg: 128 * (producer + CONSUMERS * consumer) <= 64K registers.
// The producer keeps enough for the tile walk and TMA coordinates without spilling.
inline constexpr int kProducerRegs = 56;
template <int CONSUMERS>
inline constexpr int kConsumerRegsFor = CONSUMERS == 1 ? 240 : 224;

template <int OP, typename OutT, int BN, int STAGES, int CONSUMERS>
__global__ void __launch_bounds__(128 * (CONSUMERS + 1), 1)
    grouped_gemm_sm90_kernel(const __grid_constant__ TmaDescriptor tma_a, const __grid_constant__ TmaDescriptor tma_b,
                             Params p) {
  using L = Sm90Layout<OP, BN, STAGES, CONSUMERS>;
  constexpr int kConsumerRegs = kConsumerRegsFor<CONSUMERS>;
  constexpr int BM = L::kBM, BK = L::kBK;
  extern __shared__ __align__(1024) unsigned char smem_sm90[];
  const uint32 raw = ptx::smem_addr(smem_sm90);
  const uint32 base = (raw + 1023) & ~1023u;
  const uint32 smem_a = base, smem_b = base + STAGES * L::kABytes;
  const uint32 full_bar = smem_b + STAGES * L::kBBytes, empty_bar = full_bar + STAGES * 8;

  const int warpgroup = threadIdx.x / 128;
  if (threadIdx.x == 0) {
    for (int s = 0; s < STAGES; ++s) {
      ptx::mbarrier_init(full_bar + 8 * s, 1);
      ptx::mbarrier_init(empty_bar + 8 * s, 4 * CONSUMERS);
    }
    ptx::fence_barrier_init();
  }
  __syncthreads();

  const Tiling tiling = make_tiling(OP, p.dims, BM, BN, p.raster);
  TileCursor cursor;
  TileCoord tile;
  int stage = 0;
  uint32 phase = 0;
  auto advance = [&] {
    if (++stage == STAGES) stage = 0, phase ^= 1;
  };

  if (warpgroup == 0) {
    ptx::setmaxnreg_dec<kProducerRegs>();
    if (threadIdx.x == 0) {
      ptx::prefetch_tensor_map(&tma_a);
      ptx::prefetch_tensor_map(&tma_b);
      for (int64 t = blockIdx.x; locate_tile(p.offsets, p.dims, tiling, cursor, t, tile); t += gridDim.x) {
        const int64 kbs = k_blocks(tile, BK);
        for (int64 kb = 0; kb < kbs; ++kb, advance()) {
          ptx::mbarrier_wait(empty_bar + 8 * stage, phase ^ 1);
          const uint32 full = full_bar + 8 * stage;
          ptx::mbarrier_arrive_expect_tx(full, L::kABytes + L::kBBytes);
          const uint32 a = smem_a + stage * L::kABytes, b = smem_b + stage * L::kBBytes;
          constexpr int a_box_bytes = L::kABytes / tma_a_boxes(OP, BM), b_box_bytes = L::kBBytes / tma_b_boxes(OP, BN);
#pragma unroll
          for (int j = 0; j < tma_a_boxes(OP, BM); ++j) {
            const TmaCoord c = tma_a_coord(OP, tile, BK, kb, j);
            ptx::tma_load_2d(a + j * a_box_bytes, &tma_a, full, c.c0, c.c1);
          }
#pragma unroll
          for (int j = 0; j < tma_b_boxes(OP, BN); ++j) {
            const TmaCoord c = tma_b_coord(OP, p.dims, tile, BN, BK, kb, j);
            if (OP == kWgrad)
              ptx::tma_load_2d(b + j * b_box_bytes, &tma_b, full, c.c0, c.c1);
            else
              ptx::tma_load_3d(b + j * b_box_bytes, &tma_b, full, c.c0, c.c1, c.c2);
          }
        }
      }
    }
  } else {
    ptx::setmaxnreg_inc<kConsumerRegs>();
    const int consumer = warpgroup - 1, lane = threadIdx.x % 32, warp = (threadIdx.x / 32) % 4;
    const int ctid = threadIdx.x - 128 * warpgroup;
    float acc[BN / 2];
    for (int64 t = blockIdx.x; locate_tile(p.offsets, p.dims, tiling, cursor, t, tile); t += gridDim.x) {
      const int64 kbs = k_blocks(tile, BK);
#pragma unroll
      for (int i = 0; i < BN / 2; ++i) acc[i] = 0.0f;
      for (int64 kb = 0; kb < kbs; ++kb, advance()) {
        ptx::mbarrier_wait(full_bar + 8 * stage, phase);
        const uint32 a = smem_a + stage * L::kABytes, b = smem_b + stage * L::kBBytes;
        if (OP == kWgrad) {
          // The last block of a segment reads the next expert's tokens: zero those B rows so they
          // add nothing (rows past M_total already arrive as zeros from TMA).
          const int valid = static_cast<int>(min64(BK, tile.red_len - kb * BK));
          if (valid < BK) {
            const int row_chunks = 8, per_box = (BK - valid) * row_chunks;
            for (int q = ctid; q < per_box * (BN / 64); q += 128) {
              const int box = q / per_box, rem = q % per_box;
              const uint32 addr = b + box * (BK * 128) + (valid + rem / row_chunks) * 128 + (rem % row_chunks) * 16;
              asm volatile("st.shared.v4.u32 [%0], {%1, %1, %1, %1};\n" ::"r"(addr), "r"(0) : "memory");
            }
            ptx::fence_proxy_async();
            ptx::named_barrier(1 + consumer, 128);
          }
        }
        ptx::wgmma_fence();
#pragma unroll
        for (int kk = 0; kk < BK / 16; ++kk) {
          const WgmmaOperand oa = wgmma_a_operand(OP, consumer, kk, BK), ob = wgmma_b_operand(OP, kk, BK);
          const ptx::uint64 da = ptx::wgmma_desc_sw128(a + oa.offset, oa.lbo, oa.sbo);
          const ptx::uint64 db = ptx::wgmma_desc_sw128(b + ob.offset, ob.lbo, ob.sbo);
          ptx::Wgmma<BN>::template run<a_k_major(OP) ? 0 : 1, b_k_major(OP) ? 0 : 1>(acc, da, db, 1);
        }
        ptx::wgmma_commit();
        // Waiting for this block before releasing its stage keeps ptxas from serialising the
        // wgmma pipeline (wait_group 1 here triggers C7514 with this accumulator handling); the
        // two consumer warpgroups still overlap each other's waits. Deeper overlap: perf issue.
        ptx::wgmma_wait<0>();
        if (lane == 0) ptx::mbarrier_arrive(empty_bar + 8 * stage);
      }

      // Epilogue straight from the accumulator registers (layout: see ptx::wgmma_m64n*k16).
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int r = consumer * 64 + warp * 16 + lane / 4 + h * 8;
        if (OP == kUpSwiglu) {
#pragma unroll
          for (int i = 0; i < BN / 16; ++i) {
            const int col = 8 * i + 2 * (lane % 4), up = 4 * (i + BN / 16);
            store_pair_swiglu<OutT>(p, tile, r, col, acc[4 * i + 2 * h], acc[4 * i + 2 * h + 1], acc[up + 2 * h],
                                    acc[up + 2 * h + 1]);
          }
        } else {
#pragma unroll
          for (int i = 0; i < BN / 8; ++i)
            store_pair<OP, OutT>(p, tile, r, 8 * i + 2 * (lane % 4), acc[4 * i + 2 * h], acc[4 * i + 2 * h + 1]);
        }
      }
    }
  }
}

}  // namespace gg
}  // namespace moejit
