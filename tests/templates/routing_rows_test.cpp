// Permute / combine, forward and backward, on the host loops against double references; padding
// rows zeroed, dropped tokens skipped; bit-identical results across vector widths.
#include <gtest/gtest.h>

#include "routing/routing_host.h"
#include "routing/routing_spec.hpp"
#include "routing_reference.hpp"
#include "routing_test_util.hpp"

namespace moejit::test {
namespace {

constexpr int kD = 64;

struct RowsCase {
  int experts;
  int64_t tokens;
  Load load;
  int capacity;
  int pad_to;
  bool shared;
};

template <typename T>
double tol_of() {
  return std::is_same_v<T, bf16> ? 1e-2 : 1e-5;
}

template <typename T, int VEC, int K>
struct RowsOut {
  std::vector<T> permuted, combined, d_x, d_y;
  std::vector<float> d_weight;
};

template <typename T, int VEC, int K>
RowsOut<T, VEC, K> run_rows(const RowsCase& c, const RefPlan& plan, const std::vector<T>& x, const std::vector<T>& y,
                            const std::vector<float>& weight, const std::vector<T>& shared, const std::vector<T>& d_out,
                            const std::vector<T>& d_perm) {
  const DType dtype = std::is_same_v<T, bf16> ? DType::bf16 : DType::f32;
  const Problem problem = routing_problem(Family::route_permute_fwd, c.experts, K, c.tokens, kD, dtype);
  const Config config{{"vec", VEC}, {"lanes", 1}, {"rows", 1}};
  const size_t rows = plan.row_source.size();
  RowsOut<T, VEC, K> out;
  out.permuted = poisoned<T>(rows * kD);
  out.d_y = poisoned<T>(rows * kD);
  out.combined = poisoned<T>(c.tokens * kD);
  out.d_x = poisoned<T>(c.tokens * kD);
  out.d_weight = poisoned<float>(c.tokens * K);
  FunctionKernel scatter(&route_scatter_host<T, VEC, K, kD>), gather(&route_gather_host<T, VEC, K, kD>);

  ScatterArgs permute;
  permute.src = x.data(), permute.slot = plan.slot.data(), permute.dst = out.permuted.data();
  permute.offsets = plan.offsets.data(), permute.row_source = plan.row_source.data();
  launch_route_scatter(scatter, problem, config, permute);

  GatherArgs combine;
  combine.rows = y.data(), combine.slot = plan.slot.data(), combine.weight = weight.data();
  combine.shared = c.shared ? shared.data() : nullptr, combine.out = out.combined.data();
  launch_route_gather(gather, problem, config, combine);

  GatherArgs permute_bwd;
  permute_bwd.rows = d_perm.data(), permute_bwd.slot = plan.slot.data(), permute_bwd.out = out.d_x.data();
  launch_route_gather(gather, problem, config, permute_bwd);

  ScatterArgs combine_bwd;
  combine_bwd.src = d_out.data(), combine_bwd.slot = plan.slot.data(), combine_bwd.weight = weight.data();
  combine_bwd.y = y.data(), combine_bwd.dst = out.d_y.data(), combine_bwd.d_weight = out.d_weight.data();
  combine_bwd.offsets = plan.offsets.data(), combine_bwd.row_source = plan.row_source.data();
  launch_route_scatter(scatter, problem, config, combine_bwd);
  return out;
}

template <typename T, int K>
void check_rows(const RowsCase& c, unsigned seed) {
  SCOPED_TRACE("E=" + std::to_string(c.experts) + " K=" + std::to_string(K) + " T=" + std::to_string(c.tokens) +
               " load=" + std::to_string(static_cast<int>(c.load)) + " capacity=" + std::to_string(c.capacity) +
               " pad=" + std::to_string(c.pad_to) + (std::is_same_v<T, bf16> ? " bf16" : " f32"));
  std::mt19937 rng(seed);
  const auto index = random_choices(c.tokens, c.experts, K, c.load, rng);
  const RefPlan plan = ref_plan(index, c.tokens, c.experts, K, c.capacity, c.pad_to);
  const size_t rows = plan.row_source.size();
  const auto x = to_storage<T>(random_floats(c.tokens * kD, rng));
  const auto y = to_storage<T>(random_floats(rows * kD, rng));
  const auto shared = to_storage<T>(random_floats(c.tokens * kD, rng));
  const auto d_out = to_storage<T>(random_floats(c.tokens * kD, rng));
  const auto d_perm = to_storage<T>(random_floats(rows * kD, rng));
  const auto weight = random_floats(c.tokens * K, rng, 0.0f, 1.0f);
  constexpr int kWide = 16 / sizeof(T);
  const auto got = run_rows<T, kWide, K>(c, plan, x, y, weight, shared, d_out, d_perm);
  const double tol = tol_of<T>();

  for (size_t r = 0; r < rows; ++r) {
    const int src = plan.row_source[r];
    for (int d = 0; d < kD; ++d) {
      const double pv = to_float(got.permuted[r * kD + d]), dyv = to_float(got.d_y[r * kD + d]);
      if (src < 0) {
        ASSERT_EQ(pv, 0.0) << "padding row " << r;
        ASSERT_EQ(dyv, 0.0) << "padding row " << r;
        continue;
      }
      const int64_t t = src / K;
      ASSERT_EQ(pv, to_float(x[t * kD + d])) << "permuted row " << r;  // a copy: exact
      ASSERT_TRUE(near(dyv, double(weight[src]) * to_float(d_out[t * kD + d]), tol, tol, "d_y"));
    }
  }
  for (int64_t t = 0; t < c.tokens; ++t) {
    for (int d = 0; d < kD; ++d) {
      double want = c.shared ? to_float(shared[t * kD + d]) : 0.0, want_dx = 0.0;
      for (int r = 0; r < K; ++r) {
        const int s = plan.slot[t * K + r];
        if (s < 0) continue;
        want += double(weight[t * K + r]) * to_float(y[s * kD + d]);
        want_dx += to_float(d_perm[s * kD + d]);
      }
      ASSERT_TRUE(near(to_float(got.combined[t * kD + d]), want, tol, tol, "combined"));
      ASSERT_TRUE(near(to_float(got.d_x[t * kD + d]), want_dx, tol, tol, "d_x"));
    }
    for (int r = 0; r < K; ++r) {
      const int s = plan.slot[t * K + r];
      double dot = 0;
      for (int d = 0; s >= 0 && d < kD; ++d) dot += double(to_float(d_out[t * kD + d])) * to_float(y[s * kD + d]);
      ASSERT_TRUE(near(got.d_weight[t * K + r], dot, 1e-4, 1e-5, "d_weight"));
    }
  }
  // Another vector width: the outputs that accumulate per element are bit-identical.
  const auto narrow = run_rows<T, 1, K>(c, plan, x, y, weight, shared, d_out, d_perm);
  EXPECT_TRUE(same_bits(narrow.permuted, got.permuted));
  EXPECT_TRUE(same_bits(narrow.combined, got.combined));
  EXPECT_TRUE(same_bits(narrow.d_x, got.d_x));
  EXPECT_TRUE(same_bits(narrow.d_y, got.d_y));
}

template <typename T>
void check_all(unsigned seed) {
  check_rows<T, 2>({8, 0, Load::uniform, -1, 1, false}, seed);
  check_rows<T, 2>({8, 1, Load::uniform, -1, 1, true}, seed + 1);
  check_rows<T, 2>({8, 301, Load::skewed, -1, 16, true}, seed + 2);
  check_rows<T, 6>({64, 200, Load::uniform, -1, 1, true}, seed + 3);
  check_rows<T, 8>({64, 257, Load::one_expert, -1, 64, false}, seed + 4);
  check_rows<T, 8>({128, 500, Load::skewed, 40, 16, false}, seed + 5);  // capacity drops
  check_rows<T, 7>({92, 129, Load::uniform, -1, 1, true}, seed + 6);
  check_rows<T, 6>({78, 64, Load::skewed, -1, 8, true}, seed + 7);
}

TEST(RoutingRows, Bf16) {
  check_all<bf16>(100);
}
TEST(RoutingRows, Fp32) {
  check_all<float>(200);
}

}  // namespace
}  // namespace moejit::test
