// The step's row and element ops written once for both backends (templates/norm, loss, optim): the
// shared code on the CPU against double references, in float and bf16 storage; the GPU wrappers and
// the deterministic reductions compiled for sm_80 and sm_90a without spills (they run where a GPU is
// lent: the runtime's GPU backend).
#include <gtest/gtest.h>

#include "../common/nvrtc_check.hpp"
#include "../common/test_util.hpp"
#include "binary_cache.hpp"
#include "compile_pool.hpp"
#include "loss/cross_entropy.h"
#include "norm/rmsnorm.h"
#include "nvrtc_compiler.hpp"
#include "optim/adamw.h"

namespace moejit {
namespace {

template <typename T>
std::vector<T> stored(const std::vector<float>& v) {
  std::vector<T> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = from_float<T>(v[i]);
  return out;
}
template <typename T>
std::vector<float> loaded(const std::vector<T>& v) {
  std::vector<float> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = to_float(v[i]);
  return out;
}

// Tolerances: fp32 arithmetic on either storage; bf16 storage rounds each output once (2^-8 relative).
template <typename T>
double rtol() {
  return std::is_same_v<T, float> ? 2e-5 : 8e-3;
}

template <typename T>
void check_rmsnorm(int64_t N, int64_t C) {
  SCOPED_TRACE("N " + std::to_string(N) + ", C " + std::to_string(C));
  std::mt19937_64 rng(test::test_seed());
  // Inputs as the storage type holds them, so the reference sees exactly what the code reads.
  const std::vector<float> x = loaded(stored<T>(test::random_floats(N * C, rng))),
                           w = loaded(stored<T>(test::random_floats(C, rng, 0.5f, 1.5f))),
                           g = loaded(stored<T>(test::random_floats(N * C, rng))),
                           dx0 = loaded(stored<T>(test::random_floats(N * C, rng)));
  std::vector<double> out_ref(N * C), r_ref(N), dx_ref(N * C), dw_ref(C, 0.0);
  for (int64_t i = 0; i < N; ++i) {
    double ss = 0, wgx = 0;
    for (int64_t j = 0; j < C; ++j) ss += double(x[i * C + j]) * x[i * C + j];
    const double r = r_ref[i] = 1.0 / std::sqrt(ss / double(C) + double(kRmsNormEps));
    for (int64_t j = 0; j < C; ++j) {
      out_ref[i * C + j] = x[i * C + j] * r * w[j];
      wgx += double(w[j]) * g[i * C + j] * x[i * C + j];
    }
    for (int64_t j = 0; j < C; ++j) {
      dx_ref[i * C + j] = dx0[i * C + j] + r * w[j] * g[i * C + j] - r * r * r * x[i * C + j] * wgx / double(C);
      dw_ref[j] += double(g[i * C + j]) * x[i * C + j] * r;
    }
  }
  const std::vector<T> xs = stored<T>(x), ws = stored<T>(w), gs = stored<T>(g);
  std::vector<T> out(N * C, from_float<T>(std::nanf(""))), dx = stored<T>(dx0);
  std::vector<float> r(N, std::nanf("")), dw(C, 0.0f);
  for (int64_t i = 0; i < N; ++i) {
    r[i] = rmsnorm_row(SingleLane{}, &xs[i * C], ws.data(), &out[i * C], C, kRmsNormEps);
    rmsnorm_row_bwd(SingleLane{}, &gs[i * C], &xs[i * C], ws.data(), r[i], &dx[i * C], C);
    for (int64_t j = 0; j < C; ++j) dw[j] += rmsnorm_dw_term(gs[i * C + j], xs[i * C + j], r[i]);
  }
  EXPECT_EQ(test::count_mismatches(r_ref, r, 1e-7, 2e-6, "rstd"), 0u);
  EXPECT_EQ(test::count_mismatches(out_ref, loaded(out), 1e-6, rtol<T>(), "out"), 0u);
  // d_x is a difference of two terms: compare against the size of the terms, not of the result.
  EXPECT_EQ(test::count_mismatches(dx_ref, loaded(dx), 4.0 * rtol<T>(), rtol<T>(), "d_x"), 0u);
  EXPECT_EQ(test::count_mismatches(dw_ref, dw, 1e-4, 1e-4, "d_w"), 0u);
}

TEST(StepOps, RmsNormRowsMatchADoubleReference) {
  for (int64_t C : {1, 7, 64, 301}) {
    check_rmsnorm<float>(5, C);
    check_rmsnorm<bf16>(5, C);
  }
}

template <typename T>
void check_cross_entropy(int64_t V, float spread) {
  SCOPED_TRACE("V " + std::to_string(V) + ", spread " + std::to_string(spread));
  std::mt19937_64 rng(test::test_seed());
  const int64_t N = 6;
  const std::vector<float> z = loaded(stored<T>(test::random_floats(N * V, rng, -spread, spread)));
  std::vector<int64_t> target(N);
  for (int64_t i = 0; i < N; ++i) target[i] = int64_t(rng() % uint64_t(V));
  const double scale = 0.37 / double(N);
  std::vector<double> p_ref(N * V), loss_ref(N), d_ref(N * V);
  for (int64_t i = 0; i < N; ++i) {
    double mx = -1e300, sum = 0;
    for (int64_t v = 0; v < V; ++v) mx = std::max(mx, double(z[i * V + v]));
    for (int64_t v = 0; v < V; ++v) sum += std::exp(double(z[i * V + v]) - mx);
    for (int64_t v = 0; v < V; ++v) p_ref[i * V + v] = std::exp(double(z[i * V + v]) - mx) / sum;
    loss_ref[i] = std::log(sum) + mx - z[i * V + target[i]];
  }
  const std::vector<T> zs = stored<T>(z);
  std::vector<T> probs(N * V, from_float<T>(std::nanf(""))), d(N * V, from_float<T>(std::nanf("")));
  std::vector<float> loss(N, std::nanf(""));
  for (int64_t i = 0; i < N; ++i) {
    loss[i] = cross_entropy_row(SingleLane{}, &zs[i * V], &probs[i * V], target[i], V);
    cross_entropy_row_bwd(SingleLane{}, &probs[i * V], &d[i * V], target[i], V, float(scale));
  }
  // The backward reads the probabilities as stored (bf16-rounded there), so its reference does too.
  const std::vector<float> p_stored = loaded(probs);
  for (int64_t i = 0; i < N; ++i)
    for (int64_t v = 0; v < V; ++v) d_ref[i * V + v] = scale * (p_stored[i * V + v] - (v == target[i] ? 1.0 : 0.0));
  EXPECT_EQ(test::count_mismatches(p_ref, p_stored, 1e-7, rtol<T>(), "probs"), 0u);
  EXPECT_EQ(test::count_mismatches(loss_ref, loss, 1e-5, 1e-5, "loss"), 0u);
  EXPECT_EQ(test::count_mismatches(d_ref, loaded(d), 1e-7, rtol<T>(), "d_logits"), 0u);
}

TEST(StepOps, CrossEntropyRowsMatchADoubleReference) {
  for (int64_t V : {2, 33, 257}) {
    check_cross_entropy<float>(V, 4.0f);
    check_cross_entropy<bf16>(V, 4.0f);
  }
  // Logits 200 apart: the target's probability underflows to 0 in fp32, its loss must not be inf.
  check_cross_entropy<float>(40, 100.0f);
}

TEST(StepOps, AdamWMatchesADoubleReferenceWithAndWithoutClippingAndDecay) {
  std::mt19937_64 rng(test::test_seed());
  const size_t n = 1000;
  const std::vector<float> p0 = test::random_floats(n, rng), g = test::random_floats(n, rng),
                           m0 = test::random_floats(n, rng, -0.1f, 0.1f), v0 = test::random_floats(n, rng, 0.0f, 0.1f);
  for (double norm : {0.5, 4.0})
    for (bool decay : {false, true})
      for (int t : {1, 10}) {
        SCOPED_TRACE("norm " + std::to_string(norm) + ", decay " + std::to_string(decay) + ", t " + std::to_string(t));
        const double b1 = 0.9, b2 = 0.95, lr = 3e-3, wd = 0.1, eps = 1e-8, max_norm = 1.0;
        const double clip = norm > max_norm ? max_norm / norm : 1.0;
        const AdamWCoefs<float> k{adamw_clip(float(norm), float(max_norm)),
                                  float(b1),
                                  float(b2),
                                  float(1 - std::pow(b1, t)),
                                  float(1 - std::pow(b2, t)),
                                  float(lr),
                                  float(wd),
                                  float(eps)};
        std::vector<double> p_ref(n), m_ref(n), v_ref(n);
        std::vector<float> p = p0, m = m0, v = v0;
        for (size_t i = 0; i < n; ++i) {
          const double gi = g[i] * clip, mi = b1 * m0[i] + (1 - b1) * gi, vi = b2 * v0[i] + (1 - b2) * gi * gi;
          const double up =
              mi / (1 - std::pow(b1, t)) / (std::sqrt(vi / (1 - std::pow(b2, t))) + eps) + (decay ? wd * p0[i] : 0.0);
          p_ref[i] = p0[i] - lr * up, m_ref[i] = mi, v_ref[i] = vi;
          adamw_update(p[i], m[i], v[i], g[i], decay, k);
        }
        EXPECT_EQ(test::count_mismatches(m_ref, m, 1e-7, 1e-5, "m"), 0u);
        EXPECT_EQ(test::count_mismatches(v_ref, v, 1e-8, 1e-5, "v"), 0u);
        // p moves by about lr per step: its error is relative to lr, not to p.
        EXPECT_EQ(test::count_mismatches(p_ref, p, lr * 1e-3, 1e-6, "p"), 0u);
      }
  EXPECT_EQ(adamw_clip(0.0f, 1.0f), 1.0f);
}

Source gpu_source(const std::string& name, const std::string& header, const std::string& config,
                  std::vector<std::string> entries) {
  Source s;
  s.family = name;
  s.config = config;
  s.file_name = name + "." + config + ".cu";
  s.code = "#include \"" + header + "\"\n";
  s.entries = std::move(entries);
  return s;
}

std::vector<Source> step_op_sources() {
  std::vector<Source> out;
  // The bf16 instances; the f32 ones and the finishing sums are compiled by
  // CudaStepOps.SourceCompilesForSm80AndSm90aWithoutSpills (tests/runtime/test_cuda_step.cpp), in the
  // one translation unit the cuda backend loads.
  const std::string type = "moejit::bf16", t = "bf16";
  out.push_back(gpu_source("rmsnorm", "norm/rmsnorm_cuda.cuh", t,
                           {"moejit::rmsnorm_fwd_kernel<" + type + ", " + type + ", 4>",
                            "moejit::rmsnorm_bwd_kernel<" + type + ", " + type + ", 4>",
                            "moejit::rmsnorm_dw_partial_kernel<" + type + ", 256>"}));
  out.push_back(gpu_source("cross_entropy", "loss/cross_entropy_cuda.cuh", t,
                           {"moejit::cross_entropy_fwd_kernel<" + type + ", " + type + ", 4>",
                            "moejit::cross_entropy_bwd_kernel<" + type + ", " + type + ", 4>"}));
  out.push_back(gpu_source("adamw", "optim/adamw_cuda.cuh", t, {"moejit::adamw_kernel<" + type + ", 256>"}));
  out.push_back(gpu_source(
      "reduce", "common/reduce_cuda.cuh", t,
      {"moejit::partial_sum_kernel<" + type + ", 256, true>", "moejit::partial_sum_kernel<" + type + ", 256, false>"}));
  return out;
}

TEST(StepOps, GpuWrappersCompileForSm80AndSm90aWithoutSpills) {
  test::TempDir dir;
  BinaryCache cache(dir.path());
  const std::vector<Source> sources = step_op_sources();
  for (const char* arch : {"sm_80", "sm_90a"}) test::expect_compiles_without_spills(arch, sources, cache, 64);
}

}  // namespace
}  // namespace moejit
