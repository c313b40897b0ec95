// Host GEMM building blocks, BLIS-style: a register micro-tile (MR x NR floats held in vector
// registers) and the packing that lays panels out for it. Compile-time: vector width VW (the ISA:
// 8 for AVX2, 16 for AVX-512), MR, NR, packing. Runtime: the cache blocks kc, mc, nc.
// Clang's ext_vector_type keeps this free of intrinsics; -ffp-contract=fast turns a * b + c into FMA.
#pragma once
#include "common/host_device.h"

namespace moejit::host {

template <int VW>
using vfloat = float __attribute__((ext_vector_type(VW)));

template <int VW>
inline vfloat<VW> load_v(const float* p) {
  vfloat<VW> v;
  __builtin_memcpy(&v, p, sizeof v);
  return v;
}

template <int VW>
inline void store_v(float* p, vfloat<VW> v) {
  __builtin_memcpy(p, &v, sizeof v);
}

// A strided matrix: element (r, c) at data[r * rs + c * cs].
struct View {
  const float* data;
  int64 rs, cs;
  const float* ptr(int64 r, int64 c) const { return data + r * rs + c * cs; }
};

// Packed A: slivers of MR rows, each (kb, MR) column-major, zero rows past `m`. Where A's columns
// are contiguous (wgrad's X^T) a full sliver's step p is one MR-float copy: element by element,
// the pack took a tenth of a wide wgrad's time.
template <int MR>
inline void pack_a(const View& a, int64 row0, int64 col0, int64 m, int64 kb, float* dst) {
  for (int64 s = 0; s < m; s += MR, dst += MR * kb) {
    const int64 rows = m - s < MR ? m - s : MR;
    if (a.rs == 1 && rows == MR) {
      for (int64 p = 0; p < kb; ++p) __builtin_memcpy(dst + p * MR, a.ptr(row0 + s, col0 + p), sizeof(float) * MR);
      continue;
    }
    for (int64 p = 0; p < kb; ++p) {
      float* out = dst + p * MR;
      for (int64 i = 0; i < rows; ++i) out[i] = *a.ptr(row0 + s + i, col0 + p);
      for (int64 i = rows; i < MR; ++i) out[i] = 0.0f;
    }
  }
}

// The eight vectors as the columns of the 8 x 8 block whose rows they were, in 24 shuffles.
inline void transpose8(vfloat<8> (&r)[8]) {
  vfloat<8> t[8], u[8];
  for (int i = 0; i < 8; i += 2) {
    t[i] = __builtin_shufflevector(r[i], r[i + 1], 0, 8, 1, 9, 4, 12, 5, 13);
    t[i + 1] = __builtin_shufflevector(r[i], r[i + 1], 2, 10, 3, 11, 6, 14, 7, 15);
  }
  for (int i = 0; i < 8; i += 4)
    for (int h = 0; h < 2; ++h) {
      u[i + h * 2] = __builtin_shufflevector(t[i + h], t[i + h + 2], 0, 1, 8, 9, 4, 5, 12, 13);
      u[i + h * 2 + 1] = __builtin_shufflevector(t[i + h], t[i + h + 2], 2, 3, 10, 11, 6, 7, 14, 15);
    }
  for (int i = 0; i < 4; ++i) {
    r[i] = __builtin_shufflevector(u[i], u[i + 4], 0, 1, 2, 3, 8, 9, 10, 11);
    r[i + 4] = __builtin_shufflevector(u[i], u[i + 4], 4, 5, 6, 7, 12, 13, 14, 15);
  }
}

// One (kb, NR) sliver of B = W^T, whose columns c0 .. c0 + cols are W's contiguous rows (zero
// columns past `cols`). Full slivers go in 8 x 8 blocks transposed in registers: written one
// float at a time, 48 stores to 48 lines per 8 rows of B, the pack took a sixth of a dgrad's time.
template <int NR>
inline void pack_transposed(const View& b, int64 row0, int64 c0, int64 kb, int64 cols, float* dst) {
  static_assert(NR % 8 == 0, "slivers are whole 8-column blocks");
  int64 p = 0;
  if (cols == NR)
    for (; p + 8 <= kb; p += 8)
      for (int64 j = 0; j < NR; j += 8) {
        vfloat<8> r[8];
        for (int i = 0; i < 8; ++i) r[i] = load_v<8>(b.ptr(row0 + p, c0 + j + i));
        transpose8(r);
        for (int i = 0; i < 8; ++i) store_v<8>(dst + (p + i) * NR + j, r[i]);
      }
  for (int64 j = 0; j < NR; ++j) {
    const float* in = b.ptr(row0, c0 + j);
    for (int64 q = p; q < kb; ++q) dst[q * NR + j] = j < cols ? in[q] : 0.0f;
  }
}

// Packed B: slivers of NR columns, each (kb, NR) row-major, zero columns past `n`.
template <int NR>
inline void pack_b(const View& b, int64 row0, int64 col0, int64 kb, int64 n, float* dst) {
  for (int64 s = 0; s < n; s += NR, dst += NR * kb) {
    const int64 cols = n - s < NR ? n - s : NR;
    if (b.rs == 1 && b.cs != 1) {  // B is a transposed matrix (dgrad's W_e^T): walk its contiguous rows
      pack_transposed<NR>(b, row0, col0 + s, kb, cols, dst);
      continue;
    }
    for (int64 p = 0; p < kb; ++p) {
      float* out = dst + p * NR;
      const float* in = b.ptr(row0 + p, col0 + s);
      if (b.cs == 1 && cols == NR) {
        for (int64 j = 0; j < NR; ++j) out[j] = in[j];
      } else {
        for (int64 j = 0; j < cols; ++j) out[j] = in[j * b.cs];
        for (int64 j = cols; j < NR; ++j) out[j] = 0.0f;
      }
    }
  }
}

// C (m x n corner of an MR x NR tile, row stride ldc) = or += A (MR, kb) * B (kb, NR).
// A element (i, p) at a[i * ars + p * acs] (packed: ars 1, acs MR, known at compile time);
// B row p is NR contiguous floats at b + p * brs. stream: a full tile whose rows are vector-aligned
// is written with non-temporal stores, which skip reading C's lines before writing them (for an
// output that nothing reads soon and that no cache holds; the caller fences).
template <int MR, int NR, int VW, bool A_PACKED>
__attribute__((always_inline)) inline void micro_tile(int64 kb, const float* a, int64 ars, int64 acs, const float* b,
                                                      int64 brs, float* c, int64 ldc, int64 m, int64 n, bool accumulate,
                                                      bool stream = false) {
  static_assert(NR % VW == 0, "NR must be a multiple of the vector width");
  constexpr int NV = NR / VW;
  if (A_PACKED) {
    ars = 1;
    acs = MR;
  }
  vfloat<VW> acc[MR][NV];
#pragma unroll
  for (int i = 0; i < MR; ++i)
#pragma unroll
    for (int j = 0; j < NV; ++j) acc[i][j] = 0.0f;
#pragma clang loop unroll_count(2)
  for (int64 p = 0; p < kb; ++p) {
    vfloat<VW> bv[NV];
#pragma unroll
    for (int j = 0; j < NV; ++j) bv[j] = load_v<VW>(b + p * brs + j * VW);
#pragma unroll
    for (int i = 0; i < MR; ++i) {
      const vfloat<VW> av = a[i * ars + p * acs];
#pragma unroll
      for (int j = 0; j < NV; ++j) acc[i][j] += av * bv[j];
    }
  }
  if (m == MR && n == NR) {
    const bool nt =
        stream && (reinterpret_cast<unsigned long long>(c) | (ldc * sizeof(float))) % sizeof(vfloat<VW>) == 0;
#pragma unroll
    for (int i = 0; i < MR; ++i)
#pragma unroll
      for (int j = 0; j < NV; ++j) {
        float* out = c + i * ldc + j * VW;
        const vfloat<VW> v = accumulate ? load_v<VW>(out) + acc[i][j] : acc[i][j];
        if (nt)
          __builtin_nontemporal_store(v, reinterpret_cast<vfloat<VW>*>(out));
        else
          store_v<VW>(out, v);
      }
    return;
  }
  alignas(64) float tile[MR * NR];
#pragma unroll
  for (int i = 0; i < MR; ++i)
#pragma unroll
    for (int j = 0; j < NV; ++j) store_v<VW>(tile + i * NR + j * VW, acc[i][j]);
  for (int64 i = 0; i < m; ++i)
    for (int64 j = 0; j < n; ++j) c[i * ldc + j] = (accumulate ? c[i * ldc + j] : 0.0f) + tile[i * NR + j];
}

}  // namespace moejit::host
