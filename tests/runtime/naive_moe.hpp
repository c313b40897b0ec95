// A naive per-token MoE layer written independently in double (no permutation: each token loops over
// its top-K experts), and a driver that runs MoeLayer<float> on some MoeKernels backend with the same
// random inputs and compares the forward output, the router losses and every gradient with it.
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "../common/test_util.hpp"
#include "moe_layer.hpp"

namespace moejit::runtime::test_moe {

using D = std::vector<double>;

inline double silu(double g) {
  return g / (1 + std::exp(-g));
}
inline double dsilu(double g) {
  double s = 1 / (1 + std::exp(-g));
  return s * (1 + g * (1 - s));
}

struct Naive {  // weights in double, same layouts as MoeWeights
  int64_t N, C, E, K, F, Fs;
  D x, router, up, down, sup, sdown, dout;
  D out, dx, drouter, dup, ddown, dsup, dsdown;
  double aux = 0, z = 0;  // weighted by their coefficients, as the routing kernels report them
  std::vector<int> counts;

  // One SwiGLU FFN on one row: returns y (C); if dy given, accumulates grads and dx_row. expert: the
  // routed experts' layout, w_up (C, 2W) and w_down (W, C); else the dense one, (2W, C) and (C, W).
  void ffn(const double* xr, const double* wu, const double* wd, int64_t width, bool expert, double* y,
           const double* dy, double* dxr, double* dwu, double* dwd) {
    auto gi = [&](int64_t j, int64_t c) { return expert ? c * 2 * width + j : j * C + c; };
    auto ui = [&](int64_t j, int64_t c) { return expert ? c * 2 * width + width + j : (width + j) * C + c; };
    auto di = [&](int64_t c, int64_t j) { return expert ? j * C + c : c * width + j; };
    D g(width), u(width), h(width);
    for (int64_t j = 0; j < width; ++j) {
      for (int64_t c = 0; c < C; ++c) g[j] += wu[gi(j, c)] * xr[c], u[j] += wu[ui(j, c)] * xr[c];
      h[j] = silu(g[j]) * u[j];
    }
    for (int64_t c = 0; c < C; ++c) {
      y[c] = 0;
      for (int64_t j = 0; j < width; ++j) y[c] += wd[di(c, j)] * h[j];
    }
    if (!dy) return;
    for (int64_t j = 0; j < width; ++j) {
      double dh = 0;
      for (int64_t c = 0; c < C; ++c) dh += dy[c] * wd[di(c, j)], dwd[di(c, j)] += dy[c] * h[j];
      double dg = dh * u[j] * dsilu(g[j]), du = dh * silu(g[j]);
      for (int64_t c = 0; c < C; ++c) {
        dwu[gi(j, c)] += dg * xr[c];
        dwu[ui(j, c)] += du * xr[c];
        dxr[c] += dg * wu[gi(j, c)] + du * wu[ui(j, c)];
      }
    }
  }

