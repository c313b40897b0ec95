// SwiGLU, per element, for both backends: h = silu(g) * u, silu(g) = g * sigmoid(g).
// The fused up-projection writes gate and up side by side: gate_up row r = [g (F) | u (F)].
#pragma once
#include "common/host_device.h"

namespace moejit {

MOEJIT_HD float sigmoid_f32(float x) {
  return 1.0f / (1.0f + exp_f32(-x));
}

MOEJIT_HD float swiglu_forward(float g, float u) {
  return g * sigmoid_f32(g) * u;
}

// d/dg [g*s(g)] = s + g*s*(1-s) = s * (1 + g*(1-s)).
MOEJIT_HD void swiglu_backward(float g, float u, float dh, float* dg, float* du) {
  float s = sigmoid_f32(g);
  *dg = dh * u * s * (1.0f + g * (1.0f - s));
  *du = dh * g * s;
}

// One vector of VEC columns of one row; `column` is a multiple of VEC.
template <typename T, int VEC>
MOEJIT_HD void swiglu_forward_vec(const T* gate_up, T* out, int64 row, int64 column, int64 width) {
  const T* g = gate_up + row * 2 * width + column;
  Vec<T, VEC> gv = load_vec<T, VEC>(g), uv = load_vec<T, VEC>(g + width), o;
  MOEJIT_UNROLL
  for (int k = 0; k < VEC; ++k) o.v[k] = from_float<T>(swiglu_forward(to_float(gv.v[k]), to_float(uv.v[k])));
  store_vec<T, VEC>(out + row * width + column, o);
}

template <typename T, int VEC>
MOEJIT_HD void swiglu_backward_vec(const T* gate_up, const T* dh, T* d_gate_up, int64 row, int64 column, int64 width) {
  const T* g = gate_up + row * 2 * width + column;
  Vec<T, VEC> gv = load_vec<T, VEC>(g), uv = load_vec<T, VEC>(g + width),
              hv = load_vec<T, VEC>(dh + row * width + column), dg, du;
  MOEJIT_UNROLL
  for (int k = 0; k < VEC; ++k) {
    float a, b;
    swiglu_backward(to_float(gv.v[k]), to_float(uv.v[k]), to_float(hv.v[k]), &a, &b);
    dg.v[k] = from_float<T>(a);
    du.v[k] = from_float<T>(b);
  }
  T* out = d_gate_up + row * 2 * width + column;
  store_vec<T, VEC>(out, dg);
  store_vec<T, VEC>(out + width, du);
}

}  // namespace moejit
