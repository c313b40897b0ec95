// Routing through the host JIT backend: every family rendered by RoutingSpec for a HostBackend,
// compiled by Clang, loaded by ORC, launched with the launch_route_* helpers on 2 worker threads,
// against the double-precision reference (autotune/routing_reference.hpp). Plan, permute and combine
// must also be bit-identical to the g++-compiled host loops and across two configs (vector width,
// warps, thread count). Tolerances (abs + |ref| * rel): weights, scores 1e-6 + 1e-5; lse 1e-5 +
// 1e-5; gating backward vs central differences 2e-5 + 1e-3; rows 1e-5 + 1e-5 (f32), 1e-2 + 1e-2
// (bf16: one rounding of the output); d_weight 1e-4 + 1e-5. Outputs are poisoned (0xFF) first.
#include <gtest/gtest.h>

#include <set>

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

// Every entry of `family`'s source for `config`, built through the binary cache and loaded.
std::vector<std::unique_ptr<Kernel>> jit_load(Family family, Problem p, const Config& config) {
  p.family = family;
  const Source source = spec_for(family, "host").render(p, config, backend().device());
  auto binary = backend().build(source);
  std::vector<std::unique_ptr<Kernel>> kernels;
  for (const auto& entry : source.entries) kernels.push_back(backend().load(binary, entry));
  return kernels;
}

// The heuristic config with other thread count / vector width / warps.
Config variant(Family family, const Problem& p, int64_t threads, const char* name = nullptr, int64_t value = 0) {
  Config c = spec_for(family, "host").heuristic(p, backend().device());
  c.set("threads", threads);
  if (name) c.set(name, value);
  return c;
}

// ---- gating: forward against the reference, backward against central differences ----
template <int E, int K>
void check_gate(RefRouter router, bool with_bias, bool ties, int64_t tokens, unsigned seed) {
  router.experts = E, router.top_k = K;
  SCOPED_TRACE("gate E=" + std::to_string(E) + " K=" + std::to_string(K) + " T=" + std::to_string(tokens) +
               " ties=" + std::to_string(ties));
  std::mt19937 rng(seed);
  auto logits = random_floats(tokens * E, rng);
  if (ties)
    for (auto& x : logits) x = std::round(x / 3.0f);  // {-1, 0, 1}: many exactly equal scores
  const auto bias = random_floats(E, rng, -0.05f, 0.05f);
  auto index = poisoned<int>(tokens * K);
  auto weight = poisoned<float>(tokens * K), probs = poisoned<float>(tokens * E), lse = poisoned<float>(tokens);
  const Problem p = routing_problem(Family::route_gate_fwd, E, K, tokens);
  GateForwardArgs a;
  a.logits = logits.data(), a.bias = with_bias ? bias.data() : nullptr, a.params = to_params(router);
  a.index = index.data(), a.weight = weight.data(), a.probs = probs.data(), a.lse = lse.data();
  auto fwd = jit_load(Family::route_gate_fwd, p, variant(Family::route_gate_fwd, p, 2));
  launch_route_gate_fwd(*fwd[0], p, variant(Family::route_gate_fwd, p, 2), a);
  for (int64_t t = 0; t < tokens; ++t) {
    const std::vector<double> l(logits.begin() + t * E, logits.begin() + (t + 1) * E);
    double want_lse = 0;
    const auto s = ref_scores(l.data(), router, &want_lse);
    const auto want = ref_select(s, a.bias, router);
    const int* got = &index[t * K];
    ASSERT_EQ(std::set<int>(got, got + K).size(), static_cast<size_t>(K)) << "token " << t;
    for (int r = 0; r < K; ++r) {
      ASSERT_TRUE(got[r] >= 0 && got[r] < E) << "token " << t << " choice " << r << " = " << got[r];
      const double kg = s[got[r]] + (a.bias ? bias[got[r]] : 0), kw = s[want[r]] + (a.bias ? bias[want[r]] : 0);
      if (ties || got[r] != want[r]) {  // exact ties must follow the rule; otherwise only near ties may differ
        ASSERT_TRUE(ties ? got[r] == want[r] : std::abs(kg - kw) < 1e-6) << "token " << t << " choice " << r;
      }
    }
    const auto w = ref_weights(s, got, router);
    for (int r = 0; r < K; ++r) ASSERT_TRUE(near(weight[t * K + r], w[r], 1e-6, 1e-5, "weight"));
    for (int e = 0; e < E; ++e) ASSERT_TRUE(near(probs[t * E + e], s[e], 1e-6, 1e-5, "score"));
    ASSERT_TRUE(near(lse[t], want_lse, 1e-5, 1e-5, "lse"));
  }

  const auto dw = random_floats(tokens * K, rng, -1.0f, 1.0f);
  const auto aux = random_floats(E, rng, 0.0f, 0.01f);
  const float z_coef = 0.3f;
  auto d_logits = poisoned<float>(tokens * E);
  GateBackwardArgs b;
  b.logits = logits.data(), b.index = index.data(), b.d_weight = dw.data(), b.aux_scale = aux.data();
  b.params = a.params, b.grad.z_scale = route_z_scale(z_coef, tokens), b.d_logits = d_logits.data();
  const Problem pb = routing_problem(Family::route_gate_bwd, E, K, tokens);
  auto bwd = jit_load(Family::route_gate_bwd, pb, variant(Family::route_gate_bwd, pb, 2));
  launch_route_gate_bwd(*bwd[0], pb, variant(Family::route_gate_bwd, pb, 2), b);
  const std::vector<double> aux_d(aux.begin(), aux.end());
  const double h = 1e-4;
  for (int64_t t = 0; t < std::min<int64_t>(tokens, 40); ++t) {  // central differences: a few tokens suffice
    std::vector<double> l(logits.begin() + t * E, logits.begin() + (t + 1) * E);
    for (int e = 0; e < E; ++e) {
      const double keep = l[e];
      l[e] = keep + h;
      const double up = ref_token_loss(l.data(), &index[t * K], &dw[t * K], aux_d, z_coef / tokens, router);
      l[e] = keep - h;
      const double down = ref_token_loss(l.data(), &index[t * K], &dw[t * K], aux_d, z_coef / tokens, router);
      l[e] = keep;
      ASSERT_TRUE(near(d_logits[t * E + e], (up - down) / (2 * h), 2e-5, 1e-3, "d_logit e=" + std::to_string(e)));
    }
  }
  for (float v : d_logits) ASSERT_FALSE(std::isnan(v)) << "unwritten d_logits";
}