  void run(const D& d_out, double aux_coef, double z_coef) {
    out.assign(N * C, 0);
    dx.assign(N * C, 0), drouter.assign(router.size(), 0), dup.assign(up.size(), 0), ddown.assign(down.size(), 0);
    dsup.assign(sup.size(), 0), dsdown.assign(sdown.size(), 0);
    D probs(N * E), logits(N * E), lse(N);
    std::vector<std::vector<int>> chosen(N);
    counts.assign(E, 0);
    for (int64_t t = 0; t < N; ++t) {
      double mx = -1e300, s = 0;
      for (int64_t e = 0; e < E; ++e) {
        for (int64_t c = 0; c < C; ++c) logits[t * E + e] += router[e * C + c] * x[t * C + c];
        mx = std::max(mx, logits[t * E + e]);
      }
      for (int64_t e = 0; e < E; ++e) s += std::exp(logits[t * E + e] - mx);
      lse[t] = mx + std::log(s);
      for (int64_t e = 0; e < E; ++e) probs[t * E + e] = std::exp(logits[t * E + e] - lse[t]);
      std::vector<int> order(E);
      std::iota(order.begin(), order.end(), 0);
      std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return probs[t * E + a] > probs[t * E + b]; });
      chosen[t].assign(order.begin(), order.begin() + K);
      for (int e : chosen[t]) ++counts[e];
    }
    aux = 0;
    z = 0;
    for (int64_t e = 0; e < E; ++e) {
      double p = 0;
      for (int64_t t = 0; t < N; ++t) p += probs[t * E + e] / N;
      aux += aux_coef * E * (double(counts[e]) / (N * K)) * p;
    }
    for (int64_t t = 0; t < N; ++t) z += z_coef * lse[t] * lse[t] / N;
    D y(C);
    for (int64_t t = 0; t < N; ++t) {
      const double* xr = &x[t * C];
      const double* g = &d_out[t * C];
      D dprobs(E, 0);
      for (int64_t e = 0; e < E; ++e) dprobs[e] = aux_coef * E * (double(counts[e]) / (N * K)) / N;
      if (Fs) {
        ffn(xr, sup.data(), sdown.data(), Fs, false, y.data(), g, &dx[t * C], dsup.data(), dsdown.data());
        for (int64_t c = 0; c < C; ++c) out[t * C + c] += y[c];
      }
      for (int e : chosen[t]) {
        double gate = probs[t * E + e];
        D dy(C), dxr(C, 0);
        for (int64_t c = 0; c < C; ++c) dy[c] = gate * g[c];
        ffn(xr, &up[e * 2 * F * C], &down[e * C * F], F, true, y.data(), dy.data(), dxr.data(), &dup[e * 2 * F * C],
            &ddown[e * C * F]);
        for (int64_t c = 0; c < C; ++c)
          out[t * C + c] += gate * y[c], dx[t * C + c] += dxr[c], dprobs[e] += g[c] * y[c];
      }
      double pd = 0;
      for (int64_t e = 0; e < E; ++e) pd += probs[t * E + e] * dprobs[e];
      for (int64_t e = 0; e < E; ++e) {
        double dl = probs[t * E + e] * (dprobs[e] - pd) + z_coef * 2 * lse[t] * probs[t * E + e] / N;
        for (int64_t c = 0; c < C; ++c) drouter[e * C + c] += dl * xr[c], dx[t * C + c] += dl * router[e * C + c];
      }
    }
  }
};

inline std::vector<float> to_float(const D& v) {
  return std::vector<float>(v.begin(), v.end());
}

// Random weights and inputs for MoeDims d; skew: every token shares a direction that experts 0..K-1
// favour, so the other experts stay empty and the load is as uneven as it gets.
inline Naive make_problem(int64_t N, const MoeDims& d, bool skew, uint64_t seed) {
  std::mt19937_64 rng(seed);
  const int64_t C = d.d_model, E = d.n_experts, F = d.d_expert, Fs = d.d_shared;
  auto rnd = [&](size_t n, double s) {
    auto f = test::random_floats(n, rng, -1.0f, 1.0f);
    D v(f.begin(), f.end());
    for (auto& x : v) x *= s;
    return v;
  };
  Naive ref{N, C, E, d.top_k, F, Fs};
  ref.x = rnd(N * C, 1.0), ref.router = rnd(E * C, 1.0), ref.up = rnd(E * 2 * F * C, 0.5);
  ref.down = rnd(E * C * F, 0.5), ref.sup = rnd(2 * Fs * C, 0.5), ref.sdown = rnd(C * Fs, 0.5);
  if (skew) {
    D m = rnd(C, 1.0);
    for (int64_t t = 0; t < N; ++t)
      for (int64_t c = 0; c < C; ++c) ref.x[t * C + c] += 2.0 * m[c];
    for (int64_t e = 0; e < E; ++e)
      for (int64_t c = 0; c < C; ++c) ref.router[e * C + c] = e < d.top_k ? 2.0 * m[c] : 0.1 * ref.router[e * C + c];
  }
  ref.dout = rnd(N * C, 1.0);
  ref.run(ref.dout, d.coefs.aux_coef, d.coefs.z_coef);
  return ref;
}

