// The host backend's JIT step ops (host_step_ops.hpp) against the reference loops run in double
// (ops.hpp, reference_step_backend.hpp): RMSNorm forward and backward, cross-entropy forward and
// backward, the residual add, the sum of squares and AdamW, on random inputs whose sizes are not
// multiples of the ops' chunks, outputs poisoned first; and the same bits for 1 and 2 threads.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <limits>
#include <random>

#include "../common/test_util.hpp"
#include "host_step_ops.hpp"
#include "reference_step_backend.hpp"

namespace moejit::runtime {
namespace {

void use_suite_binary_cache() {
  setenv("MOEJIT_CACHE_DIR", MOEJIT_TEST_JIT_CACHE, 1);
}

std::vector<float> random_floats(size_t n, uint32_t seed, float lo = -2.0f, float hi = 2.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = u(rng);
  return v;
}
std::vector<double> to_double(const std::vector<float>& v) {
  return {v.begin(), v.end()};
}
std::vector<float> poisoned(size_t n) {
  return std::vector<float>(n, std::numeric_limits<float>::quiet_NaN());
}

// fp32 with vectorized (reordered) row sums of up to a few hundred terms against double.
constexpr double kAtol = 2e-5, kRtol = 2e-5;

struct Ops {
  HostBackend backend;
  HostStepOps ops;
  explicit Ops(unsigned threads) : backend(nullptr, threads), ops(backend) {}
};

TEST(HostStepOps, SourceHasOneEntryPerOpInOrder) {
  const Source s = host_step_ops_source();
  ASSERT_EQ(s.entries.size(), size_t(kHostStepOps));
  for (const std::string& e : s.entries) EXPECT_NE(s.code.find("void " + e + "("), std::string::npos) << e;
  EXPECT_EQ(s.family, "step_ops");
}

TEST(HostStepOps, RmsNormForwardAndBackwardMatchTheDoubleReference) {
  use_suite_binary_cache();
  Ops o(2);
  const int64_t N = 77, C = 96;  // N: two full chunks of rows and a partial one
  const auto x = random_floats(N * C, 1), w = random_floats(C, 2, 0.5f, 1.5f), g = random_floats(N * C, 3);
  const auto dx0 = random_floats(N * C, 4), dw0 = random_floats(C, 5);

  auto out = poisoned(N * C), rstd = poisoned(N);
  o.ops.rmsnorm_fwd(out.data(), rstd.data(), x.data(), w.data(), N, C);
  std::vector<double> ref_out(N * C), ref_rstd(N);
  rmsnorm_forward(ref_out.data(), ref_rstd.data(), to_double(x).data(), to_double(w).data(), N, C);
  EXPECT_EQ(test::count_mismatches(ref_out, out, kAtol, kRtol, "rmsnorm out"), 0u);
  EXPECT_EQ(test::count_mismatches(ref_rstd, rstd, kAtol, kRtol, "rmsnorm rstd"), 0u);

  auto dx = dx0, dw = dw0;  // both accumulate
  o.ops.rmsnorm_bwd(dx.data(), dw.data(), g.data(), x.data(), w.data(), rstd.data(), N, C);
  auto ref_dx = to_double(dx0), ref_dw = to_double(dw0);
  rmsnorm_backward(ref_dx.data(), ref_dw.data(), to_double(g).data(), to_double(x).data(), to_double(w).data(),
                   ref_rstd.data(), N, C);
  EXPECT_EQ(test::count_mismatches(ref_dx, dx, kAtol, kRtol, "rmsnorm d_x"), 0u);
  EXPECT_EQ(test::count_mismatches(ref_dw, dw, 1e-4, kRtol, "rmsnorm d_w (a sum over 77 rows)"), 0u);
}

TEST(HostStepOps, CrossEntropyForwardAndBackwardMatchTheDoubleReference) {
  use_suite_binary_cache();
  Ops o(2);
  const int64_t N = 45, V = 257;
  const auto logits = random_floats(N * V, 6, -6.0f, 6.0f);
  std::vector<int32_t> targets(N);
  std::mt19937 rng(7);
  for (auto& t : targets) t = int32_t(rng() % V);

  auto probs = poisoned(N * V);
  const double loss = o.ops.cross_entropy_fwd(probs.data(), logits.data(), targets.data(), N, V);
  std::vector<double> ref_probs(N * V);
  const double ref_loss = cross_entropy_forward(ref_probs.data(), to_double(logits).data(), targets.data(), N, V);
  EXPECT_NEAR(loss, ref_loss, 1e-5 * std::abs(ref_loss));
  EXPECT_EQ(test::count_mismatches(ref_probs, probs, 1e-7, kRtol, "probs"), 0u);

  auto d_logits = poisoned(N * V);
  o.ops.cross_entropy_bwd(d_logits.data(), probs.data(), targets.data(), N, V, 0.75f);
  std::vector<double> ref_d(N * V);
  cross_entropy_backward(ref_d.data(), ref_probs.data(), targets.data(), N, V, 0.75);
  EXPECT_EQ(test::count_mismatches(ref_d, d_logits, 1e-8, kRtol, "d_logits"), 0u);
}

TEST(HostStepOps, AddSumOfSquaresAndAdamWMatchTheDoubleReference) {
  use_suite_binary_cache();
  Ops o(2);
  const int64_t n = 200003;  // three full chunks of the sums and a partial one
  const auto a = random_floats(n, 8), b = random_floats(n, 9);

  auto sum = a;
  o.ops.add(sum.data(), b.data(), n);
  std::vector<double> ref_sum(n);
  for (int64_t i = 0; i < n; ++i) ref_sum[i] = double(a[i]) + double(b[i]);
  EXPECT_EQ(test::count_mismatches(ref_sum, sum, 0.0, 1e-7, "add"), 0u);

  double ref_squares = 0;
  for (float x : b) ref_squares += double(x) * double(x);
  EXPECT_NEAR(o.ops.sum_squares(b.data(), n), ref_squares, 1e-12 * ref_squares);

  AdamWStep step;
  step.lr = 3e-3, step.weight_decay = 0.1, step.t = 7, step.max_norm = 1.0;
  auto p = a, m = random_floats(n, 10, -0.1f, 0.1f), v = random_floats(n, 11, 0.0f, 0.01f);
  auto ref_p = to_double(p), ref_m = to_double(m), ref_v = to_double(v);
  const int64_t begin = 1000, end = n - 3;  // a segment: what lies outside stays as it was
  o.ops.adamw(p.data(), m.data(), v.data(), b.data(), begin, end, true, adamw_coefs<float>(step, 2.5));
  adamw_range(ref_p.data(), ref_m.data(), ref_v.data(), to_double(b).data(), begin, end, true,
              adamw_coefs<double>(step, 2.5));
  EXPECT_EQ(test::count_mismatches(ref_p, p, 1e-7, 1e-5, "adamw params"), 0u);
  EXPECT_EQ(test::count_mismatches(ref_m, m, 1e-7, 1e-5, "adamw m"), 0u);
  EXPECT_EQ(test::count_mismatches(ref_v, v, 1e-9, 1e-5, "adamw v"), 0u);
  EXPECT_EQ(p[begin - 1], a[begin - 1]);
  EXPECT_EQ(p[end], a[end]);
}

TEST(HostStepOps, SumsDoNotDependOnTheThreadCount) {
  use_suite_binary_cache();
  Ops one(1), two(2);
  const int64_t N = 200, C = 64, n = 150001;
  const auto x = random_floats(N * C, 12), w = random_floats(C, 13), g = random_floats(N * C, 14);
  auto run = [&](Ops& o) {
    std::vector<float> out(N * C), rstd(N), dx(N * C, 0.0f), dw(C, 0.0f);
    o.ops.rmsnorm_fwd(out.data(), rstd.data(), x.data(), w.data(), N, C);
    o.ops.rmsnorm_bwd(dx.data(), dw.data(), g.data(), x.data(), w.data(), rstd.data(), N, C);
    std::vector<int32_t> targets(N, 3);
    std::vector<float> probs(N * C);
    const double loss = o.ops.cross_entropy_fwd(probs.data(), x.data(), targets.data(), N, C);
    return std::make_tuple(dw, loss, o.ops.sum_squares(g.data(), std::min<int64_t>(n, N * C)));
  };
  EXPECT_EQ(run(one), run(two));
}

}  // namespace
}  // namespace moejit::runtime