// Small E only: the gating code keeps a token's E scores in (fully unrolled) registers, which
// makes Clang's host compile grow with E (docs/routing.md, known limits).
TEST(RoutingHostJit, GateForwardAndBackward) {
  RefRouter softmax;
  check_gate<8, 2>(softmax, false, false, 0, 1);
  check_gate<8, 2>(softmax, false, false, 1, 2);
  check_gate<8, 2>(softmax, false, false, 300, 3);
  check_gate<8, 2>(softmax, false, true, 200, 5);  // exact ties
  RefRouter sigmoid;
  sigmoid.sigmoid = sigmoid.renormalize = true, sigmoid.scaling = 2.5;
  RefRouter grouped = sigmoid;
  grouped.n_groups = 4, grouped.topk_groups = 2;
  check_gate<16, 4>(sigmoid, true, false, 257, 4);
  check_gate<16, 4>(grouped, true, false, 100, 6);
}

// ---- plan: counts, offsets, slots, losses; bit-identical across configs and to the g++ loops ----
struct PlanOut {
  std::vector<int> counts, dropped, offsets, slot, row_source;
  std::vector<float> aux_scale, losses;
  bool operator==(const PlanOut&) const = default;  // float == : NaN poison never compares equal
};

PlanOut run_plan(Kernel& count, Kernel& offsets, Kernel& slots, const Problem& p, const Config& config,
                 const std::vector<int>& index, const std::vector<float>& probs, const std::vector<float>& lse,
                 int capacity, int pad_to) {
  PlanOut out;
  const int E = static_cast<int>(p.routing().experts);
  out.counts = poisoned<int>(E), out.dropped = poisoned<int>(E), out.offsets = poisoned<int>(E + 1);
  out.slot = poisoned<int>(p.tokens * p.routing().top_k),
  out.row_source = poisoned<int>(route_max_rows(p, capacity, pad_to));
  out.aux_scale = poisoned<float>(E), out.losses = poisoned<float>(2);
  std::vector<char> workspace(route_plan_workspace_bytes(p, config));
  PlanArgs a;
  a.index = index.data(), a.probs = probs.data(), a.lse = lse.data(), a.capacity = capacity, a.pad_to = pad_to;
  a.loss = {0.01f, 0.001f}, a.workspace = workspace.data();
  a.counts = out.counts.data(), a.dropped = out.dropped.data(), a.offsets = out.offsets.data();
  a.slot = out.slot.data(), a.row_source = out.row_source.data(), a.aux_scale = out.aux_scale.data();
  a.losses = out.losses.data();
  launch_route_plan(count, offsets, slots, p, config, a);
  return out;
}

