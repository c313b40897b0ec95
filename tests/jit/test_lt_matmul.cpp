// cuBLASLt products (jit/lt_matmul.hpp): the row-major -> column-major mapping executed by a plain
// column-major loop, as cuBLASLt defines its operation, against a row-major double reference, over
// transposes, padded leading dimensions, batches and accumulation; algorithm texts; and the clear
// refusal where cuBLASLt cannot start (no GPU here). Running cuBLASLt itself needs a GPU.
#include <gtest/gtest.h>

#include "../common/test_util.hpp"
#include "lt_matmul.hpp"
#include "moejit/error.hpp"

namespace moejit {
namespace {

// D (m, n) = op(X) op(Y) + beta D, column-major, exactly as cublasLtMatmul documents it.
void column_major_product(const LtProblem& p, const std::vector<float>& x, const std::vector<float>& y,
                          std::vector<double>& d) {
  auto at = [](const std::vector<float>& v, const LtOperand& o, int64_t b, int64_t r, int64_t c) {
    // op(M)(r, c): M(r, c) or M(c, r), column-major with leading dimension ld.
    return double(o.transposed ? v[b * o.stride + c + r * o.ld] : v[b * o.stride + r + c * o.ld]);
  };
  for (int64_t b = 0; b < p.batch; ++b)
    for (int64_t i = 0; i < p.m; ++i)
      for (int64_t j = 0; j < p.n; ++j) {
        double sum = 0;
        for (int64_t l = 0; l < p.k; ++l) sum += at(x, p.x, b, i, l) * at(y, p.y, b, l, j);
        double& out = d[b * p.stride_d + i + j * p.ldd];
        out = (p.beta != 0 ? p.beta * out : 0.0) + sum;
      }
}

TEST(LtMatmul, ColumnMajorMappingComputesTheRowMajorProduct) {
  std::mt19937_64 rng(test::test_seed());
  auto dim = [&](int lo, int hi) { return int64_t(lo + rng() % uint64_t(hi - lo + 1)); };
  for (int trial = 0; trial < 200; ++trial) {
    RowMajorGemm g;
    g.m = dim(1, 9), g.n = dim(1, 9), g.k = dim(1, 9);
    g.a_transposed = rng() & 1, g.b_transposed = rng() & 1;
    const int64_t a_rows = g.a_transposed ? g.k : g.m, a_row = g.a_transposed ? g.m : g.k;
    const int64_t b_rows = g.b_transposed ? g.n : g.k, b_row = g.b_transposed ? g.k : g.n;
    const bool padded = rng() & 1;
    g.lda = padded ? a_row + dim(0, 3) : 0, g.ldb = padded ? b_row + dim(0, 3) : 0,
    g.ldc = padded ? g.n + dim(0, 3) : 0;
    const int64_t lda = g.lda ? g.lda : a_row, ldb = g.ldb ? g.ldb : b_row, ldc = g.ldc ? g.ldc : g.n;
    g.batch = dim(1, 3);
    g.stride_a = a_rows * lda + dim(0, 2), g.stride_b = b_rows * ldb + dim(0, 2), g.stride_c = g.m * ldc + dim(0, 2);
    g.beta = rng() & 1 ? 1.0f : 0.0f;
    SCOPED_TRACE("trial " + std::to_string(trial) + ": M " + std::to_string(g.m) + " N " + std::to_string(g.n) + " K " +
                 std::to_string(g.k) + " ta " + std::to_string(g.a_transposed) + " tb " +
                 std::to_string(g.b_transposed) + " batch " + std::to_string(g.batch) + " beta " +
                 std::to_string(g.beta));
    const std::vector<float> a = test::random_floats(size_t(g.batch * g.stride_a), rng),
                             b = test::random_floats(size_t(g.batch * g.stride_b), rng),
                             c0 = test::random_floats(size_t(g.batch * g.stride_c), rng);
    // Row-major reference; C's padding must stay as it was.
    std::vector<double> want(c0.begin(), c0.end());
    for (int64_t t = 0; t < g.batch; ++t)
      for (int64_t r = 0; r < g.m; ++r)
        for (int64_t c = 0; c < g.n; ++c) {
          double sum = 0;
          for (int64_t l = 0; l < g.k; ++l) {
            const double av = g.a_transposed ? a[t * g.stride_a + l * lda + r] : a[t * g.stride_a + r * lda + l];
            const double bv = g.b_transposed ? b[t * g.stride_b + c * ldb + l] : b[t * g.stride_b + l * ldb + c];
            sum += av * bv;
          }
          double& out = want[t * g.stride_c + r * ldc + c];
          out = (g.beta != 0 ? out : 0.0) + sum;
        }
    std::vector<double> got(c0.begin(), c0.end());
    column_major_product(column_major(g), b, a, got);  // X is the row-major B, Y the A
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < got.size(); ++i) ASSERT_NEAR(got[i], want[i], 1e-9 * (1 + std::abs(want[i]))) << i;
  }
}

TEST(LtMatmul, RefusesImpossibleShapes) {
  EXPECT_THROW(column_major({0, 4, 4}), Error);
  RowMajorGemm g{4, 4, 4};
  g.lda = 3;  // shorter than A's row of K = 4
  try {
    column_major(g);
    FAIL() << "lda 3 < K 4 accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("lda 3 < 4"), std::string::npos) << e.what();
  }
}

TEST(LtMatmul, AlgorithmTextRoundTripsAndBadTextIsNamed) {
  LtAlgo a;
  for (size_t i = 0; i < a.words.size(); ++i) a.words[i] = 0x0123456789abcdefull * (i + 1);
  a.workspace_bytes = 4 << 20;
  EXPECT_EQ(LtAlgo::parse(a.to_string()), a);
  for (const std::string& bad :
       std::vector<std::string>{"", "lt", a.to_string().substr(1), "lt" + std::string(128, 'g') + "_ws0",
                                a.to_string() + "x", a.to_string().substr(0, 133)})
    EXPECT_THROW(LtAlgo::parse(bad), Error) << bad;
}

TEST(LtMatmul, WithoutAGpuItRefusesNamingWhatIsMissing) {
  try {
    LtMatmul m(RowMajorGemm{64, 64, 64}, DType::bf16, DType::bf16, 1 << 20);
    GTEST_SKIP() << "cuBLASLt started: a GPU is present";
  } catch (const UnavailableError& e) {
    const std::string what = e.what();
    EXPECT_TRUE(what.find("GPU") != std::string::npos || what.find("cannot load cuBLASLt") != std::string::npos)
        << what;
  }
}

}  // namespace
}  // namespace moejit
