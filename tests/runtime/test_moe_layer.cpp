// The MoE layer (float, through MoeKernels with the reference backend) against a naive per-token
// reference written independently in double: no permutation, each token loops over its top-K experts.
// Forward output, router losses and every gradient; routings with empty experts.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "../common/test_util.hpp"
#include "moe_layer.hpp"
#include "reference_moe_kernels.hpp"

namespace moejit::runtime {
namespace {

using D = std::vector<double>;

double silu(double g) {
  return g / (1 + std::exp(-g));
}
double dsilu(double g) {
  double s = 1 / (1 + std::exp(-g));
  return s * (1 + g * (1 - s));
}

struct Naive {  // weights in double, same layouts as MoeWeights
  int64_t N, C, E, K, F, Fs;
  D x, router, up, down, sup, sdown;
  D out, dx, drouter, dup, ddown, dsup, dsdown;
  double aux = 0, z = 0;
  std::vector<int> counts;

  // One SwiGLU FFN on one row: returns y (C); if dy given, accumulates grads and dx_row.
  void ffn(const double* xr, const double* wu, const double* wd, int64_t width, double* y, const double* dy,
           double* dxr, double* dwu, double* dwd) {
    D g(width), u(width), h(width);
    for (int64_t j = 0; j < width; ++j) {
      for (int64_t c = 0; c < C; ++c) g[j] += wu[j * C + c] * xr[c], u[j] += wu[(width + j) * C + c] * xr[c];
      h[j] = silu(g[j]) * u[j];
    }
    for (int64_t c = 0; c < C; ++c) {
      y[c] = 0;
      for (int64_t j = 0; j < width; ++j) y[c] += wd[c * width + j] * h[j];
    }
    if (!dy) return;
    for (int64_t j = 0; j < width; ++j) {
      double dh = 0;
      for (int64_t c = 0; c < C; ++c) dh += dy[c] * wd[c * width + j], dwd[c * width + j] += dy[c] * h[j];
      double dg = dh * u[j] * dsilu(g[j]), du = dh * silu(g[j]);
      for (int64_t c = 0; c < C; ++c) {
        dwu[j * C + c] += dg * xr[c];
        dwu[(width + j) * C + c] += du * xr[c];
        dxr[c] += dg * wu[j * C + c] + du * wu[(width + j) * C + c];
      }
    }
  }

