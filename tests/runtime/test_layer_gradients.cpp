// Every layer's hand-written backward against finite differences (double), on random inputs.
// Each check uses loss = sum(out * r) for a random r, so dout = r.
#include <gtest/gtest.h>

#include "../common/test_util.hpp"
#include "attention.hpp"
#include "ffn.hpp"
#include "grad_check.hpp"
#include "moe_layer.hpp"
#include "ops.hpp"
#include "reference_moe_kernels.hpp"

namespace moejit::runtime {
namespace {

using test::expect_gradient;
using test::random_doubles;
using test::weighted_sum;
using V = std::vector<double>;

TEST(LayerGradients, Matmul) {
  std::mt19937_64 rng(test::test_seed());
  ThreadPool par(2);
  const i64 N = 5, C = 7, OC = 9;
  V x = random_doubles(N * C, rng), w = random_doubles(OC * C, rng), r = random_doubles(N * OC, rng), out(N * OC);
  auto loss = [&] {
    matmul_forward(par, out.data(), x.data(), w.data(), N, C, OC);
    return weighted_sum(out, r);
  };
  V dx(N * C, 0), dw(OC * C, 0);
  matmul_backward(par, dx.data(), dw.data(), r.data(), x.data(), w.data(), N, C, OC);
  expect_gradient("matmul dx", x, dx, loss);
  expect_gradient("matmul dw", w, dw, loss);
}

TEST(LayerGradients, RmsNorm) {
  std::mt19937_64 rng(test::test_seed());
  const i64 N = 4, C = 6;
  V x = random_doubles(N * C, rng), w = random_doubles(C, rng), r = random_doubles(N * C, rng), out(N * C), rstd(N);
  auto loss = [&] {
    rmsnorm_forward(out.data(), rstd.data(), x.data(), w.data(), N, C);
    return weighted_sum(out, r);
  };
  loss();
  V dx(N * C, 0), dw(C, 0);
  rmsnorm_backward(dx.data(), dw.data(), r.data(), x.data(), w.data(), rstd.data(), N, C);
  expect_gradient("rmsnorm dx", x, dx, loss);
  expect_gradient("rmsnorm dw", w, dw, loss);
}

TEST(LayerGradients, AttentionWithAlibi) {
  std::mt19937_64 rng(test::test_seed());
  ThreadPool par(2);
  const i64 B = 2, T = 5, C = 6, H = 3;
  V qkv = random_doubles(B * T * 3 * C, rng), r = random_doubles(B * T * C, rng), out(B * T * C), att(B * H * T * T);
  auto loss = [&] {
    attention_forward(par, out.data(), att.data(), qkv.data(), B, T, C, H);
    return weighted_sum(out, r);
  };
  loss();
  V dqkv(qkv.size(), 0);
  attention_backward(par, dqkv.data(), r.data(), qkv.data(), att.data(), B, T, C, H);
  expect_gradient("attention dqkv", qkv, dqkv, loss);
}

TEST(LayerGradients, SwigluFfn) {
  std::mt19937_64 rng(test::test_seed());
  ThreadPool par(1);
  const i64 N = 4, C = 5, F = 3;
  V x = random_doubles(N * C, rng), wu = random_doubles(2 * F * C, rng), wd = random_doubles(C * F, rng),
    r = random_doubles(N * C, rng), out(N * C);
  FfnActivations<double> a;
  auto loss = [&] {
    ffn_forward(par, nullptr, a, out.data(), x.data(), wu.data(), wd.data(), N, C, F);
    return weighted_sum(out, r);
  };
  loss();
  V dx(N * C, 0), dwu(wu.size(), 0), dwd(wd.size(), 0);
  ffn_backward(par, nullptr, a, dx.data(), dwu.data(), dwd.data(), r.data(), x.data(), wu.data(), wd.data(), N, C, F);
  expect_gradient("ffn dx", x, dx, loss);
  expect_gradient("ffn dw_up", wu, dwu, loss);
  expect_gradient("ffn dw_down", wd, dwd, loss);
}

TEST(LayerGradients, EmbeddingAndCrossEntropy) {
  std::mt19937_64 rng(test::test_seed());
  const i64 N = 6, Vn = 7, C = 3;
  std::vector<int32_t> tokens = {0, 3, 3, 6, 1, 2}, targets = {1, 1, 5, 0, 6, 3};
  V wte = random_doubles(Vn * C, rng), w = random_doubles(Vn * C, rng), x(N * C), logits(N * Vn), probs(N * Vn);
  auto loss = [&] {  // embedding -> matmul -> cross-entropy
    embedding_forward(x.data(), tokens.data(), wte.data(), N, C);
    ThreadPool par(1);
    matmul_forward(par, logits.data(), x.data(), w.data(), N, C, Vn);
    return cross_entropy_forward(probs.data(), logits.data(), targets.data(), N, Vn);
  };
  loss();
  V dlogits(N * Vn), dx(N * C, 0), dw(w.size(), 0), dwte(wte.size(), 0);
  cross_entropy_backward(dlogits.data(), probs.data(), targets.data(), N, Vn, 1.0);
  ThreadPool par(1);
  matmul_backward(par, dx.data(), dw.data(), dlogits.data(), x.data(), w.data(), N, C, Vn);
  embedding_backward(dwte.data(), dx.data(), tokens.data(), N, C);
  expect_gradient("lm head dw", w, dw, loss);
  expect_gradient("embedding dwte", wte, dwte, loss);
}

// The MoE layer with the reference kernels: routed experts, shared expert, aux loss and z-loss.
TEST(LayerGradients, MoeLayerWithRouterLosses) {
  std::mt19937_64 rng(test::test_seed());
  ThreadPool par(2);
  ReferenceMoeKernels<double> kernels(par);
  const MoeDims d{5, 4, 2, 3, 2, {0.3, 0.2}};  // C, E, K, De, Dse, {aux_coef, z_coef}
  const i64 N = 7, C = d.d_model, E = d.n_experts;
  const double scale = 0.5;  // the loss scale (gradient accumulation) reaches the router-loss terms too
  V x = random_doubles(N * C, rng), router = random_doubles(E * C, rng), up = random_doubles(E * 2 * 3 * C, rng),
    down = random_doubles(E * C * 3, rng), sup = random_doubles(2 * 2 * C, rng), sdown = random_doubles(C * 2, rng),
    r = random_doubles(N * C, rng), out(N * C);
  MoeLayer<double> layer(kernels, par, d);
  auto weights = [&] {
    return MoeWeights<const double>{router.data(), up.data(), down.data(), sup.data(), sdown.data()};
  };
  auto loss = [&] {
    layer.forward(nullptr, out.data(), x.data(), N, weights());
    return scale * (weighted_sum(out, r) + layer.aux_loss() + layer.z_loss());  // losses carry their coefs
  };
  loss();
  V dx(x.size(), 0), drouter(router.size(), 0), dup(up.size(), 0), ddown(down.size(), 0), dsup(sup.size(), 0),
      dsdown(sdown.size(), 0);
  V dout(r.size());
  for (size_t i = 0; i < r.size(); ++i) dout[i] = scale * r[i];
  layer.backward(nullptr, dx.data(), {drouter.data(), dup.data(), ddown.data(), dsup.data(), dsdown.data()},
                 dout.data(), x.data(), N, weights(), scale);
  expect_gradient("moe dx", x, dx, loss);
  expect_gradient("moe d_router", router, drouter, loss);
  expect_gradient("moe d_w_up", up, dup, loss);
  expect_gradient("moe d_w_down", down, ddown, loss);
  expect_gradient("moe d_shared_up", sup, dsup, loss);
  expect_gradient("moe d_shared_down", sdown, dsdown, loss);
}

}  // namespace
}  // namespace moejit::runtime