struct LayerResult {
  std::vector<float> out, dx, drouter, dup, ddown, dsup, dsdown;
  std::vector<int> counts;
  double aux = 0, z = 0;
};

// One forward and backward of MoeLayer<float> on a backend in process memory with ref's inputs
// (outputs poisoned).
inline LayerResult run_layer(StepBackend<float>& backend, const MoeDims& d, const Naive& ref) {
  const int64_t N = ref.N, C = d.d_model, E = d.n_experts, Fs = d.d_shared;
  MoeLayer<float> layer(backend, d);
  auto x = to_float(ref.x), router = to_float(ref.router), up = to_float(ref.up), down = to_float(ref.down),
       sup = to_float(ref.sup), sdown = to_float(ref.sdown), g = to_float(ref.dout);
  auto p = [](std::vector<float>& v) { return TypedPtr{v.data(), DType::f32}; };
  MoeWeights w{p(router), p(up), p(down), Fs ? p(sup) : TypedPtr{}, Fs ? p(sdown) : TypedPtr{}};
  LayerResult r;
  r.out.assign(N * C, std::nanf(""));
  r.dx.assign(N * C, 0), r.drouter.assign(router.size(), 0), r.dup.assign(up.size(), 0);
  r.ddown.assign(down.size(), 0), r.dsup.assign(sup.size(), 0), r.dsdown.assign(sdown.size(), 0);
  layer.forward(nullptr, p(r.out), p(x), N, w);
  layer.backward(nullptr, p(r.dx), {p(r.drouter), p(r.dup), p(r.ddown), p(r.dsup), p(r.dsdown)}, p(g), p(x), N, w,
                 1.0f);
  const int32_t* offsets = layer.offsets().as<int32_t>();
  for (int64_t e = 0; e < E; ++e) r.counts.push_back(offsets[e + 1] - offsets[e]);
  const float* losses = layer.losses().as<float>();
  r.aux = losses[0], r.z = losses[1];
  return r;
}

// Every output of `got` within atol + |ref| * rtol of the naive double reference.
inline void expect_matches(const Naive& ref, const LayerResult& got, bool skew, double atol, double rtol) {
  EXPECT_EQ(got.counts, ref.counts);
  if (skew) {
    EXPECT_GT(std::count(got.counts.begin(), got.counts.end(), 0), 0)
        << "the skewed routing should leave experts empty";
  }
  EXPECT_EQ(test::count_mismatches(ref.out, got.out, atol, rtol, "out"), 0u);
  EXPECT_NEAR(got.aux, ref.aux, atol + rtol * ref.aux);
  EXPECT_NEAR(got.z, ref.z, atol + rtol * ref.z);
  EXPECT_EQ(test::count_mismatches(ref.dx, got.dx, atol, rtol, "dx"), 0u);
  EXPECT_EQ(test::count_mismatches(ref.drouter, got.drouter, atol, rtol, "d_router"), 0u);
  EXPECT_EQ(test::count_mismatches(ref.dup, got.dup, atol, rtol, "d_w_up"), 0u);
  EXPECT_EQ(test::count_mismatches(ref.ddown, got.ddown, atol, rtol, "d_w_down"), 0u);
  if (ref.Fs) {
    EXPECT_EQ(test::count_mismatches(ref.dsup, got.dsup, atol, rtol, "d_shared_up"), 0u);
    EXPECT_EQ(test::count_mismatches(ref.dsdown, got.dsdown, atol, rtol, "d_shared_down"), 0u);
  }
}

}  // namespace moejit::runtime::test_moe
