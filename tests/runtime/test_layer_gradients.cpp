// Every op's hand-written backward, through the StepBackend interface on the reference backend in
// double, against finite differences, on random inputs. Each check uses loss = sum(out * r) for a
// random r, so dout = r. The reference backend's buffers are process memory, so the checks hand it
// pointers to their own vectors.
#include <gtest/gtest.h>

#include "../common/test_util.hpp"
#include "ffn.hpp"
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

TEST(LayerGradients, Matmul) {
  std::mt19937_64 rng(test::test_seed());
  ThreadPool par(2);
  ReferenceStepBackend<double> be(par);
  const i64 N = 5, C = 7, OC = 9;
  V x = random_doubles(N * C, rng), w = random_doubles(OC * C, rng), r = random_doubles(N * OC, rng), out(N * OC);
  auto loss = [&] {
    be.matmul_fwd(p(out), p(x), p(w), N, C, OC);
    return weighted_sum(out, r);
  };
  V dx(N * C, 0), dw(OC * C, 0);
  be.matmul_bwd(p(dx), false, p(dw), p(r), p(x), p(w), N, C, OC);
  expect_gradient("matmul dx", x, dx, loss);
  expect_gradient("matmul dw", w, dw, loss);
  V dx2 = dx, dw2 = dw;  // accumulate adds to d_in, d_w always accumulates
  be.matmul_bwd(p(dx2), true, p(dw2), p(r), p(x), p(w), N, C, OC);
  for (size_t i = 0; i < dx.size(); ++i) EXPECT_NEAR(dx2[i], 2 * dx[i], 1e-12 * (1 + std::abs(dx[i])));
  for (size_t i = 0; i < dw.size(); ++i) EXPECT_NEAR(dw2[i], 2 * dw[i], 1e-12 * (1 + std::abs(dw[i])));
}

TEST(LayerGradients, RmsNorm) {
  std::mt19937_64 rng(test::test_seed());
  ThreadPool par(1);
  ReferenceStepBackend<double> be(par);
  const i64 N = 4, C = 6;
  V x = random_doubles(N * C, rng), w = random_doubles(C, rng), r = random_doubles(N * C, rng), out(N * C), rstd(N);
  auto loss = [&] {
    be.rmsnorm_fwd(p(out), p(rstd), p(x), p(w), N, C);
    return weighted_sum(out, r);
  };
  loss();
  V dx(N * C, 0), dw(C, 0);
  be.rmsnorm_bwd(p(dx), p(dw), p(r), p(x), p(w), p(rstd), N, C);
  expect_gradient("rmsnorm dx", x, dx, loss);
  expect_gradient("rmsnorm dw", w, dw, loss);
}

TEST(LayerGradients, AttentionWithAlibi) {
  std::mt19937_64 rng(test::test_seed());
  ThreadPool par(2);
  ReferenceStepBackend<double> be(par);
  const i64 B = 2, T = 5, C = 6, H = 3;
  V qkv = random_doubles(B * T * 3 * C, rng), r = random_doubles(B * T * C, rng), out(B * T * C), att(B * H * T * T);
  auto loss = [&] {
    be.attention_fwd(p(out), p(att), p(qkv), B, T, C, H, true);
    return weighted_sum(out, r);
  };
  loss();
  V dqkv(qkv.size(), std::nan(""));  // overwritten in full
  be.attention_bwd(p(dqkv), p(r), p(qkv), p(att), B, T, C, H);
  expect_gradient("attention dqkv", qkv, dqkv, loss);
}

