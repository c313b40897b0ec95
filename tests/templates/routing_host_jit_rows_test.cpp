// Permute / combine forward and backward through the host JIT backend (RoutingSpec render ->
// HostBackend build + load -> launch_route_scatter / launch_route_gather on 2 worker threads) vs
// double references; padding rows zeroed, dropped choices skipped. Every output but d_weight must
// be bit-identical to the g++-compiled host loops and to a second config (other vector width and
// one thread). Tolerance (abs + |ref| * rel): 1e-5 + 1e-5 (f32), 1e-2 + 1e-2 (bf16: the output's
// rounding); d_weight 1e-4 + 1e-5 (a reduction along d_model). Outputs are poisoned (0xFF) first.
#include <gtest/gtest.h>

#include "host_backend.hpp"
#include "routing/routing_host.h"
#include "routing/routing_spec.hpp"
#include "routing_reference.hpp"
#include "routing_test_util.hpp"

namespace moejit::test {
namespace {

HostBackend& backend() {
  static HostBackend b(nullptr, 2);
  return b;
}

std::unique_ptr<Kernel> jit_load(Family family, Problem p, const Config& config) {
  p.family = family;
  const Source source = spec_for(family, "host").render(p, config, backend().device());
  return backend().load(backend().build(source), source.entries.at(0));
}

template <typename T>
struct RowsOut {
  std::vector<T> permuted, combined, d_x, d_y;
  std::vector<float> d_weight;
};

struct RowsIn {
  RefPlan plan;
  std::vector<float> weight;
  bool shared = false;
};

// The four steps with one kernel per family (kernels in family order: permute_fwd, combine_bwd,
// combine_fwd, permute_bwd).
template <typename T>
RowsOut<T> run_rows(Kernel* const* k, const Problem& p, const Config& config, const RowsIn& in, const std::vector<T>& x,
                    const std::vector<T>& y, const std::vector<T>& shared, const std::vector<T>& d_out,
                    const std::vector<T>& d_perm) {
  const int64_t D = p.routing().width, rows = static_cast<int64_t>(in.plan.row_source.size());
  RowsOut<T> out;
  out.permuted = poisoned<T>(rows * D), out.d_y = poisoned<T>(rows * D);
  out.combined = poisoned<T>(p.tokens * D), out.d_x = poisoned<T>(p.tokens * D);
  out.d_weight = poisoned<float>(p.tokens * p.routing().top_k);
  const int* slot = in.plan.slot.data();
  ScatterArgs permute;
  permute.src = x.data(), permute.slot = slot, permute.dst = out.permuted.data();
  permute.offsets = in.plan.offsets.data(), permute.row_source = in.plan.row_source.data();
  launch_route_scatter(*k[0], p, config, permute);
  ScatterArgs combine_bwd = permute;
  combine_bwd.src = d_out.data(), combine_bwd.weight = in.weight.data(), combine_bwd.y = y.data();
  combine_bwd.dst = out.d_y.data(), combine_bwd.d_weight = out.d_weight.data();
  launch_route_scatter(*k[1], p, config, combine_bwd);
  GatherArgs combine;
  combine.rows = y.data(), combine.slot = slot, combine.weight = in.weight.data();
  combine.shared = in.shared ? shared.data() : nullptr, combine.out = out.combined.data();
  launch_route_gather(*k[2], p, config, combine);
  GatherArgs permute_bwd;
  permute_bwd.rows = d_perm.data(), permute_bwd.slot = slot, permute_bwd.out = out.d_x.data();
  launch_route_gather(*k[3], p, config, permute_bwd);
  return out;
}

template <typename T>
void expect_same_bits(const RowsOut<T>& a, const RowsOut<T>& b, const std::string& what) {
  EXPECT_TRUE(same_bits(a.permuted, b.permuted)) << what << ": permuted";
  EXPECT_TRUE(same_bits(a.d_y, b.d_y)) << what << ": d_y";
  EXPECT_TRUE(same_bits(a.combined, b.combined)) << what << ": combined";
  EXPECT_TRUE(same_bits(a.d_x, b.d_x)) << what << ": d_x";
}

const Family kFamilies[] = {Family::route_permute_fwd, Family::route_combine_bwd, Family::route_combine_fwd,
                            Family::route_permute_bwd};

// other_vec: the second config's vector width (0: the heuristic's, so only the thread count differs).
template <typename T, int K, int D>
void check_rows(int experts, int64_t tokens, Load load, int capacity, int pad_to, bool shared_out, int other_vec,
                unsigned seed) {
  SCOPED_TRACE("rows E=" + std::to_string(experts) + " K=" + std::to_string(K) + " D=" + std::to_string(D) +
               " T=" + std::to_string(tokens) + " load=" + std::to_string(static_cast<int>(load)) +
               (std::is_same_v<T, bf16> ? " bf16" : " f32"));
  const Problem p = routing_problem(Family::route_permute_fwd, experts, K, tokens, D,
                                    std::is_same_v<T, bf16> ? DType::bf16 : DType::f32);
  std::mt19937 rng(seed);
  RowsIn in;
  const auto index = random_choices(tokens, experts, K, load, rng);
  in.plan = ref_plan(index, tokens, experts, K, capacity, pad_to);
  in.weight = random_floats(tokens * K, rng, 0.0f, 1.0f);
  in.shared = shared_out;
  const int64_t rows = static_cast<int64_t>(in.plan.row_source.size());
  const auto x = to_storage<T>(random_floats(tokens * D, rng)), y = to_storage<T>(random_floats(rows * D, rng));
  const auto shared = to_storage<T>(random_floats(tokens * D, rng));
  const auto d_out = to_storage<T>(random_floats(tokens * D, rng)),
             d_perm = to_storage<T>(random_floats(rows * D, rng));

  Config config = spec_for(kFamilies[0], "host").heuristic(p, backend().device());
  config.set("threads", 2);
  std::vector<std::unique_ptr<Kernel>> jit;
  for (Family family : kFamilies) jit.push_back(jit_load(family, p, config));
  Kernel* k[] = {jit[0].get(), jit[1].get(), jit[2].get(), jit[3].get()};
  const auto got = run_rows<T>(k, p, config, in, x, y, shared, d_out, d_perm);

  const double tol = std::is_same_v<T, bf16> ? 1e-2 : 1e-5;
  for (int64_t r = 0; r < rows; ++r) {
    const int src = in.plan.row_source[r];
    for (int d = 0; d < D; ++d) {
      const double pv = to_float(got.permuted[r * D + d]), dyv = to_float(got.d_y[r * D + d]);
      if (src < 0) {
        ASSERT_TRUE(pv == 0.0 && dyv == 0.0) << "padding row " << r << " not zeroed";
        continue;
      }
      ASSERT_EQ(pv, to_float(x[src / K * D + d])) << "permuted row " << r;  // a copy: exact
      ASSERT_TRUE(near(dyv, double(in.weight[src]) * to_float(d_out[src / K * D + d]), tol, tol, "d_y"));
    }
  }
  for (int64_t t = 0; t < tokens; ++t) {
    for (int d = 0; d < D; ++d) {
      double want = shared_out ? to_float(shared[t * D + d]) : 0.0, want_dx = 0.0;
      for (int r = 0; r < K; ++r) {
        const int s = in.plan.slot[t * K + r];
        if (s < 0) continue;
        want += double(in.weight[t * K + r]) * to_float(y[s * D + d]);
        want_dx += to_float(d_perm[s * D + d]);
      }
      ASSERT_TRUE(near(to_float(got.combined[t * D + d]), want, tol, tol, "combined"));
      ASSERT_TRUE(near(to_float(got.d_x[t * D + d]), want_dx, tol, tol, "d_x"));
    }
    for (int r = 0; r < K; ++r) {
      const int s = in.plan.slot[t * K + r];
      double dot = 0;
      for (int d = 0; s >= 0 && d < D; ++d) dot += double(to_float(d_out[t * D + d])) * to_float(y[s * D + d]);
      ASSERT_TRUE(near(got.d_weight[t * K + r], dot, 1e-4, 1e-5, "d_weight"));
    }
  }

  // The g++-compiled host loops (same headers, serial) give the same bits.
  constexpr int kVec = 16 / sizeof(T);
  FunctionKernel scatter(&route_scatter_host<T, kVec, K, D>), gather(&route_gather_host<T, kVec, K, D>);
  Kernel* loops[] = {&scatter, &scatter, &gather, &gather};
  expect_same_bits(run_rows<T>(loops, p, config, in, x, y, shared, d_out, d_perm), got, "g++ loops");
  // So does a second config: another vector width (when asked: one more compile) and one thread.
  Config other = config;
  other.set("threads", 1);
  if (other_vec) other.set("vec", other_vec);
  std::vector<std::unique_ptr<Kernel>> jit_other;
  for (Family family : kFamilies) jit_other.push_back(jit_load(family, p, other));
  Kernel* ko[] = {jit_other[0].get(), jit_other[1].get(), jit_other[2].get(), jit_other[3].get()};
  expect_same_bits(run_rows<T>(ko, p, other, in, x, y, shared, d_out, d_perm), got, other.to_string());
}

TEST(RoutingHostJit, RowsBf16) {
  check_rows<bf16, 2, 64>(8, 0, Load::uniform, -1, 1, false, 0, 20);
  check_rows<bf16, 2, 64>(8, 1, Load::uniform, -1, 1, true, 0, 21);
  check_rows<bf16, 2, 64>(8, 301, Load::skewed, -1, 16, true, 0, 22);
  check_rows<bf16, 8, 128>(64, 257, Load::one_expert, -1, 64, false, 2, 23);  // all tokens on expert 0
  check_rows<bf16, 8, 128>(64, 300, Load::skewed, 40, 16, true, 0, 24);       // capacity drops, empty experts
}

TEST(RoutingHostJit, RowsF32) {
  check_rows<float, 6, 64>(64, 200, Load::uniform, -1, 1, true, 1, 30);
  check_rows<float, 6, 64>(64, 333, Load::skewed, -1, 8, false, 0, 31);
}

}  // namespace
}  // namespace moejit::test
