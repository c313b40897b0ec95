// Gating + top-k (forward) and its backward on the host loops, against the double reference:
// every E/k of the shapes file, group-limited routing, selection bias, ties, finite differences.
#include <gtest/gtest.h>

#include <limits>
#include <set>

#include "moejit/error.hpp"

#include "routing/routing_host.h"
#include "routing/routing_spec.hpp"
#include "routing_reference.hpp"
#include "routing_test_util.hpp"

namespace moejit::test {
namespace {

struct GateCase {
  RefRouter router;
  bool bias = false;
  bool ties = false;  // logits from {-1, 0, 1}: many exactly equal scores
};

template <int E, int K>
struct GateRun {
  std::vector<float> logits, bias;
  std::vector<int> index;
  std::vector<float> weight, probs, lse;
};

template <int E, int K>
GateRun<E, K> run_forward(const GateCase& c, int64_t tokens, std::mt19937& rng) {
  GateRun<E, K> run;
  run.logits = random_floats(tokens * E, rng);
  if (c.ties)
    for (auto& x : run.logits) x = std::round(x / 3.0f);
  if (c.bias) run.bias = random_floats(E, rng, -0.05f, 0.05f);
  run.index = poisoned<int>(tokens * K);
  run.weight = poisoned<float>(tokens * K);
  run.probs = poisoned<float>(tokens * E);
  run.lse = poisoned<float>(tokens);
  FunctionKernel kernel(&route_gate_fwd_host<E, K>);
  GateForwardArgs a;
  a.logits = run.logits.data();
  a.bias = c.bias ? run.bias.data() : nullptr;
  a.params = to_params(c.router);
  a.index = run.index.data();
  a.weight = run.weight.data();
  a.probs = run.probs.data();
  a.lse = run.lse.data();
  launch_route_gate_fwd(kernel, routing_problem(Family::route_gate_fwd, E, K, tokens),
                        Config{{"lanes", 1}, {"tokens", 1}}, a);
  return run;
}

template <int E, int K>
void check_forward(const GateCase& c, int64_t tokens, unsigned seed) {
  SCOPED_TRACE("E=" + std::to_string(E) + " K=" + std::to_string(K) + " T=" + std::to_string(tokens) +
               " sigmoid=" + std::to_string(c.router.sigmoid) + " groups=" + std::to_string(c.router.n_groups) +
               " bias=" + std::to_string(c.bias) + " ties=" + std::to_string(c.ties));
  std::mt19937 rng(seed);
  const auto run = run_forward<E, K>(c, tokens, rng);
  for (int64_t t = 0; t < tokens; ++t) {
    std::vector<double> logits(run.logits.begin() + t * E, run.logits.begin() + (t + 1) * E);
    double lse = 0;
    const auto s = ref_scores(logits.data(), c.router, &lse);
    const auto want = ref_select(s, c.bias ? run.bias.data() : nullptr, c.router);
    const int* got = &run.index[t * K];
    std::set<int> distinct(got, got + K);
    ASSERT_EQ(distinct.size(), static_cast<size_t>(K)) << "token " << t;
    for (int r = 0; r < K; ++r) {
      ASSERT_TRUE(got[r] >= 0 && got[r] < E) << "token " << t << " choice " << r << " = " << got[r];
      if (c.ties) {
        // Exactly equal scores: the tie rule (lower index wins) must give exactly the reference.
        ASSERT_EQ(got[r], want[r]) << "token " << t << " choice " << r;
      } else if (got[r] != want[r]) {
        // Only a near tie (|key difference| < 1e-6) may order differently in fp32.
        const double kg = s[got[r]] + (c.bias ? run.bias[got[r]] : 0),
                     kw = s[want[r]] + (c.bias ? run.bias[want[r]] : 0);
        ASSERT_LT(std::abs(kg - kw), 1e-6) << "token " << t << " choice " << r << ": " << got[r] << " vs " << want[r];
      }
    }
    const auto w = ref_weights(s, got, c.router);
    for (int r = 0; r < K; ++r) ASSERT_TRUE(near(run.weight[t * K + r], w[r], 1e-6, 1e-5, "weight"));
    for (int e = 0; e < E; ++e) ASSERT_TRUE(near(run.probs[t * E + e], s[e], 1e-7, 1e-5, "score"));
    ASSERT_TRUE(near(run.lse[t], lse, 1e-5, 1e-5, "lse"));
  }
}

// Backward: d_logits of L = sum dw*w + sum aux_scale*s + z/T*lse^2 against central differences.
template <int E, int K>
void check_backward(const GateCase& c, int64_t tokens, unsigned seed) {
  SCOPED_TRACE("backward E=" + std::to_string(E) + " K=" + std::to_string(K) +
               " sigmoid=" + std::to_string(c.router.sigmoid) + " renorm=" + std::to_string(c.router.renormalize));
  std::mt19937 rng(seed);
  const auto run = run_forward<E, K>(c, tokens, rng);
  const auto dw = random_floats(tokens * K, rng, -1.0f, 1.0f);
  const auto aux = random_floats(E, rng, 0.0f, 0.01f);
  const float z_coef = 0.3f;
  auto d_logits = poisoned<float>(tokens * E);
  FunctionKernel kernel(&route_gate_bwd_host<E, K>);
  GateBackwardArgs a;
  a.logits = run.logits.data();
  a.index = run.index.data();
  a.d_weight = dw.data();
  a.aux_scale = aux.data();
  a.params = to_params(c.router);
  a.grad.z_scale = route_z_scale(z_coef, tokens);
  a.d_logits = d_logits.data();
  launch_route_gate_bwd(kernel, routing_problem(Family::route_gate_bwd, E, K, tokens),
                        Config{{"lanes", 1}, {"tokens", 1}}, a);
  const std::vector<double> aux_d(aux.begin(), aux.end());
  const double h = 1e-4;
  for (int64_t t = 0; t < tokens; ++t) {
    std::vector<double> l(run.logits.begin() + t * E, run.logits.begin() + (t + 1) * E);
    for (int e = 0; e < E; ++e) {
      const double keep = l[e];
      l[e] = keep + h;
      const double up = ref_token_loss(l.data(), &run.index[t * K], &dw[t * K], aux_d, z_coef / tokens, c.router);
      l[e] = keep - h;
      const double down = ref_token_loss(l.data(), &run.index[t * K], &dw[t * K], aux_d, z_coef / tokens, c.router);
      l[e] = keep;
      ASSERT_TRUE(near(d_logits[t * E + e], (up - down) / (2 * h), 2e-5, 1e-3, "d_logit e=" + std::to_string(e)));
    }
  }
}

// With the sequence-wise aux loss, token t's aux gradient is the batch row plus its sequence's row
// (1 + t / L): the same bits as a one-token backward given that sum as its only row.
template <int E, int K>
void check_sequence_rows(const GateCase& c, int64_t tokens, int64_t L, unsigned seed) {
  std::mt19937 rng(seed);
  const auto run = run_forward<E, K>(c, tokens, rng);
  const auto dw = random_floats(tokens * K, rng, -1.0f, 1.0f);
  const auto aux = random_floats(E * (1 + tokens / L), rng, 0.0f, 0.01f);
  FunctionKernel kernel(&route_gate_bwd_host<E, K>);
  auto backward = [&](int64_t first, int64_t count, const float* aux_scale, int64_t seq_tokens, float* d_logits) {
    GateBackwardArgs a;
    a.logits = run.logits.data() + first * E;
    a.index = run.index.data() + first * K;
    a.d_weight = dw.data() + first * K;
    a.aux_scale = aux_scale;
    a.params = to_params(c.router);
    a.grad.z_scale = 0.1f, a.grad.seq_tokens = seq_tokens;
    a.d_logits = d_logits;
    launch_route_gate_bwd(kernel, routing_problem(Family::route_gate_bwd, E, K, count),
                          Config{{"lanes", 1}, {"tokens", 1}}, a);
  };
  auto got = poisoned<float>(tokens * E);
  backward(0, tokens, aux.data(), L, got.data());
  for (int64_t t = 0; t < tokens; ++t) {
    std::vector<float> row(E), want = poisoned<float>(E);
    for (int e = 0; e < E; ++e) row[e] = aux[e] + aux[(1 + t / L) * E + e];
    backward(t, 1, row.data(), 0, want.data());
    ASSERT_TRUE(same_bits(std::vector<float>(got.begin() + t * E, got.begin() + (t + 1) * E), want)) << "token " << t;
  }
}

TEST(RoutingGate, SequenceAuxRowsAddToTheBatchRow) {
  GateCase c;
  c.router.experts = 16, c.router.top_k = 4, c.router.sigmoid = true, c.router.renormalize = true;
  check_sequence_rows<16, 4>(c, 24, 6, 60);
  check_sequence_rows<16, 4>(c, 5, 5, 61);
}

template <int E, int K>
void check_shape(RefRouter router, unsigned seed) {
  router.experts = E;
  router.top_k = K;
  for (int variant = 0; variant < 4; ++variant) {
    GateCase c;
    c.router = router;
    c.router.sigmoid = variant & 1;
    c.router.renormalize = variant >> 1;
    c.router.scaling = variant == 3 ? 2.5 : 1.0;
    c.bias = variant == 2;
    for (int64_t tokens : {0, 1, 37, 300}) check_forward<E, K>(c, tokens, seed + variant + 10 * tokens);
    c.bias = false;
    c.ties = true;
    check_forward<E, K>(c, 64, seed + 7 * variant);
    check_backward<E, K>(GateCase{c.router}, 3, seed + 13 * variant);
  }
}

// The E / top-k pairs of ../shared/reference/moe-shapes.md, plus group-limited and limit shapes.
TEST(RoutingGate, Mixtral_E8_K2) {
  check_shape<8, 2>({}, 1);
}
TEST(RoutingGate, DeepSeekMoE_E64_K6) {
  check_shape<64, 6>({}, 2);
}
TEST(RoutingGate, OLMoE_E64_K8) {
  check_shape<64, 8>({}, 3);
}
TEST(RoutingGate, Qwen3_E128_K8) {
  check_shape<128, 8>({}, 4);
}
TEST(RoutingGate, PaperMoe2b_E92_K7) {
  check_shape<92, 7>({}, 5);
}
TEST(RoutingGate, PaperMoe7b_E78_K6) {
  check_shape<78, 6>({}, 6);
}
TEST(RoutingGate, GroupLimited_E256_K8_G8_Top4) {
  RefRouter r;
  r.n_groups = 8, r.topk_groups = 4;
  check_shape<256, 8>(r, 7);
}
TEST(RoutingGate, GroupLimited_E64_K6_G8_Top3) {
  RefRouter r;
  r.n_groups = 8, r.topk_groups = 3;
  check_shape<64, 6>(r, 8);
}
TEST(RoutingGate, Limits_E512_K16) {
  check_shape<512, 16>({}, 9);
}
TEST(RoutingGate, TopOne_E16_K1) {
  check_shape<16, 1>({}, 10);
}

TEST(RoutingGate, AllEqualLogitsPickLowestIndices) {
  std::vector<float> equal(4 * 64, 0.25f);
  std::vector<int> index = poisoned<int>(4 * 8);
  std::vector<float> weight = poisoned<float>(4 * 8);
  FunctionKernel kernel(&route_gate_fwd_host<64, 8>);
  GateForwardArgs a;
  a.logits = equal.data();
  a.index = index.data();
  a.weight = weight.data();
  launch_route_gate_fwd(kernel, routing_problem(Family::route_gate_fwd, 64, 8, 4), Config{{"lanes", 1}, {"tokens", 1}},
                        a);
  for (int t = 0; t < 4; ++t)
    for (int r = 0; r < 8; ++r) {
      EXPECT_EQ(index[t * 8 + r], r);
      EXPECT_FLOAT_EQ(weight[t * 8 + r], 1.0f / 64);
    }
}

TEST(RoutingGate, RejectsBadGroups) {
  FunctionKernel kernel(&route_gate_fwd_host<64, 8>);
  GateForwardArgs a;
  a.params.n_groups = 7;  // does not divide E = 64
  a.params.topk_groups = 1;
  EXPECT_THROW(launch_route_gate_fwd(kernel, routing_problem(Family::route_gate_fwd, 64, 8, 4),
                                     Config{{"lanes", 1}, {"tokens", 1}}, a),
               Error);
}

// The autotuner's closed-form logit gradient (routing_reference.hpp) against central differences
// of the reference loss, for every router variant. Tolerance 1e-7 + 1e-5 * |ref|.
TEST(RoutingGate, ReferenceGradientMatchesFiniteDifferences) {
  std::mt19937 rng(77);
  for (int variant = 0; variant < 4; ++variant) {
    RefRouter r;
    r.experts = 16, r.top_k = 4, r.sigmoid = variant & 1, r.renormalize = variant >> 1;
    r.scaling = variant == 3 ? 2.5 : 1.0;
    const auto lf = random_floats(16, rng);
    std::vector<double> l(lf.begin(), lf.end());
    const auto dw = random_floats(4, rng, -1.0f, 1.0f), aux_f = random_floats(16, rng, 0.0f, 0.01f);
    const std::vector<double> aux(aux_f.begin(), aux_f.end());
    const auto index = ref_select(ref_scores(l.data(), r, nullptr), nullptr, r);
    const auto grad = ref_logit_grad(l.data(), index.data(), dw.data(), aux, 0.01, r);
    const double h = 1e-5;
    for (int e = 0; e < 16; ++e) {
      const double keep = l[e];
      l[e] = keep + h;
      const double up = ref_token_loss(l.data(), index.data(), dw.data(), aux, 0.01, r);
      l[e] = keep - h;
      const double down = ref_token_loss(l.data(), index.data(), dw.data(), aux, 0.01, r);
      l[e] = keep;
      EXPECT_TRUE(near(grad[e], (up - down) / (2 * h), 1e-7, 1e-5,
                       "variant " + std::to_string(variant) + " e=" + std::to_string(e)));
    }
  }
}

// The host's top-k round (a vectorized max over packed keys) picks what the key_beats scan of the
// GPU code picks: ties to the lower index (+0 and -0 equal), never a -inf or NaN key, E when no key
// can win; host_max_key is the largest key that is not NaN.
TEST(RoutingGate, HostSelectionAgreesWithTheKeyBeatsScan) {
  constexpr int E = 13;
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  const float specials[] = {0.0f, -0.0f, -inf, nan, -nan, 1.0f, -1.0f, inf};
  std::mt19937 rng(11);
  int none = 0;
  for (int trial = 0; trial < 20000; ++trial) {
    float key[E];
    for (float& k : key) k = rng() % 2 ? specials[rng() % 8] : float(int(rng() % 5) - 2) * 0.25f;
    if (trial % 7 == 0)
      for (float& k : key) k = rng() % 2 ? -inf : nan;
    float best_key = -inf, max = -inf;
    int best = E;
    for (int e = 0; e < E; ++e) {
      if (key[e] != -inf && key_beats(key[e], e, best_key, best)) best_key = key[e], best = e;
      if (key[e] > max) max = key[e];
    }
    none += best == E;
    ASSERT_EQ((host_best_expert<E, E>(key)), best) << "trial " << trial;
    const float got = from_ordered_key(host_max_key(key, E));
    ASSERT_TRUE(got == max) << "trial " << trial << ": " << got << " vs " << max;
  }
  EXPECT_GT(none, 0);  // the no-winner case was exercised
}

}  // namespace
}  // namespace moejit::test
