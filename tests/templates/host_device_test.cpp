// exp_f32 on the host is a polynomial, not libm: every per-element loop with an exp (softmax, SiLU,
// sigmoid gates, cross-entropy) relies on it being accurate to a few ulp over the whole float range.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

#include "common/host_device.h"

namespace moejit {
namespace {

TEST(HostExp, WithinFourUlpOfTheDoubleExpFromMinus87To88) {
  std::mt19937 rng(20261127);
  std::uniform_real_distribution<float> wide(-87.0f, 88.0f), near_zero(-1.0f, 1.0f);
  double worst = 0.0;
  for (int i = 0; i < 200000; ++i) {
    const float x = i % 2 ? wide(rng) : near_zero(rng);
    const double want = std::exp(double(x));
    const double ulp = std::ldexp(1.0, std::ilogb(want) - 23);  // the spacing of floats at `want`
    worst = std::max(worst, std::abs(double(exp_f32(x)) - want) / ulp);
  }
  EXPECT_LE(worst, 4.0);
  EXPECT_EQ(exp_f32(0.0f), 1.0f);
}

TEST(HostExp, UnderflowsToZeroOverflowsToInfinityAndKeepsNaN) {
  EXPECT_EQ(exp_f32(-87.5f), 0.0f);
  EXPECT_EQ(exp_f32(-std::numeric_limits<float>::infinity()), 0.0f);
  EXPECT_EQ(exp_f32(88.5f), std::numeric_limits<float>::infinity());
  EXPECT_EQ(exp_f32(std::numeric_limits<float>::infinity()), std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(exp_f32(std::numeric_limits<float>::quiet_NaN())));
  // The sigmoid built on it saturates cleanly at both ends.
  EXPECT_EQ(1.0f / (1.0f + exp_f32(-200.0f)), 1.0f);
  EXPECT_EQ(1.0f / (1.0f + exp_f32(200.0f)), 0.0f);
}

}  // namespace
}  // namespace moejit