// RoPE then attention without ALiBi, as the model runs them (the rotation in place on a copy).
TEST(LayerGradients, AttentionWithRope) {
  std::mt19937_64 rng(test::test_seed());
  ThreadPool par(2);
  ReferenceStepBackend<double> be(par);
  const i64 B = 2, T = 5, C = 8, H = 2;
  V qkv = random_doubles(B * T * 3 * C, rng), r = random_doubles(B * T * C, rng), out(B * T * C), att(B * H * T * T),
    rotated;
  auto loss = [&] {
    rotated = qkv;
    be.rope(p(rotated), B, T, C, H, false);
    be.attention_fwd(p(out), p(att), p(rotated), B, T, C, H, false);
    return weighted_sum(out, r);
  };
  loss();
  V dqkv(qkv.size(), std::nan(""));
  be.attention_bwd(p(dqkv), p(r), p(rotated), p(att), B, T, C, H);
  be.rope(p(dqkv), B, T, C, H, true);
  expect_gradient("rope attention dqkv", qkv, dqkv, loss);
  loss();            // rotated from the unperturbed qkv again
  V back = rotated;  // the inverse undoes the rotation, which is not the identity
  EXPECT_NE(rotated, qkv);
  be.rope(p(back), B, T, C, H, true);
  for (size_t i = 0; i < qkv.size(); ++i) EXPECT_NEAR(back[i], qkv[i], 1e-12) << i;
}

TEST(LayerGradients, SwigluFfn) {
  std::mt19937_64 rng(test::test_seed());
  ThreadPool par(1);
  ReferenceStepBackend<double> be(par);
  const i64 N = 4, C = 5, F = 3;
  V x = random_doubles(N * C, rng), wu = random_doubles(2 * F * C, rng), wd = random_doubles(C * F, rng),
    r = random_doubles(N * C, rng), out(N * C);
  FfnActivations a;
  auto loss = [&] {
    ffn_forward(be, nullptr, a, p(out), p(x), p(wu), p(wd), N, C, F);
    return weighted_sum(out, r);
  };
  loss();
  V dx(N * C, std::nan("")), dwu(wu.size(), 0), dwd(wd.size(), 0);
  ffn_backward(be, nullptr, a, p(dx), false, p(dwu), p(dwd), p(r), p(x), p(wu), p(wd), N, C, F);
  expect_gradient("ffn dx", x, dx, loss);
  expect_gradient("ffn dw_up", wu, dwu, loss);
  expect_gradient("ffn dw_down", wd, dwd, loss);
}

TEST(LayerGradients, EmbeddingAndCrossEntropy) {
  std::mt19937_64 rng(test::test_seed());
  ThreadPool par(1);
  ReferenceStepBackend<double> be(par);
  const i64 N = 6, Vn = 7, C = 3;
  std::vector<int32_t> tokens = {0, 3, 3, 6, 1, 2}, targets = {1, 1, 5, 0, 6, 3};
  V wte = random_doubles(Vn * C, rng), w = random_doubles(Vn * C, rng), x(N * C), logits(N * Vn), probs(N * Vn), ce(1);
  auto loss = [&] {  // embedding -> matmul -> cross-entropy
    be.embedding_fwd(p(x), p(tokens), p(wte), N, C);
    be.matmul_fwd(p(logits), p(x), p(w), N, C, Vn);
    ce[0] = 0;
    be.cross_entropy_fwd(p(probs), p(ce), p(logits), p(targets), N, Vn);
    return ce[0];
  };
  loss();
  V dlogits(N * Vn), dx(N * C), dw(w.size(), 0), dwte(wte.size(), 0);
  be.cross_entropy_bwd(p(dlogits), p(probs), p(targets), N, Vn, 1.0);
  be.matmul_bwd(p(dx), false, p(dw), p(dlogits), p(x), p(w), N, C, Vn);
  be.embedding_bwd(p(dwte), p(dx), p(tokens), N, C);
  expect_gradient("lm head dw", w, dw, loss);
  expect_gradient("embedding dwte", wte, dwte, loss);
}