template <int E, int K>
void check_plan(int64_t tokens, Load load, int capacity, int pad_to, unsigned seed) {
  SCOPED_TRACE("plan E=" + std::to_string(E) + " K=" + std::to_string(K) + " T=" + std::to_string(tokens) +
               " load=" + std::to_string(static_cast<int>(load)) + " capacity=" + std::to_string(capacity));
  std::mt19937 rng(seed);
  const auto index = random_choices(tokens, E, K, load, rng);
  const auto probs = random_floats(tokens * E, rng, 0.0f, 1.0f), lse = random_floats(tokens, rng, 0.0f, 5.0f);
  const Problem p = routing_problem(Family::route_plan, E, K, tokens);
  const Config heuristic = variant(Family::route_plan, p, 2, "warps", 8),
               other = variant(Family::route_plan, p, 1, "warps", 1);
  auto jit = jit_load(Family::route_plan, p, heuristic), jit_other = jit_load(Family::route_plan, p, other);
  const auto got = run_plan(*jit[0], *jit[1], *jit[2], p, heuristic, index, probs, lse, capacity, pad_to);
  const auto want = ref_plan(index, tokens, E, K, capacity, pad_to);
  EXPECT_EQ(got.counts, want.counts);
  EXPECT_EQ(got.dropped, want.dropped);
  EXPECT_EQ(got.offsets, want.offsets);
  EXPECT_EQ(got.slot, want.slot);
  EXPECT_EQ(std::vector<int>(got.row_source.begin(), got.row_source.begin() + want.row_source.size()), want.row_source);
  double aux = 0, z = 0;
  for (int e = 0; e < E; ++e) {
    double prob = 0;
    for (int64_t t = 0; t < tokens; ++t) prob += probs[t * E + e];
    aux += tokens ? double(want.counts[e]) / (tokens * K) * prob / tokens : 0;
  }
  for (int64_t t = 0; t < tokens; ++t) z += double(lse[t]) * lse[t];
  EXPECT_TRUE(near(got.losses[0], 0.01 * E * aux, 1e-7, 1e-4, "aux loss"));
  EXPECT_TRUE(near(got.losses[1], tokens ? 0.001 * z / tokens : 0, 1e-7, 1e-4, "z loss"));
  for (float v : got.aux_scale) EXPECT_FALSE(std::isnan(v));

  // Another chunk size: the same integers (the loss sums are summed per chunk, so only close).
  const auto small =
      run_plan(*jit_other[0], *jit_other[1], *jit_other[2], p, other, index, probs, lse, capacity, pad_to);
  EXPECT_TRUE(small.slot == got.slot && small.offsets == got.offsets && small.row_source == got.row_source &&
              small.counts == got.counts && small.dropped == got.dropped)
      << "warps 1 differs from warps 8";
  // One thread instead of two, same chunks: every output bit-identical.
  const Config one_thread = variant(Family::route_plan, p, 1, "warps", 8);
  EXPECT_TRUE(run_plan(*jit[0], *jit[1], *jit[2], p, one_thread, index, probs, lse, capacity, pad_to) == got)
      << "1 thread differs from 2 threads";
  FunctionKernel count(&route_count_host<E, K, 256>), offsets(&route_offsets_host<E, K>),
      slots(&route_slots_host<E, K, 256>);
  EXPECT_TRUE(run_plan(count, offsets, slots, p, heuristic, index, probs, lse, capacity, pad_to) == got)
      << "the g++-compiled loops differ from the JIT";
}

TEST(RoutingHostJit, Plan) {
  check_plan<8, 2>(0, Load::uniform, -1, 1, 10);
  check_plan<8, 2>(1, Load::uniform, -1, 1, 11);
  check_plan<8, 2>(1000, Load::skewed, -1, 1, 12);
  for (Load load : {Load::uniform, Load::skewed, Load::one_expert}) {
    check_plan<64, 8>(777, load, -1, 64, 13);
    check_plan<64, 8>(777, load, 100, 16, 14);  // capacity drops
  }
  check_plan<128, 8>(4099, Load::skewed, -1, 128, 15);
}

TEST(RoutingHostJit, BiasUpdate) {
  const std::vector<int> counts{10, 30, 20, 20};  // T*K/E = 20
  std::vector<float> bias{0.5f, 0.5f, 0.5f, -1.0f};
  const Problem p = routing_problem(Family::route_plan, 4, 2, 40);
  auto jit = jit_load(Family::route_plan, p, variant(Family::route_plan, p, 2));
  launch_route_bias_update(*jit[3], p, counts.data(), bias.data(), 0.125f);
  EXPECT_EQ(bias, (std::vector<float>{0.625f, 0.375f, 0.5f, -1.0f}));
}

}  // namespace
}  // namespace moejit::test
