// Dense layers of the decoder, forward and hand-written backward, llm.c style: plain loops over
// row-major buffers, shapes in comments. Templated on the scalar so that the gradient checks run the
// same code in double. Backward functions ACCUMULATE into parameter and input gradients (+=).
#pragma once
#include <cmath>
#include <cstdint>

#include "swiglu/swiglu.h"
#include "thread_pool.hpp"

namespace moejit::runtime {

using i64 = int64_t;

// Eight independent partial sums in a fixed order: vectorisable without -ffast-math, deterministic.
template <typename T>
inline T dot(const T* a, const T* b, i64 n) {
  T acc[8] = {};
  i64 i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; ++k) acc[k] += a[i + k] * b[i + k];
  T tail = 0;
  for (; i < n; ++i) tail += a[i] * b[i];
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7])) + tail;
}

template <typename T>
inline void axpy(T* y, T a, const T* x, i64 n) {
  for (i64 i = 0; i < n; ++i) y[i] += a * x[i];
}

// out (N, OC) = inp (N, C) @ w^T, w (OC, C).
template <typename T>
void matmul_forward(ThreadPool& par, T* out, const T* inp, const T* w, i64 N, i64 C, i64 OC) {
  par.for_range(N, 4, [&](i64 b, i64 e) {
    for (i64 i = b; i < e; ++i)
      for (i64 o = 0; o < OC; ++o) out[i * OC + o] = dot(inp + i * C, w + o * C, C);
  });
}

// dinp (N, C) += dout (N, OC) @ w (OC, C);  dw (OC, C) += dout^T @ inp. Either output may be null.
template <typename T>
void matmul_backward(ThreadPool& par, T* dinp, T* dw, const T* dout, const T* inp, const T* w, i64 N, i64 C, i64 OC) {
  if (dinp)
    par.for_range(N, 4, [&](i64 b, i64 e) {
      for (i64 i = b; i < e; ++i)
        for (i64 o = 0; o < OC; ++o) axpy(dinp + i * C, dout[i * OC + o], w + o * C, C);
    });
  if (dw)
    par.for_range(OC, 4, [&](i64 b, i64 e) {
      for (i64 o = b; o < e; ++o)
        for (i64 i = 0; i < N; ++i) axpy(dw + o * C, dout[i * OC + o], inp + i * C, C);
    });
}

inline constexpr double kRmsEps = 1e-5;

// out (N, C) = x * rstd * w, rstd (N) saved for the backward.
template <typename T>
void rmsnorm_forward(T* out, T* rstd, const T* x, const T* w, i64 N, i64 C) {
  for (i64 i = 0; i < N; ++i) {
    const T* xi = x + i * C;
    T r = T(1) / std::sqrt(dot(xi, xi, C) / T(C) + T(kRmsEps));
    rstd[i] = r;
    for (i64 j = 0; j < C; ++j) out[i * C + j] = xi[j] * r * w[j];
  }
}

// y_j = w_j x_j r, r = (mean x^2 + eps)^-1/2:  dx_i = r w_i g_i - r^3 x_i / C * sum_j w_j g_j x_j.
template <typename T>
void rmsnorm_backward(T* dx, T* dw, const T* dout, const T* x, const T* w, const T* rstd, i64 N, i64 C) {
  for (i64 i = 0; i < N; ++i) {
    const T *xi = x + i * C, *gi = dout + i * C;
    T r = rstd[i], wgx = 0;
    for (i64 j = 0; j < C; ++j) wgx += w[j] * gi[j] * xi[j];
    T k = r * r * r * wgx / T(C);
    for (i64 j = 0; j < C; ++j) {
      dx[i * C + j] += r * w[j] * gi[j] - k * xi[j];
      dw[j] += gi[j] * xi[j] * r;
    }
  }
}

// out (N, C) = wte[tokens] (V, C).
template <typename T>
void embedding_forward(T* out, const int32_t* tokens, const T* wte, i64 N, i64 C) {
  for (i64 i = 0; i < N; ++i)
    for (i64 j = 0; j < C; ++j) out[i * C + j] = wte[tokens[i] * C + j];
}

template <typename T>
void embedding_backward(T* dwte, const T* dout, const int32_t* tokens, i64 N, i64 C) {
  for (i64 i = 0; i < N; ++i) axpy(dwte + tokens[i] * C, T(1), dout + i * C, C);
}

// SwiGLU per element: the float path is templates/swiglu/swiglu.h, the exact code the GPU and host
// kernels run; the double path (gradient checks) is the same formula in double.
template <typename T>
inline T swiglu_value(T g, T u) {
  T s = T(1) / (T(1) + std::exp(-g));
  return g * s * u;
}
template <>
inline float swiglu_value<float>(float g, float u) {
  return moejit::swiglu_forward(g, u);
}
template <typename T>
inline void swiglu_grad(T g, T u, T dh, T* dg, T* du) {
  T s = T(1) / (T(1) + std::exp(-g));
  *dg = dh * u * s * (T(1) + g * (T(1) - s));
  *du = dh * g * s;
}
template <>
inline void swiglu_grad<float>(float g, float u, float dh, float* dg, float* du) {
  moejit::swiglu_backward(g, u, dh, dg, du);
}

// h (N, F) = silu(gate) * up, gate_up (N, 2F) = [gate | up] per row.
template <typename T>
void swiglu_rows_forward(T* h, const T* gate_up, i64 N, i64 F) {
  for (i64 i = 0; i < N; ++i)
    for (i64 j = 0; j < F; ++j) h[i * F + j] = swiglu_value(gate_up[i * 2 * F + j], gate_up[i * 2 * F + F + j]);
}

// d_gate_up (N, 2F) = (overwritten) gradient of gate_up from dh (N, F).
template <typename T>
void swiglu_rows_backward(T* d_gate_up, const T* dh, const T* gate_up, i64 N, i64 F) {
  for (i64 i = 0; i < N; ++i)
    for (i64 j = 0; j < F; ++j)
      swiglu_grad(gate_up[i * 2 * F + j], gate_up[i * 2 * F + F + j], dh[i * F + j], &d_gate_up[i * 2 * F + j],
                  &d_gate_up[i * 2 * F + F + j]);
}

// Mean cross-entropy over N rows of logits (N, V); probs (N, V) kept for the backward.
template <typename T>
T cross_entropy_forward(T* probs, const T* logits, const int32_t* targets, i64 N, i64 V) {
  T loss = 0;
  for (i64 i = 0; i < N; ++i) {
    const T* l = logits + i * V;
    T mx = l[0];
    for (i64 v = 1; v < V; ++v) mx = std::max(mx, l[v]);
    T sum = 0;
    for (i64 v = 0; v < V; ++v) sum += (probs[i * V + v] = std::exp(l[v] - mx));
    for (i64 v = 0; v < V; ++v) probs[i * V + v] /= sum;
    loss -= std::log(probs[i * V + targets[i]]);
  }
  return loss / T(N);
}

// dlogits (N, V) = scale * (probs - onehot(target)) / N.
template <typename T>
void cross_entropy_backward(T* dlogits, const T* probs, const int32_t* targets, i64 N, i64 V, T scale) {
  for (i64 i = 0; i < N; ++i) {
    for (i64 v = 0; v < V; ++v) dlogits[i * V + v] = scale * probs[i * V + v] / T(N);
    dlogits[i * V + targets[i]] -= scale / T(N);
  }
}

}  // namespace moejit::runtime
