// The step's per-element ops (templates/step/step_elementwise.h), the code the GPU kernels run, on
// the host against double references, in fp32 and bf16 storage; outputs poisoned first.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "../common/test_util.hpp"
#include "step/step_elementwise.h"

namespace moejit {
namespace {

template <typename T>
std::vector<T> random_values(size_t n, std::mt19937_64& rng) {
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<T> v(n);
  for (auto& x : v) x = from_float<T>(d(rng));
  return v;
}
template <typename T>
std::vector<double> as_double(const std::vector<T>& v) {
  std::vector<double> out;
  for (const T& x : v) out.push_back(to_float(x));
  return out;
}
template <typename T>
std::vector<float> as_float(const std::vector<T>& v) {
  std::vector<float> out;
  for (const T& x : v) out.push_back(to_float(x));
  return out;
}

// bf16 keeps 8 significant bits: one rounding of the result.
template <typename T>
double rtol() {
  return sizeof(T) == 2 ? 1.0 / 128 : 1e-6;
}

template <typename T>
void check_embedding(std::mt19937_64& rng) {
  const int64 N = 37, C = 11, V = 9;
  const auto wte = random_values<T>(V * C, rng), d_out = random_values<T>(N * C, rng);
  std::vector<int> tokens(N);
  for (auto& t : tokens) t = int(rng() % 5);  // repeated tokens: the backward sums rows
  std::vector<T> out(N * C, from_float<T>(NAN));
  for (int64 i = 0; i < N * C; ++i) embedding_fwd_element(out.data(), tokens.data(), wte.data(), i, C);
  std::vector<double> want(N * C);
  for (int64 i = 0; i < N; ++i)
    for (int64 c = 0; c < C; ++c) want[i * C + c] = to_float(wte[tokens[i] * C + c]);
  EXPECT_EQ(test::count_mismatches(want, as_float(out), 0.0, 0.0, "embedding fwd"), 0u);

  auto d_wte = random_values<T>(V * C, rng);
  std::vector<double> want_dw = as_double(d_wte);
  for (int64 i = 0; i < N; ++i)
    for (int64 c = 0; c < C; ++c) want_dw[tokens[i] * C + c] += to_float(d_out[i * C + c]);
  for (int64 c = 0; c < C; ++c) embedding_bwd_column(d_wte.data(), d_out.data(), tokens.data(), N, C, c);
  // bf16 rounds after every added row: up to N roundings of the running sum.
  EXPECT_EQ(test::count_mismatches(want_dw, as_float(d_wte), sizeof(T) == 2 ? 0.25 : 1e-5, rtol<T>(), "embedding bwd"),
            0u);
}

template <typename T>
void check_add_scale_convert(std::mt19937_64& rng) {
  const int64 n = 203;
  const auto in = random_values<T>(n, rng);
  auto out = random_values<T>(n, rng);
  std::vector<double> want = as_double(out);
  for (int64 i = 0; i < n; ++i) want[i] += to_float(in[i]);
  for (int64 i = 0; i < n; ++i) add_element(out.data(), in.data(), i);
  EXPECT_EQ(test::count_mismatches(want, as_float(out), 0.0, rtol<T>(), "add"), 0u);

  const float alpha = -0.37f;
  std::vector<T> scaled(n, from_float<T>(NAN));
  for (int64 i = 0; i < n; ++i) scale_element(scaled.data(), in.data(), i, alpha);
  for (int64 i = 0; i < n; ++i) want[i] = double(alpha) * to_float(in[i]);
  EXPECT_EQ(test::count_mismatches(want, as_float(scaled), 0.0, rtol<T>(), "scale"), 0u);

  std::vector<bf16> narrow(n, from_float<bf16>(NAN));
  std::vector<float> wide(n, NAN);
  for (int64 i = 0; i < n; ++i) convert_element(narrow.data(), in.data(), i);
  for (int64 i = 0; i < n; ++i) convert_element(wide.data(), narrow.data(), i);
  EXPECT_EQ(test::count_mismatches(as_double(in), wide, 0.0, 1.0 / 256, "f32 -> bf16 -> f32"), 0u);
}

TEST(StepElementwise, EmbeddingMatchesADoubleReference) {
  std::mt19937_64 rng(test::test_seed());
  check_embedding<float>(rng);
  check_embedding<bf16>(rng);
}

TEST(StepElementwise, AddScaleAndConvertMatchADoubleReference) {
  std::mt19937_64 rng(test::test_seed());
  check_add_scale_convert<float>(rng);
  check_add_scale_convert<bf16>(rng);
}

// The MoE layers' load counters: exact integer sums, beyond float's 2^24.
// RoPE as a complex product: (x_i + j x_{i+hd/2}) * e^{j t theta_i}, theta_i = base^(-2i/hd), in
// long double; every pair of q and k rotated once, v untouched, and the inverse undoes it.
TEST(StepElementwise, RopeRotatesEveryPairOfQAndKLikeAComplexProduct) {
  std::mt19937_64 rng(test::test_seed());
  const int64 B = 2, S = 37, H = 3, hd = 8, C = H * hd, half = hd / 2, pairs = B * S * 2 * H * half;
  const std::vector<float> x = random_values<float>(B * S * 3 * C, rng);
  std::vector<double> want(x.begin(), x.end());
  for (int64 bt = 0; bt < B * S; ++bt)
    for (int64 part = 0; part < 2; ++part)
      for (int64 h = 0; h < H; ++h)
        for (int64 i = 0; i < half; ++i) {
          const int64 at = bt * 3 * C + part * C + h * hd + i;
          const long double theta = std::pow(10000.0L, -2.0L * i / hd), angle = (bt % S) * theta;
          const long double re = x[at], im = x[at + half];
          want[at] = double(re * std::cos(angle) - im * std::sin(angle));
          want[at + half] = double(re * std::sin(angle) + im * std::cos(angle));
        }
  std::vector<float> got = x;
  for (int64 p = pairs - 1; p >= 0; --p) rope_pair(got.data(), p, S, C, H, false);  // any order: pairs are disjoint
  EXPECT_EQ(test::count_mismatches(want, got, 1e-6, 1e-5, "rope"), 0u);
  for (int64 p = 0; p < pairs; ++p) rope_pair(got.data(), p, S, C, H, true);
  EXPECT_EQ(test::count_mismatches(std::vector<double>(x.begin(), x.end()), got, 1e-6, 1e-5, "inverse"), 0u);
}

TEST(StepElementwise, IntegerAddIsExact) {
  std::mt19937_64 rng(test::test_seed());
  const int64 n = 97;
  std::vector<int> out(n), in(n);
  std::vector<int64_t> want(n);
  for (int64 i = 0; i < n; ++i) {
    out[i] = int(rng() % (1u << 30)) - (1 << 29);
    in[i] = int(rng() % (1u << 26)) + (1 << 25) + 1;  // odd sums above 2^24 do not survive float
    want[i] = int64_t(out[i]) + in[i];
  }
  for (int64 i = 0; i < n; ++i) add_element(out.data(), in.data(), i);
  for (int64 i = 0; i < n; ++i) ASSERT_EQ(out[i], want[i]) << "element " << i;
}

}  // namespace
}  // namespace moejit
