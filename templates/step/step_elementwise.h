// The training step's per-element ops that have no row structure, written once for the host and the
// GPU (step_elementwise_cuda.cuh wraps them; tests/templates/step_elementwise_test.cpp runs them on
// the host against double references):
//   embedding forward   out (N, C) = wte[tokens] (V, C)
//   embedding backward  d_wte[v, c] += sum of d_out[i, c] over the rows i with tokens[i] == v, in row
//                       order: one owner per column, so the sum has a fixed order and needs no atomics
//   add, scale          out += in;  out = alpha * in
//   rope                one rotated pair of q or k (rotate-half pairing), in place in qkv
// Arithmetic in fp32 whatever the storage type, except RoPE's (in T: the gradient checks run it in
// double).
#pragma once
#include "common/host_device.h"

namespace moejit {

template <typename T>
MOEJIT_HD void embedding_fwd_element(T* out, const int* tokens, const T* wte, int64 i, int64 C) {
  const int64 row = i / C, c = i % C;
  out[i] = wte[int64(tokens[row]) * C + c];
}

// Column c of d_wte: every row of d_out in order.
template <typename T>
MOEJIT_HD void embedding_bwd_column(T* d_wte, const T* d_out, const int* tokens, int64 N, int64 C, int64 c) {
  for (int64 i = 0; i < N; ++i) {
    T* dst = d_wte + int64(tokens[i]) * C + c;
    *dst = from_float<T>(to_float(*dst) + to_float(d_out[i * C + c]));
  }
}

template <typename T>
MOEJIT_HD void add_element(T* out, const T* in, int64 i) {
  out[i] = from_float<T>(to_float(out[i]) + to_float(in[i]));
}
// Counters (the MoE layers' loads) add exactly, not through float.
MOEJIT_HD void add_element(int* out, const int* in, int64 i) {
  out[i] += in[i];
}

template <typename T>
MOEJIT_HD void scale_element(T* out, const T* in, int64 i, float alpha) {
  out[i] = from_float<T>(alpha * to_float(in[i]));
}

template <typename Out, typename In>
MOEJIT_HD void convert_element(Out* out, const In* in, int64 i) {
  out[i] = from_float<Out>(to_float(in[i]));
}

inline constexpr double kRopeBase = 10000.0;

// RoPE's angle for element i < hd/2 of a head at position t: t * base^(-2i/hd). In double: it
// reaches thousands of radians at long contexts, where float sin/cos lose digits.
MOEJIT_HD void rope_cos_sin(int64 t, int64 i, int64 hd, double* c, double* s) {
#if MOEJIT_DEVICE_CODE
  const double angle = double(t) * pow(kRopeBase, -2.0 * double(i) / double(hd));
  sincos(angle, s, c);
#else
  const double angle = double(t) * std::pow(kRopeBase, -2.0 * double(i) / double(hd));
  *c = std::cos(angle), *s = std::sin(angle);
#endif
}

// Pair p of the B*S * 2 * H * hd/2 pairs of qkv (B*S rows of 3C: q, k, v): element i of head h of
// q (part 0) or k (part 1) in row bt, with its partner i + hd/2, rotated by the angle of position
// t = bt % S (by minus that angle when inverse: the backward, since a rotation's transpose is its
// inverse).
template <typename T>
MOEJIT_HD void rope_pair(T* qkv, int64 p, int64 S, int64 C, int64 H, bool inverse) {
  const int64 hd = C / H, half = hd / 2;
  const int64 i = p % half, h = (p / half) % H, part = (p / (half * H)) % 2, bt = p / (half * H * 2);
  double cd, sd;
  rope_cos_sin(bt % S, i, hd, &cd, &sd);
  const T c = T(cd), s = inverse ? -T(sd) : T(sd);
  T* x = qkv + bt * 3 * C + part * C + h * hd;
  const T a = x[i], b = x[i + half];
  x[i] = a * c - b * s;
  x[i + half] = a * s + b * c;
}

}  // namespace moejit
