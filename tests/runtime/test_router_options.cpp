// The router options of today's MoE models in the trainer (reference backend): sigmoid or softmax
// scores, renormalised top-k, routed scaling, group-limited routing, a selection bias, capacity, the
// sequence-wise aux loss.
// Forward: the reference kernels' gating and plan equal the routing kernels' independent double
// reference (autotune/routing_reference.hpp). Backward: the MoE layer's gradients in double against
// finite differences, one case per option. Balancing: the bias update moves toward the mean load.
#include <gtest/gtest.h>

#include <numeric>

#include "../../autotune/routing_reference.hpp"
#include "../common/test_util.hpp"
#include "grad_check.hpp"
#include "moe_layer.hpp"
#include "reference_step_backend.hpp"

namespace moejit::runtime {
namespace {

using grad_check::p;
using test::expect_gradient;
using test::random_doubles;
using test::weighted_sum;
using V = std::vector<double>;

struct Option {
  std::string name;
  GateParams gate;
  i64 E = 8, K = 2;
  bool bias = false;
  double capacity_factor = 0;
  i64 d_shared = 2;    // the width of the fused shared experts (0: none)
  double seq_aux = 0;  // the sequence-wise aux loss's coefficient (sequences of 3 tokens)
};

GateParams gate(int score, int renormalize, float scaling, int groups = 1, int topk_groups = 1) {
  return {score, renormalize, scaling, groups, topk_groups};
}

std::vector<Option> options() {
  return {
      {"softmax", gate(kScoreSoftmax, 0, 1.0f)},
      {"sigmoid", gate(kScoreSigmoid, 0, 1.0f)},
      {"softmax_renormalized", gate(kScoreSoftmax, 1, 1.0f)},
      {"sigmoid_renormalized_scaled", gate(kScoreSigmoid, 1, 2.5f)},
      {"scaled", gate(kScoreSoftmax, 0, 1.75f)},
      {"groups_4_top_2", gate(kScoreSoftmax, 0, 1.0f, 4, 2)},
      {"selection_bias", gate(kScoreSigmoid, 1, 1.0f), 8, 2, true},
      {"capacity_drops", gate(kScoreSoftmax, 0, 1.0f), 8, 2, false, 0.5},
      {"no_shared_expert", gate(kScoreSoftmax, 0, 1.0f), 8, 2, false, 0, 0},
      {"sequence_aux", gate(kScoreSoftmax, 0, 1.0f), 8, 2, false, 0, 2, 0.4},
      {"deepseek_v3_style", gate(kScoreSigmoid, 1, 2.5f, 4, 2), 16, 4, true, 1.0, 4, 0.4},
  };
}

RefRouter ref_router(const Option& o) {
  RefRouter r;
  r.experts = int(o.E), r.top_k = int(o.K);
  r.sigmoid = o.gate.score == kScoreSigmoid, r.renormalize = o.gate.renormalize != 0;
  r.scaling = o.gate.scaling, r.n_groups = o.gate.n_groups, r.topk_groups = o.gate.topk_groups;
  return r;
}

// Selection biases the size of the score differences, so that they change choices; float values, so
// that the routing reference (which takes a float bias) sees the same keys.
V random_bias(i64 E, std::mt19937_64& rng) {
  V b = random_doubles(E, rng, 0.1);
  for (double& x : b) x = double(float(x));
  return b;
}

class RouterOptions : public ::testing::TestWithParam<Option> {};

TEST_P(RouterOptions, GateAndPlanEqualTheRoutingReference) {
  const Option& o = GetParam();
  std::mt19937_64 rng(test::test_seed());
  ThreadPool par(1);
  ReferenceMoeKernels<double> k(par);
  const i64 N = 37, E = o.E, K = o.K;
  const MoeShape s{N, 4, E, K, 3};
  V logits = random_doubles(N * E, rng), bias = o.bias ? random_bias(E, rng) : V{};
  std::vector<float> bias_f(bias.begin(), bias.end());
  std::vector<int32_t> index(N * K, -7);
  V weight(N * K, std::nan("")), probs(N * E, std::nan("")), lse(N, std::nan(""));
  k.gate_fwd(s, o.gate, o.bias ? bias.data() : nullptr, index.data(), weight.data(), probs.data(), lse.data(),
             logits.data());
  const RefRouter r = ref_router(o);
  for (i64 t = 0; t < N; ++t) {
    double want_lse = 0;
    const V scores = ref_scores(logits.data() + t * E, r, &want_lse);
    const std::vector<int> chosen = ref_select(scores, o.bias ? bias_f.data() : nullptr, r);
    const V w = ref_weights(scores, chosen.data(), r);
    EXPECT_NEAR(lse[t], want_lse, 1e-12) << t;
    for (i64 e = 0; e < E; ++e) EXPECT_NEAR(probs[t * E + e], scores[e], 1e-12) << t << " " << e;
    for (i64 j = 0; j < K; ++j) {
      EXPECT_EQ(index[t * K + j], chosen[j]) << "token " << t << " choice " << j;
      EXPECT_NEAR(weight[t * K + j], w[j], 1e-12) << "token " << t << " choice " << j;  // the bias never weighs
    }
  }
  const int capacity = o.capacity_factor > 0 ? int(std::ceil(o.capacity_factor * double(N * K) / double(E))) : -1;
  std::vector<int32_t> counts(E, -7), dropped(E, -7), offsets(E + 1, -7), slot(N * K, -7), rows(N * K, -7);
  V aux_scale(E), losses(2);
  k.plan(s, {0.1, 0.01}, capacity, counts.data(), dropped.data(), offsets.data(), slot.data(), rows.data(),
         aux_scale.data(), losses.data(), index.data(), probs.data(), lse.data());
  const RefPlan want = ref_plan(std::vector<int>(index.begin(), index.end()), N, int(E), int(K), capacity, 1);
  EXPECT_EQ(std::vector<int>(counts.begin(), counts.end()), want.counts);
  EXPECT_EQ(std::vector<int>(dropped.begin(), dropped.end()), want.dropped);
  EXPECT_EQ(std::vector<int>(offsets.begin(), offsets.end()), want.offsets);
  EXPECT_EQ(std::vector<int>(slot.begin(), slot.end()), want.slot);
  EXPECT_EQ(std::vector<int>(rows.begin(), rows.begin() + offsets[E]), want.row_source);
  if (o.capacity_factor > 0 && o.capacity_factor < 1) {
    EXPECT_GT(std::accumulate(dropped.begin(), dropped.end(), 0), 0) << "the capacity was meant to drop choices";
  }
}

// loss = sum(out * r) + the weighted router losses, times a loss scale, against finite differences of
// every input and weight of the layer.
TEST_P(RouterOptions, LayerGradientsMatchFiniteDifferences) {
  const Option& o = GetParam();
  std::mt19937_64 rng(test::test_seed());
  ThreadPool par(2);
  ReferenceStepBackend<double> be(par);
  const i64 N = 9, C = 5, E = o.E, F = 3, Fs = o.d_shared;
  const MoeDims d{C, E, o.K, F, Fs, {0.3, 0.2, o.seq_aux, 3}, o.gate, o.capacity_factor};
  const double scale = 0.5;
  V x = random_doubles(N * C, rng), router = random_doubles(E * C, rng), up = random_doubles(E * 2 * F * C, rng),
    down = random_doubles(E * C * F, rng), sup = random_doubles(2 * Fs * C, rng), sdown = random_doubles(C * Fs, rng),
    r = random_doubles(N * C, rng), out(N * C), bias = o.bias ? random_bias(E, rng) : V{};
  MoeLayer<double> layer(be, d);
  auto shared = [&](V& v) { return Fs ? p(v) : TypedPtr{}; };
  const MoeWeights weights{p(router), p(up), p(down), shared(sup), shared(sdown)};
  const TypedPtr b = o.bias ? p(bias) : TypedPtr{};
  auto loss = [&] {
    layer.forward(nullptr, p(out), p(x), N, weights, b);
    const double* l = layer.losses().as<double>();
    return scale * (weighted_sum(out, r) + l[0] + l[1]);
  };
  loss();
  V dx(x.size(), 0), drouter(router.size(), 0), dup(up.size(), 0), ddown(down.size(), 0), dsup(sup.size(), 0),
      dsdown(sdown.size(), 0), dout(r.size());
  for (size_t i = 0; i < r.size(); ++i) dout[i] = scale * r[i];
  layer.backward(nullptr, p(dx), {p(drouter), p(dup), p(ddown), shared(dsup), shared(dsdown)}, p(dout), p(x), N,
                 weights, scale);
  expect_gradient(o.name + " dx", x, dx, loss);
  expect_gradient(o.name + " d_router", router, drouter, loss);
  expect_gradient(o.name + " d_w_up", up, dup, loss);
  expect_gradient(o.name + " d_w_down", down, ddown, loss);
  if (Fs) {
    expect_gradient(o.name + " d_shared_up", sup, dsup, loss);
    expect_gradient(o.name + " d_shared_down", sdown, dsdown, loss);
  }
}

INSTANTIATE_TEST_SUITE_P(Options, RouterOptions, ::testing::ValuesIn(options()),
                         [](const auto& param_info) { return param_info.param.name; });

// The step's loads sum over forwards; the update moves each bias by +-rate toward the mean load (0:
// an expert exactly at the mean keeps its bias).
TEST(RouterBalancing, BiasUpdateMovesTowardTheMeanLoad) {
  ThreadPool par(1);
  ReferenceMoeKernels<double> k(par);
  const MoeShape s{6, 4, 4, 2, 3};  // 12 choices over 4 experts: mean 3
  const std::vector<int32_t> load = {5, 3, 0, 4};
  V bias = {0.5, -0.25, 0, 1};
  k.bias_update(s, bias.data(), load.data(), 0.125);
  EXPECT_EQ(bias, (V{0.375, -0.25, 0.125, 0.875}));
}

}  // namespace
}  // namespace moejit::runtime
