// One training step through the model on a backend under test against the same step on the
// reference backend: the loss and every gradient, per tensor within
//   |got - reference| <= atol * max|reference over the tensor| + rtol * |reference|.
// Shared by the host backend's test (test_step_backends.cpp) and the cuda backend's (test_cuda_step.cpp).
#pragma once
#include <gtest/gtest.h>

#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "../common/test_util.hpp"
#include "model.hpp"
#include "model_config.hpp"
#include "reference_step_backend.hpp"

namespace moejit::runtime::test_step {

struct StepResult {
  LossSums losses;
  std::vector<float> grads;
  std::vector<std::vector<int32_t>> loads;  // per MoE layer and expert
};

inline StepResult one_step(StepBackend<float>& backend, const ModelConfig& c, const std::vector<float>& params,
                           const std::vector<float>& state, const std::vector<int32_t>& tokens,
                           const std::vector<int32_t>& targets, i64 B, i64 S) {
  Model<float> model(c, backend);
  model.write_params(params);
  model.write_state(state);
  model.zero_grad();
  model.zero_losses();
  model.forward(tokens.data(), targets.data(), B, S);
  model.backward(0.5f);  // a loss scale, as with two micro-batches
  return {model.read_losses(), model.read_grads(), model.read_expert_loads()};
}

struct Case {
  std::string config;
  i64 B, S;
  bool skew;                   // route every token of the MoE layer to the first experts
  double capacity_factor = 0;  // > 0: replaces the config's (drops choices)
  bool tie_embeddings = false;
  std::string positions = "alibi";
  double seq_aux_loss_coef = 0;  // > 0: replaces the config's (the sequence-wise aux loss)
};

struct Tolerance {
  double atol, rtol;  // per gradient tensor, as above
  double loss_rtol;   // the cross-entropy and router losses
};

// Random weights (away from the init's symmetry). `skew`: channel 0 of every token embedding is a
// large constant, so the residual stream's channel 0 is positive for every token, and the routers
// weigh it +3 for experts 0..K-1 and -3 for the others: every token picks experts 0..K-1 and the
// others stay empty.
inline std::vector<float> random_params(Model<float>& model, bool skew, std::mt19937_64& rng) {
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
inline int empty_experts(const Model<float>& model, const std::vector<float>& grads) {
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

// The case's step on `tested` against the reference backend from one draw of random weights and
// tokens. Returns false, asserting nothing, when the two routed differently: a token whose k-th and
// (k+1)-th scores nearly tie can pick another expert once upstream layers round differently (bf16
// on a GPU), and its gradients then differ by the whole token, which no tolerance should hide.
inline bool step_equals_reference_if_routed_alike(StepBackend<float>& tested, const Case& k, uint64_t seed,
                                                  const Tolerance& tol) {
  ModelConfig c = find_model_config(k.config);
  if (k.capacity_factor > 0) c.moe->router.capacity_factor = k.capacity_factor;
  c.tie_embeddings = k.tie_embeddings;
  c.positions = k.positions;
  if (k.seq_aux_loss_coef > 0) c.moe->router.seq_aux_loss_coef = k.seq_aux_loss_coef;
  ThreadPool par(0);
  ReferenceStepBackend<float> reference(par);
  std::mt19937_64 rng(seed);
  Model<float> shape(c, reference);
  const std::vector<float> params = random_params(shape, k.skew, rng);
  std::vector<float> state = shape.read_state();  // the selection biases: random, as after some steps
  for (auto& b : state) b = std::normal_distribution<float>(0.0f, 0.05f)(rng);
  std::vector<int32_t> tokens(k.B * k.S), targets(k.B * k.S);
  for (auto& t : tokens) t = int32_t(rng() % c.vocab);
  for (auto& t : targets) t = int32_t(rng() % c.vocab);

  const StepResult want = one_step(reference, c, params, state, tokens, targets, k.B, k.S);
  const StepResult got = one_step(tested, c, params, state, tokens, targets, k.B, k.S);
  if (got.loads != want.loads) return false;
  EXPECT_NEAR(got.losses.ce, want.losses.ce, tol.loss_rtol * std::abs(want.losses.ce));
  EXPECT_NEAR(got.losses.router, want.losses.router, 1e-6 + tol.loss_rtol * std::abs(want.losses.router));
  for (const auto& t : shape.tensors()) {
    std::vector<double> ref(want.grads.begin() + t.offset, want.grads.begin() + t.offset + t.size);
    std::vector<float> out(got.grads.begin() + t.offset, got.grads.begin() + t.offset + t.size);
    double scale = 0;
    for (double x : ref) scale = std::max(scale, std::abs(x));
    EXPECT_GT(scale, 0.0) << t.name << ": no gradient at all";
    EXPECT_EQ(test::count_mismatches(ref, out, tol.atol * scale, tol.rtol, t.name), 0u);
  }
  if (c.is_moe() && (k.skew || k.B * k.S * c.moe->top_k < c.moe->experts)) {
    EXPECT_GT(empty_experts(shape, want.grads), 0) << "the routing was meant to leave experts empty";
  }
  return true;
}

// The comparison above on the first of `draws` seeds where both backends routed alike; fails when
// none did (a routing bug, not a near-tie, once every draw disagrees).
inline void expect_step_equals_reference(StepBackend<float>& tested, const Case& k, uint64_t seed, const Tolerance& tol,
                                         int draws = 1) {
  for (int d = 0; d < draws; ++d) {
    const uint64_t s = seed + 7919 * uint64_t(d);
    SCOPED_TRACE(tested.name() + " " + k.config + " B " + std::to_string(k.B) + " S " + std::to_string(k.S) +
                 (k.skew ? " skewed" : "") + ", seed " + std::to_string(s));
    if (step_equals_reference_if_routed_alike(tested, k, s, tol)) return;
    std::printf("%s seed %llu: routed unlike the reference (a near-tie), next draw\n", k.config.c_str(),
                static_cast<unsigned long long>(s));
  }
  ADD_FAILURE() << tested.name() << " " << k.config << ": routed unlike the reference in all " << draws
                << " draws from seed " << seed;
}

}  // namespace moejit::runtime::test_step
