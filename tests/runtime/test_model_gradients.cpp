// The whole 2-layer "1dense+SE" decoder (dense layer, MoE layer, router losses, cross-entropy) through
// the StepBackend interface on the reference backend in double, against finite differences, over
// every parameter.
#include <gtest/gtest.h>

#include <optional>

#include "../common/test_util.hpp"
#include "grad_check.hpp"
#include "model.hpp"
#include "moejit/error.hpp"
#include "param_count.hpp"
#include "reference_step_backend.hpp"

namespace moejit::runtime {
namespace {

// Central differences of the model's total loss over every parameter against its backward.
void check_every_parameter(Model<double>& model, std::mt19937_64& rng) {
  const ModelConfig& c = model.config();
  model.init(rng);
  std::vector<double> params = model.read_params();
  for (auto& p : params) p += std::normal_distribution<double>(0.0, 0.3)(rng);  // away from init symmetry
  model.write_params(params);
  const i64 B = 2, S = 5;
  std::vector<int32_t> tokens(B * S), targets(B * S);
  for (auto& t : tokens) t = int32_t(rng() % c.vocab);
  for (auto& t : targets) t = int32_t(rng() % c.vocab);
  model.zero_grad();
  model.forward(tokens.data(), targets.data(), B, S);
  model.backward(1.0);
  const std::vector<double> analytic = model.read_grads();
  auto loss = [&] {
    model.zero_losses();
    model.forward(tokens.data(), targets.data(), B, S);
    return model.read_losses().total();
  };
  for (const auto& t : model.tensors()) {
    std::vector<double> view(params.begin() + t.offset, params.begin() + t.offset + t.size);
    std::vector<double> grad(analytic.begin() + t.offset, analytic.begin() + t.offset + t.size);
    auto loss_of_view = [&] {
      std::copy(view.begin(), view.end(), params.begin() + t.offset);
      model.write_params(params);
      return loss();
    };
    test::expect_gradient(t.name, view, grad, loss_of_view, 1e-6, 1e-8, 1e-5);
    std::copy(view.begin(), view.end(), params.begin() + t.offset);
  }
}

// A 2-layer model small enough for finite differences over every parameter; `moe`: layer 1 MoE.
ModelConfig grad_config(const std::string& name, std::optional<MoeConfig> moe) {
  ModelConfig c;
  c.name = name;
  c.vocab = 11, c.seq_len = 5, c.layers = 2, c.d_model = 8, c.heads = 2, c.head_dim = 4, c.d_ffn = 6;
  if (moe) moe->dense_layers = {0};
  c.moe = moe;
  return c;
}

// A DeepSeek-V3-style MoE layer: sigmoid scores, a (random) selection bias, 4 groups / top 2,
// renormalised, scaled, 2 shared experts, a capacity that drops, and the batch- and sequence-wise aux
// losses beside the bias.
TEST(ModelGradients, DeepSeekV3StyleRouterEveryParameter) {
  MoeConfig moe;
  moe.experts = 8, moe.top_k = 3, moe.d_expert = 3, moe.shared_experts = 2, moe.d_shared = 2;
  RouterConfig& r = moe.router;
  r.score = "sigmoid", r.renormalize = true, r.groups = 4, r.topk_groups = 2, r.scaling = 2.5;
  r.bias_update_rate = 1e-3, r.capacity_factor = 0.8, r.aux_loss_coef = 0.1, r.z_loss_coef = 0.05;
  r.seq_aux_loss_coef = 0.2;
  const ModelConfig c = grad_config("grad-dsv3", moe);
  ThreadPool par(2);
  ReferenceStepBackend<double> backend(par);
  Model<double> model(c, backend);
  std::mt19937_64 rng(test::test_seed());
  ASSERT_EQ(model.state_tensors().size(), 1u);
  std::vector<double> bias(model.read_state().size());
  for (auto& b : bias) b = std::normal_distribution<double>(0.0, 0.1)(rng);
  model.write_state(bias);
  check_every_parameter(model, rng);
  EXPECT_GT(model.read_router_stats().at(0).dropped, 0) << "the capacity was meant to drop choices";
}

// Tied embeddings: the LM head is wte, whose gradient sums the embedding's and the head's; RoPE
// instead of ALiBi.
TEST(ModelGradients, TiedEmbeddingsAndRopeEveryParameter) {
  ModelConfig c = grad_config("grad-tied", std::nullopt);
  c.layers = 1;
  c.tie_embeddings = true;
  c.positions = "rope";
  ThreadPool par(1);
  ReferenceStepBackend<double> backend(par);
  Model<double> model(c, backend);
  EXPECT_THROW(model.tensor("lm_head"), Error);
  std::mt19937_64 rng(test::test_seed());
  check_every_parameter(model, rng);
}

TEST(ModelGradients, TwoLayerMoeEveryParameter) {
  MoeConfig moe;
  moe.experts = 4, moe.top_k = 2, moe.d_expert = 3, moe.shared_experts = 1, moe.d_shared = 4;
  moe.router.aux_loss_coef = 0.1;  // larger than the default so that their gradients matter in the check
  moe.router.z_loss_coef = 0.05;
  const ModelConfig c = grad_config("grad-moe", moe);
  ThreadPool par(2);
  ReferenceStepBackend<double> backend(par);
  Model<double> model(c, backend);
  std::mt19937_64 rng(test::test_seed());
  check_every_parameter(model, rng);
}

// What a runtime tensor is, in models/'s grouping (param_count.hpp).
ParamGroup group_of(const std::string& name) {
  if (name == "wte") return ParamGroup::embedding;
  if (name == "lm_head") return ParamGroup::lm_head;
  if (name.ends_with("ln1") || name.ends_with("ln2") || name == "ln_f") return ParamGroup::norm;
  if (name.find(".attn.") != std::string::npos) return ParamGroup::attention;
  if (name.find(".ffn.") != std::string::npos) return ParamGroup::dense_ffn;
  if (name.find(".moe.shared_") != std::string::npos) return ParamGroup::shared_expert;
  if (name.ends_with("moe.w_router")) return ParamGroup::router;
  if (name.find(".moe.w_") != std::string::npos) return ParamGroup::routed_expert;
  ADD_FAILURE() << "unknown tensor " << name;
  return ParamGroup::norm;
}

// The parameters an instantiated model allocates are `moejit plan`'s count (models/count_params),
// in total and per group, for every shipped config small enough to instantiate here.
TEST(ModelGradients, ParameterCountMatchesPlan) {
  ThreadPool par(1);
  ReferenceStepBackend<float> backend(par);
  int checked = 0;
  for (const auto& name : list_model_configs()) {
    const ModelConfig c = find_model_config(name);
    const ParamCounts plan = count_params(c);
    if (c.scope != ModelScope::model || plan.total > 20'000'000) continue;
    Model<float> model(c, backend);
    EXPECT_EQ(model.param_count(), plan.total) << name;
    int64_t by_group[kParamGroupCount] = {};
    for (const auto& t : model.tensors()) by_group[static_cast<int>(group_of(t.name))] += t.size;
    for (int g = 0; g < kParamGroupCount; ++g)
      EXPECT_EQ(by_group[g], plan.by_group[g]) << name << " " << to_string(static_cast<ParamGroup>(g));
    ++checked;
  }
  EXPECT_GE(checked, 6) << "tiny-* and micro-* configs";
}

// The whole-model configs of public MoE models pass the trainer's checks (RoPE, their routers, shared
// experts), with their published sizes: DeepSeekMoE 16.4B, OLMoE 6.9B parameters.
TEST(ModelGradients, PublicWholeModelConfigsAreTrainable) {
  for (auto [name, billions] : {std::pair{"deepseekmoe-16b-model", 16.4}, {"olmoe-1b-7b-model", 6.9}}) {
    const ModelConfig c = find_model_config(name);
    EXPECT_NO_THROW(check_trainable(c)) << name;
    EXPECT_NEAR(double(count_params(c).total) / 1e9, billions, 0.05) << name;
    EXPECT_EQ(c.positions, "rope") << name;
  }
}

// Every unsupported field in one message, each with its fix.
TEST(ModelGradients, UntrainableConfigIsAClearError) {
  ModelConfig c = find_model_config("micro-moe");
  c.positions = "rope", c.heads = 64, c.head_dim = 1;  // RoPE rotates pairs
  c.moe->top_k = 17, c.moe->experts = 640, c.moe->router.groups = 64, c.moe->router.topk_groups = 2;
  ThreadPool par(1);
  ReferenceStepBackend<float> backend(par);
  try {
    Model<float> model(c, backend);
    FAIL() << "an untrainable config was accepted";
  } catch (const Error& e) {
    const std::string what = e.what();
    for (const char* field : {"4 problem(s)", "head_dim must be even", "\"experts\"", "\"top_k\"", "\"groups\""})
      EXPECT_NE(what.find(field), std::string::npos) << field << " in: " << what;
  }
}

}  // namespace
}  // namespace moejit::runtime