  void run(const D& dout, double aux_coef, double z_coef) {
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
      aux += E * (double(counts[e]) / (N * K)) * p;
    }
    for (int64_t t = 0; t < N; ++t) z += lse[t] * lse[t] / N;
    D y(C);
    for (int64_t t = 0; t < N; ++t) {
      const double* xr = &x[t * C];
      const double* g = &dout[t * C];
      D dprobs(E, 0);
      for (int64_t e = 0; e < E; ++e) dprobs[e] = aux_coef * E * (double(counts[e]) / (N * K)) / N;
      if (Fs) {
        ffn(xr, sup.data(), sdown.data(), Fs, y.data(), g, &dx[t * C], dsup.data(), dsdown.data());
        for (int64_t c = 0; c < C; ++c) out[t * C + c] += y[c];
      }
      for (int e : chosen[t]) {
        double gate = probs[t * E + e];
        D dy(C), dxr(C, 0);
        for (int64_t c = 0; c < C; ++c) dy[c] = gate * g[c];
        ffn(xr, &up[e * 2 * F * C], &down[e * C * F], F, y.data(), dy.data(), dxr.data(), &dup[e * 2 * F * C],
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

std::vector<float> to_float(const D& v) {
  return std::vector<float>(v.begin(), v.end());
}

void check_against_naive(int64_t N, MoeDims d, bool skew, uint64_t seed) {
  SCOPED_TRACE("seed " + std::to_string(seed) + ", N " + std::to_string(N));
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
  if (skew) {  // every token shares a direction m that experts 0..K-1 favour: the others stay empty
    D m = rnd(C, 1.0);
    for (int64_t t = 0; t < N; ++t)
      for (int64_t c = 0; c < C; ++c) ref.x[t * C + c] += 2.0 * m[c];
    for (int64_t e = 0; e < E; ++e)
      for (int64_t c = 0; c < C; ++c) ref.router[e * C + c] = e < d.top_k ? 2.0 * m[c] : 0.1 * ref.router[e * C + c];
  }
  D dout = rnd(N * C, 1.0);
  const double aux_coef = 0.05, z_coef = 0.01;
  ref.run(dout, aux_coef, z_coef);

  Parallel par(2);
  ReferenceMoeKernels<float> kernels(par);
  MoeLayer<float> layer(kernels, par, d);
  auto x = to_float(ref.x), router = to_float(ref.router), up = to_float(ref.up), down = to_float(ref.down),
       sup = to_float(ref.sup), sdown = to_float(ref.sdown), g = to_float(dout);
  MoeWeights<const float> w{router.data(), up.data(), down.data(), Fs ? sup.data() : nullptr,
                            Fs ? sdown.data() : nullptr};
  std::vector<float> out(N * C, std::nanf("")), dx(N * C, 0), drouter(router.size(), 0), dup(up.size(), 0),
      ddown(down.size(), 0), dsup(sup.size(), 0), dsdown(sdown.size(), 0);
  layer.forward(nullptr, out.data(), x.data(), N, w);
  layer.backward(nullptr, dx.data(), {drouter.data(), dup.data(), ddown.data(), dsup.data(), dsdown.data()}, g.data(),
                 x.data(), N, w, float(aux_coef), float(z_coef));

  std::vector<int> counts(E);
  for (int64_t e = 0; e < E; ++e) counts[e] = layer.offsets()[e + 1] - layer.offsets()[e];
  EXPECT_EQ(counts, ref.counts);
  if (skew) {
    EXPECT_GT(std::count(counts.begin(), counts.end(), 0), 0) << "the skewed routing should leave experts empty";
  }
  const double atol = 1e-5, rtol = 1e-4;  // fp32 accumulation over C, F <= 64 terms
  EXPECT_EQ(test::count_mismatches(ref.out, out, atol, rtol, "out"), 0u);
  EXPECT_NEAR(layer.aux_loss(), ref.aux, 1e-5 + 1e-5 * ref.aux);
  EXPECT_NEAR(layer.z_loss(), ref.z, 1e-5 + 1e-5 * ref.z);
  EXPECT_EQ(test::count_mismatches(ref.dx, dx, atol, rtol, "dx"), 0u);
  EXPECT_EQ(test::count_mismatches(ref.drouter, drouter, atol, rtol, "d_router"), 0u);
  EXPECT_EQ(test::count_mismatches(ref.dup, dup, atol, rtol, "d_w_up"), 0u);
  EXPECT_EQ(test::count_mismatches(ref.ddown, ddown, atol, rtol, "d_w_down"), 0u);
  if (Fs) {
    EXPECT_EQ(test::count_mismatches(ref.dsup, dsup, atol, rtol, "d_shared_up"), 0u);
    EXPECT_EQ(test::count_mismatches(ref.dsdown, dsdown, atol, rtol, "d_shared_down"), 0u);
  }
}

TEST(MoeLayer, MatchesNaiveReferenceRandomRouting) {
  check_against_naive(37, {16, 8, 2, 12, 24}, false, test::test_seed());
}

TEST(MoeLayer, MatchesNaiveReferenceWithEmptyExperts) {
  check_against_naive(3, {16, 8, 2, 12, 24}, false, test::test_seed());  // 6 assignments, 8 experts
  check_against_naive(29, {16, 8, 3, 12, 24}, true, test::test_seed());
}

TEST(MoeLayer, MatchesNaiveReferenceWithoutSharedExpertTopOne) {
  check_against_naive(21, {8, 4, 1, 16, 0}, false, test::test_seed());
}

TEST(MoeLayer, TuningSummaryNamesFallbacks) {
  std::vector<KernelChoice> c = {{"a", "bm64", TuningRung::kExact}, {"b", "bm32", TuningRung::kNearestBucket}};
  EXPECT_EQ(summarize_tuning(c), "all 2 kernels tuned");
  c.push_back({"c", "", TuningRung::kHeuristic});
  EXPECT_EQ(summarize_tuning(c), "1 of 3 kernels fell back: c (heuristic)");
  Parallel par(1);
  EXPECT_EQ(ReferenceMoeKernels<float>(par).kernel_choices().size(), moe_kernel_names().size());
  EXPECT_EQ(summarize_tuning(ReferenceMoeKernels<float>(par).kernel_choices()),
            "16 of 16 kernels fell back: 16 reference");
}

}  // namespace
}  // namespace moejit::runtime