// The MoE layer with the reference kernels: routed experts, shared expert, aux loss and z-loss.
TEST(LayerGradients, MoeLayerWithRouterLosses) {
  std::mt19937_64 rng(test::test_seed());
  ThreadPool par(2);
  ReferenceStepBackend<double> be(par);
  const MoeDims d{5, 4, 2, 3, 2, {0.3, 0.2}};  // C, E, K, De, Dse, {aux_coef, z_coef}
  const i64 N = 7, C = d.d_model, E = d.n_experts;
  const double scale = 0.5;  // the loss scale (gradient accumulation) reaches the router-loss terms too
  V x = random_doubles(N * C, rng), router = random_doubles(E * C, rng), up = random_doubles(E * 2 * 3 * C, rng),
    down = random_doubles(E * C * 3, rng), sup = random_doubles(2 * 2 * C, rng), sdown = random_doubles(C * 2, rng),
    r = random_doubles(N * C, rng), out(N * C);
  MoeLayer<double> layer(be, d);
  const MoeWeights weights{p(router), p(up), p(down), p(sup), p(sdown)};
  auto loss = [&] {
    layer.forward(nullptr, p(out), p(x), N, weights);
    const double* l = layer.losses().as<double>();  // the router losses carry their coefficients
    return scale * (weighted_sum(out, r) + l[0] + l[1]);
  };
  loss();
  V dx(x.size(), 0), drouter(router.size(), 0), dup(up.size(), 0), ddown(down.size(), 0), dsup(sup.size(), 0),
      dsdown(sdown.size(), 0);
  V dout(r.size());
  for (size_t i = 0; i < r.size(); ++i) dout[i] = scale * r[i];
  layer.backward(nullptr, p(dx), {p(drouter), p(dup), p(ddown), p(dsup), p(dsdown)}, p(dout), p(x), N, weights, scale);
  expect_gradient("moe dx", x, dx, loss);
  expect_gradient("moe d_router", router, drouter, loss);
  expect_gradient("moe d_w_up", up, dup, loss);
  expect_gradient("moe d_w_down", down, ddown, loss);
  expect_gradient("moe d_shared_up", sup, dsup, loss);
  expect_gradient("moe d_shared_down", sdown, dsdown, loss);
}

// AdamW with clipping through the interface against the textbook update, in double.
TEST(LayerGradients, AdamWClipsByTheGlobalNormAndDecaysOnlyMarkedSegments) {
  std::mt19937_64 rng(test::test_seed());
  ThreadPool par(1);
  ReferenceStepBackend<double> be(par);
  const i64 n = 10;
  V params = random_doubles(n, rng), grads = random_doubles(n, rng, 3.0), m = random_doubles(n, rng, 0.1),
    v = random_doubles(n, rng, 0.1), norm(1);
  for (auto& x : v) x = std::abs(x) + 0.01;  // second moments are positive
  const std::vector<ParamSegment> segments{{0, 4, true}, {4, 6, false}};
  const AdamWStep s{1e-2, 0.9, 0.95, 1e-8, 0.1, 3, 1.0};
  V want = params, wm = m, wv = v;
  double sq = 0;
  for (double g : grads) sq += g * g;
  const double total = std::sqrt(sq), clip = total > 1.0 ? 1.0 / total : 1.0;
  for (i64 i = 0; i < n; ++i) {
    const double g = grads[i] * clip;
    wm[i] = 0.9 * wm[i] + 0.1 * g;
    wv[i] = 0.95 * wv[i] + 0.05 * g * g;
    double update = wm[i] / (1 - std::pow(0.9, 3)) / (std::sqrt(wv[i] / (1 - std::pow(0.95, 3))) + 1e-8);
    if (i < 4) update += 0.1 * want[i];
    want[i] -= 1e-2 * update;
  }
  be.grad_norm(p(norm), p(grads), n);
  EXPECT_NEAR(norm[0], total, 1e-12);
  be.adamw(p(params), p(params), p(grads), p(m), p(v), p(norm), n, segments, s);
  for (i64 i = 0; i < n; ++i) {
    EXPECT_NEAR(params[i], want[i], 1e-12) << i;
    EXPECT_NEAR(m[i], wm[i], 1e-12) << i;
    EXPECT_NEAR(v[i], wv[i], 1e-12) << i;
  }
}

}  // namespace
}  // namespace moejit::runtime
