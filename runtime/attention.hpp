// Multi-head causal self-attention with ALiBi (no position embeddings): score(t, s) = q_t.k_s / sqrt(hd)
// - m_h (t - s) for s <= t, slope m_h = 2^(-8 (h+1) / H) (the ALiBi paper's geometric sequence); or
// without ALiBi after RoPE has rotated q and k (rope_rotate).
// Forward and hand-written backward on the fused qkv buffer; the projections are matmuls (ops.hpp).
#pragma once
#include <cmath>
#include <vector>

#include "ops.hpp"
#include "step/step_elementwise.h"  // rope_pair: the per-pair code the cuda backend runs

namespace moejit::runtime {

inline double alibi_slope(int head, int n_heads) {
  return std::pow(2.0, -8.0 * (head + 1) / n_heads);
}

// qkv (B, T, 3C) = [q | k | v], head h uses columns [h*hd, (h+1)*hd) of each; out (B, T, C);
// att (B, H, T, T) the softmax weights (upper triangle unused), saved for the backward.
template <typename T>
void attention_forward(ThreadPool& par, T* out, T* att, const T* qkv, i64 B, i64 Tn, i64 C, i64 H, bool alibi) {
  const i64 hd = C / H;
  const T scale = T(1) / std::sqrt(T(hd));
  par.for_range(B * H, 1, [&](i64 first, i64 last) {
    for (i64 bh = first; bh < last; ++bh) {
      i64 b = bh / H, h = bh % H;
      T slope = alibi ? T(alibi_slope(int(h), int(H))) : T(0);
      for (i64 t = 0; t < Tn; ++t) {
        const T* q = qkv + (b * Tn + t) * 3 * C + h * hd;
        T* a = att + ((b * H + h) * Tn + t) * Tn;
        T mx = -INFINITY;
        for (i64 s = 0; s <= t; ++s) {
          const T* k = qkv + (b * Tn + s) * 3 * C + C + h * hd;
          a[s] = dot(q, k, hd) * scale - slope * T(t - s);
          mx = std::max(mx, a[s]);
        }
        T sum = 0;
        for (i64 s = 0; s <= t; ++s) sum += (a[s] = std::exp(a[s] - mx));
        for (i64 s = 0; s <= t; ++s) a[s] /= sum;
        T* o = out + (b * Tn + t) * C + h * hd;
        for (i64 j = 0; j < hd; ++j) o[j] = 0;
        for (i64 s = 0; s <= t; ++s) axpy(o, a[s], qkv + (b * Tn + s) * 3 * C + 2 * C + h * hd, hd);
      }
    }
  });
}

// dqkv (B, T, 3C) += gradient from dout (B, T, C). Each (b, h) owns its own columns: no races.
template <typename T>
void attention_backward(ThreadPool& par, T* dqkv, const T* dout, const T* qkv, const T* att, i64 B, i64 Tn, i64 C,
                        i64 H) {
  const i64 hd = C / H;
  const T scale = T(1) / std::sqrt(T(hd));
  par.for_range(B * H, 1, [&](i64 first, i64 last) {
    std::vector<T> datt(Tn);
    for (i64 bh = first; bh < last; ++bh) {
      i64 b = bh / H, h = bh % H;
      for (i64 t = 0; t < Tn; ++t) {
        const T* a = att + ((b * H + h) * Tn + t) * Tn;
        const T* g = dout + (b * Tn + t) * C + h * hd;
        const T* q = qkv + (b * Tn + t) * 3 * C + h * hd;
        T* dq = dqkv + (b * Tn + t) * 3 * C + h * hd;
        T weighted = 0;  // sum_s a_s datt_s
        for (i64 s = 0; s <= t; ++s) {
          i64 row = (b * Tn + s) * 3 * C;
          datt[s] = dot(g, qkv + row + 2 * C + h * hd, hd);
          axpy(dqkv + row + 2 * C + h * hd, a[s], g, hd);  // dv_s += a_s g
          weighted += a[s] * datt[s];
        }
        for (i64 s = 0; s <= t; ++s) {
          i64 row = (b * Tn + s) * 3 * C;
          T dscore = a[s] * (datt[s] - weighted) * scale;  // softmax backward, then the 1/sqrt(hd)
          axpy(dq, dscore, qkv + row + C + h * hd, hd);
          axpy(dqkv + row + C + h * hd, dscore, q, hd);
        }
      }
    }
  });
}

// RoPE (rotate-half pairing) on q and k of every row, in place: the pair code the cuda backend runs
// (step/step_elementwise.h), over rows in parallel.
template <typename T>
void rope_rotate(ThreadPool& par, T* qkv, i64 B, i64 Tn, i64 C, i64 H, bool inverse) {
  const i64 pairs_per_row = 2 * H * (C / H / 2);
  par.for_range(B * Tn, 16, [&](i64 first, i64 last) {
    for (i64 p = first * pairs_per_row; p < last * pairs_per_row; ++p) rope_pair(qkv, p, Tn, C, H, inverse);
  });
}

}  // namespace moejit::runtime
