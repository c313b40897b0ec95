// Finite-difference gradient checks in double: central differences of a scalar loss against the
// hand-written backward. Tolerance |fd - analytic| <= atol + rtol * |fd|.
#pragma once
#include <gtest/gtest.h>

#include <functional>
#include <random>
#include <string>
#include <vector>

#include "step_backend.hpp"

namespace moejit::test {

inline std::vector<double> random_doubles(size_t n, std::mt19937_64& rng, double scale = 1.0) {
  std::normal_distribution<double> d(0.0, scale);
  std::vector<double> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

// `loss()` reads `values` (perturbed in place); `analytic` holds d loss / d values.
inline void expect_gradient(const std::string& what, std::vector<double>& values, const std::vector<double>& analytic,
                            const std::function<double()>& loss, double eps = 1e-6, double atol = 1e-7,
                            double rtol = 1e-5) {
  ASSERT_EQ(values.size(), analytic.size()) << what;
  size_t bad = 0;
  for (size_t i = 0; i < values.size(); ++i) {
    double keep = values[i];
    values[i] = keep + eps;
    double up = loss();
    values[i] = keep - eps;
    double down = loss();
    values[i] = keep;
    double fd = (up - down) / (2 * eps);
    if (!(std::abs(fd - analytic[i]) <= atol + rtol * std::abs(fd)) && bad++ < 5)
      ADD_FAILURE() << what << "[" << i << "]: finite difference " << fd << ", backward " << analytic[i];
  }
  EXPECT_EQ(bad, 0u) << what << ": " << bad << " of " << values.size() << " gradients off";
}

inline double weighted_sum(const std::vector<double>& out, const std::vector<double>& r) {
  double s = 0;
  for (size_t i = 0; i < out.size(); ++i) s += out[i] * r[i];
  return s;
}

}  // namespace moejit::test

namespace moejit::runtime::grad_check {

// The reference backend's buffers are process memory: the checks hand it their own vectors.
inline TypedPtr p(std::vector<double>& v) {
  return {v.data(), DType::f64};
}
inline TypedPtr p(std::vector<int32_t>& v) {
  return {v.data(), DType::i32};
}

}  // namespace moejit::runtime::grad_check
