// The GPU backend's dense products as row-major strided-batched GEMMs (jit/lt_matmul.hpp's
// RowMajorGemm, run by cuBLASLt), and the order attention runs them in around the causal ALiBi row
// softmax. Written once as templates over an executor, so the CPU tests run exactly this sequencing
// with a plain-loop GEMM and the host softmax rows against the double reference (attention.hpp),
// and the GPU backend (cuda_dense_products.hpp) with cuBLASLt and the NVRTC softmax.
//
// An Exec provides
//   gemm(const RowMajorGemm&, const T* a, const T* b, T* c)
//   softmax_fwd(T* att, i64 rows, i64 S, i64 H, float scale, bool alibi)  in place, (B, H, S, S) rows
//   softmax_bwd(const T* att, T* d_att, i64 rows, i64 S, float scale)  in place on d_att
//
// Attention needs no head split: head h of a sequence is columns [h hd, (h+1) hd) of q, k, v (row
// stride 3C) and out (row stride C), so a sequence's H heads are one batch of H products at a
// stride of hd elements; the B sequences are B such calls.
#pragma once
#include <cmath>
#include <cstdint>

#include "lt_matmul.hpp"

namespace moejit::runtime {

// out (N, OC) = in (N, C) . w^T, w (OC, C).
inline RowMajorGemm matmul_fwd_gemm(int64_t N, int64_t C, int64_t OC) {
  RowMajorGemm g;
  g.m = N, g.n = OC, g.k = C, g.b_transposed = true;
  return g;
}
// d_in (N, C) = (or += when accumulate) d_out (N, OC) . w (OC, C).
inline RowMajorGemm matmul_dgrad_gemm(int64_t N, int64_t C, int64_t OC, bool accumulate) {
  RowMajorGemm g;
  g.m = N, g.n = C, g.k = OC, g.beta = accumulate ? 1.0f : 0.0f;
  return g;
}
// d_w (OC, C) += d_out^T (OC, N) . in (N, C).
inline RowMajorGemm matmul_wgrad_gemm(int64_t N, int64_t C, int64_t OC) {
  RowMajorGemm g;
  g.m = OC, g.n = C, g.k = N, g.a_transposed = true, g.beta = 1.0f;
  return g;
}

// One sequence's H heads of hd = C / H columns: operands at a stride of hd (q, k, v rows 3C apart,
// out and d_out C apart), (S, S) score blocks at a stride of S*S.
struct AttentionGemms {
  RowMajorGemm scores;  // att (S, S) = q . k^T
  RowMajorGemm values;  // out (S, hd) = att . v
  RowMajorGemm d_att;   // d_att (S, S) = d_out . v^T
  RowMajorGemm d_q;     // d_q (S, hd) = d_scores . k
  RowMajorGemm d_k;     // d_k (S, hd) = d_scores^T . q
  RowMajorGemm d_v;     // d_v (S, hd) = att^T . d_out
};

inline AttentionGemms attention_gemms(int64_t S, int64_t C, int64_t H) {
  const int64_t hd = C / H, qkv = 3 * C;
  auto batched = [&](int64_t n, int64_t k, bool at, bool bt, int64_t lda, int64_t ldb, int64_t ldc, int64_t sa,
                     int64_t sb, int64_t sc) {
    RowMajorGemm g;
    g.m = S, g.n = n, g.k = k, g.a_transposed = at, g.b_transposed = bt;
    g.lda = lda, g.ldb = ldb, g.ldc = ldc, g.batch = H, g.stride_a = sa, g.stride_b = sb, g.stride_c = sc;
    return g;
  };
  AttentionGemms a;
  a.scores = batched(S, hd, false, true, qkv, qkv, S, hd, hd, S * S);
  a.values = batched(hd, S, false, false, S, qkv, C, S * S, hd, hd);
  a.d_att = batched(S, hd, false, true, C, qkv, S, hd, hd, S * S);
  a.d_q = batched(hd, S, false, false, S, qkv, qkv, S * S, hd, hd);
  a.d_k = batched(hd, S, true, false, S, qkv, qkv, S * S, hd, hd);
  a.d_v = batched(hd, S, true, false, S, C, qkv, S * S, hd, hd);
  return a;
}

template <typename T, class Exec>
void matmul_forward_products(Exec& e, T* out, const T* in, const T* w, int64_t N, int64_t C, int64_t OC) {
  e.gemm(matmul_fwd_gemm(N, C, OC), in, w, out);
}

// Either output may be null.
template <typename T, class Exec>
void matmul_backward_products(Exec& e, T* d_in, bool accumulate, T* d_w, const T* d_out, const T* in, const T* w,
                              int64_t N, int64_t C, int64_t OC) {
  if (d_in) e.gemm(matmul_dgrad_gemm(N, C, OC, accumulate), d_out, w, d_in);
  if (d_w) e.gemm(matmul_wgrad_gemm(N, C, OC), d_out, in, d_w);
}

// As StepBackend::attention_fwd: out (B, S, C), att (B, H, S, S) from qkv (B, S, 3C); without ALiBi
// the scores carry no position bias (q and k were rotated by RoPE).
template <typename T, class Exec>
void attention_forward_products(Exec& e, T* out, T* att, const T* qkv, int64_t B, int64_t S, int64_t C, int64_t H,
                                bool alibi) {
  const AttentionGemms g = attention_gemms(S, C, H);
  for (int64_t b = 0; b < B; ++b) e.gemm(g.scores, qkv + b * S * 3 * C, qkv + b * S * 3 * C + C, att + b * H * S * S);
  e.softmax_fwd(att, B * H * S, S, H, float(1.0 / std::sqrt(double(C / H))), alibi);
  for (int64_t b = 0; b < B; ++b) e.gemm(g.values, att + b * H * S * S, qkv + b * S * 3 * C + 2 * C, out + b * S * C);
}

// As StepBackend::attention_bwd: d_qkv (B, S, 3C) overwritten; d_att (B, H, S, S) is scratch.
template <typename T, class Exec>
void attention_backward_products(Exec& e, T* d_qkv, T* d_att, const T* d_out, const T* qkv, const T* att, int64_t B,
                                 int64_t S, int64_t C, int64_t H) {
  const AttentionGemms g = attention_gemms(S, C, H);
  const int64_t block = H * S * S, row = S * 3 * C;
  for (int64_t b = 0; b < B; ++b) e.gemm(g.d_att, d_out + b * S * C, qkv + b * row + 2 * C, d_att + b * block);
  e.softmax_bwd(att, d_att, B * H * S, S, float(1.0 / std::sqrt(double(C / H))));
  for (int64_t b = 0; b < B; ++b) {
    e.gemm(g.d_q, d_att + b * block, qkv + b * row + C, d_qkv + b * row);
    e.gemm(g.d_k, d_att + b * block, qkv + b * row, d_qkv + b * row + C);
    e.gemm(g.d_v, att + b * block, d_out + b * S * C, d_qkv + b * row + 2 * C);
  }
}

}  // namespace moejit::runtime
