// One training step through the model on the host backend equals the same step on the reference
// backend: the loss and every gradient, on a dense and an MoE config, with a routing that leaves
// experts empty and one skewed onto a few experts. Both backends run fp32; they differ in how the
// kernels order their sums, so the comparison is per tensor within
//   |host - reference| <= kAtol * max|reference over the tensor| + kRtol * |reference|.
#include <gtest/gtest.h>

#include <cstdlib>

#include "../common/test_util.hpp"
#include "host_step_backend.hpp"
#include "model.hpp"
#include "model_config.hpp"

namespace moejit::runtime {
namespace {

constexpr double kAtol = 2e-5, kRtol = 2e-4;

struct StepResult {
  LossSums losses;
  std::vector<float> grads;
};

StepResult one_step(StepBackend<float>& backend, const ModelConfig& c, const std::vector<float>& params,
                    const std::vector<float>& state, const std::vector<int32_t>& tokens,
                    const std::vector<int32_t>& targets, i64 B, i64 S) {
  Model<float> model(c, backend);
  model.write_params(params);
  model.write_state(state);
  model.zero_grad();
  model.zero_losses();
  model.forward(tokens.data(), targets.data(), B, S);
  model.backward(0.5f);  // a loss scale, as with two micro-batches
  return {model.read_losses(), model.read_grads()};
}

struct Case {
  std::string config;
  i64 B, S;
  bool skew;                   // route every token of the MoE layer to the first experts
  double capacity_factor = 0;  // > 0: replaces the config's (drops choices)
  bool tie_embeddings = false;
  std::string positions = "alibi";
};

// Random weights (away from the init's symmetry). `skew`: channel 0 of every token embedding is a
// large constant, so the residual stream's channel 0 is positive for every token, and the routers
// weigh it +3 for experts 0..K-1 and -3 for the others: every token picks experts 0..K-1 and the
// others stay empty.
std::vector<float> random_params(Model<float>& model, bool skew, std::mt19937_64& rng) {
  model.init(rng);
  std::vector<float> p = model.read_params();
  std::normal_distribution<float> noise(0.0f, 0.05f);
  for (auto& x : p) x += noise(rng);
  if (!skew) return p;
  const ModelConfig& c = model.config();
  const i64 C = c.d_model;
  const ParamTensor& wte = model.tensor("wte");
  for (i64 v = 0; v < c.vocab; ++v) p[wte.offset + v * C] = 5.0f;
  for (int l = 0; l < c.layers; ++l) {
    if (c.is_dense_layer(l)) continue;
    const ParamTensor& t = model.tensor("layers." + std::to_string(l) + ".moe.w_router");
    for (i64 e = 0; e < c.moe->experts; ++e) p[t.offset + e * C] = e < c.moe->top_k ? 3.0f : -3.0f;
  }
  return p;
}

// How many routed experts of the model got no gradient at all (no tokens).
int empty_experts(const Model<float>& model, const std::vector<float>& grads) {
  int empty = 0;
  for (const auto& t : model.tensors()) {
    if (!t.name.ends_with("moe.w_up")) continue;
    const i64 E = t.shape[0], per = t.size / E;
    for (i64 e = 0; e < E; ++e) {
      bool zero = true;
      for (i64 i = 0; i < per && zero; ++i) zero = grads[t.offset + e * per + i] == 0.0f;
      empty += zero;
    }
  }
  return empty;
}

void check_case(const Case& k, uint64_t seed) {
  SCOPED_TRACE(k.config + " B " + std::to_string(k.B) + " S " + std::to_string(k.S) + (k.skew ? " skewed" : "") +
               ", seed " + std::to_string(seed));
  setenv("MOEJIT_CACHE_DIR", MOEJIT_TEST_JIT_CACHE, 1);
  test::TempDir tuning;  // no decisions: every kernel on its heuristic config
  ModelConfig c = find_model_config(k.config);
  if (k.capacity_factor > 0) c.moe->router.capacity_factor = k.capacity_factor;
  c.tie_embeddings = k.tie_embeddings;
  c.positions = k.positions;
  ThreadPool par(2);
  ReferenceStepBackend<float> reference(par);
  HostStepBackend host(par, {.kernel_threads = 0, .tuning_dir = tuning.path()});
  std::mt19937_64 rng(seed);
  Model<float> shape(c, reference);
  const std::vector<float> params = random_params(shape, k.skew, rng);
  std::vector<float> state = shape.read_state();  // the selection biases: random, as after some steps
  for (auto& b : state) b = std::normal_distribution<float>(0.0f, 0.05f)(rng);
  std::vector<int32_t> tokens(k.B * k.S), targets(k.B * k.S);
  for (auto& t : tokens) t = int32_t(rng() % c.vocab);
  for (auto& t : targets) t = int32_t(rng() % c.vocab);

  const StepResult want = one_step(reference, c, params, state, tokens, targets, k.B, k.S);
  const StepResult got = one_step(host, c, params, state, tokens, targets, k.B, k.S);
  EXPECT_NEAR(got.losses.ce, want.losses.ce, 1e-5 * std::abs(want.losses.ce));
  EXPECT_NEAR(got.losses.router, want.losses.router, 1e-6 + 1e-5 * std::abs(want.losses.router));
  for (const auto& t : shape.tensors()) {
    std::vector<double> ref(want.grads.begin() + t.offset, want.grads.begin() + t.offset + t.size);
    std::vector<float> out(got.grads.begin() + t.offset, got.grads.begin() + t.offset + t.size);
    double scale = 0;
    for (double x : ref) scale = std::max(scale, std::abs(x));
    EXPECT_GT(scale, 0.0) << t.name << ": no gradient at all";
    EXPECT_EQ(test::count_mismatches(ref, out, kAtol * scale, kRtol, t.name), 0u);
  }
  if (c.is_moe() && (k.skew || k.B * k.S * c.moe->top_k < c.moe->experts)) {
    EXPECT_GT(empty_experts(shape, want.grads), 0) << "the routing was meant to leave experts empty";
  }
}

TEST(StepBackends, HostStepEqualsReferenceStepDense) {
  check_case({"micro-dense", 2, 48, false}, test::test_seed());
  check_case({"micro-dense", 2, 48, false, 0, /*tie_embeddings=*/true, "rope"}, test::test_seed() + 1);
}

TEST(StepBackends, HostStepEqualsReferenceStepMoe) {
  const uint64_t seed = test::test_seed();
  check_case({"micro-moe", 2, 48, false}, seed);
  check_case({"micro-moe", 1, 3, false}, seed + 1);  // 6 choices over 8 experts: some stay empty
  check_case({"micro-moe", 2, 48, true}, seed + 2);  // skewed onto experts 0 and 1
}

// Sigmoid scores, selection bias, 4 groups / top 2, renormalised, scaled, 2 shared experts; and with a
// capacity that drops choices.
TEST(StepBackends, HostStepEqualsReferenceStepDeepSeekV3Style) {
  const uint64_t seed = test::test_seed();
  check_case({"micro-dsv3", 2, 48, false}, seed);
  check_case({"micro-dsv3", 2, 48, false, 0.5, false, "rope"}, seed + 1);
}

}  // namespace
}  // namespace moejit::runtime
