// The whole 2-layer "1dense+SE" decoder (dense layer, MoE layer, router losses, cross-entropy) against
// finite differences in double, over every parameter.
#include <gtest/gtest.h>

#include "../common/test_util.hpp"
#include "grad_check.hpp"
#include "model.hpp"

namespace moejit::runtime {
namespace {

TEST(ModelGradients, TwoLayerMoeEveryParameter) {
  ModelConfig c{.name = "grad-moe", .vocab = 11, .seq_len = 5, .n_layers = 2, .d_model = 8, .n_heads = 2, .d_ffn = 6};
  c.layout = "1dense+SE";
  c.n_experts = 4;
  c.top_k = 2;
  c.d_expert = 3;
  c.d_shared = 4;
  c.aux_loss_coef = 0.1;  // larger than the default so that their gradients matter in the check
  c.z_loss_coef = 0.05;
  Parallel par(2);
  Model<double> model(c, par);
  std::mt19937_64 rng(test::test_seed());
  model.init(rng);
  for (auto& p : model.params()) p += std::normal_distribution<double>(0.0, 0.3)(rng);  // away from init symmetry
  const i64 B = 2, S = 5;
  std::vector<int32_t> tokens(B * S), targets(B * S);
  for (auto& t : tokens) t = int32_t(rng() % c.vocab);
  for (auto& t : targets) t = int32_t(rng() % c.vocab);
  model.zero_grad();
  model.forward(tokens.data(), targets.data(), B, S);
  model.backward(1.0);
  std::vector<double> analytic = model.grads();
  auto loss = [&] { return model.forward(tokens.data(), targets.data(), B, S); };
  for (const auto& t : model.tensors()) {
    std::vector<double> view(model.params().begin() + t.offset, model.params().begin() + t.offset + t.size);
    std::vector<double> grad(analytic.begin() + t.offset, analytic.begin() + t.offset + t.size);
    auto loss_of_view = [&] {
      std::copy(view.begin(), view.end(), model.params().begin() + t.offset);
      return loss();
    };
    test::expect_gradient(t.name, view, grad, loss_of_view, 1e-6, 1e-8, 1e-5);
    std::copy(view.begin(), view.end(), model.params().begin() + t.offset);
  }
}

// Hook for "the parameter count of an instantiated model equals `moejit plan`'s count": until models/
// (issue 8) lands, count_params() is the planner's formula; swap in the planner's call here.
TEST(ModelGradients, ParameterCountMatchesPlan) {
  Parallel par(1);
  for (const auto& c : builtin_configs()) {
    Model<float> model(c, par);
    EXPECT_EQ(int64_t(model.params().size()), count_params(c).total) << c.name;
  }
}

}  // namespace
}  // namespace moejit::runtime
