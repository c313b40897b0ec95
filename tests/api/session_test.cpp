// The C++ API (moejit/session.hpp) through libmoejit alone: a tuned decision is what lookup
// answers (rung exact) and what load runs; a bundle carries it to another cache; bad input throws
// the error type the C API maps to its codes.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <vector>

#include "moejit/session.hpp"

namespace fs = std::filesystem;
using namespace moejit;

namespace {

class SessionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("moejit-session-test-" + std::to_string(std::random_device{}()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  SessionOptions options(const std::string& sub) const { return {"host", dir_ / sub, 2}; }
  fs::path dir_;
};

// Y = X . W_e per expert segment, in double.
std::vector<double> grouped_gemm(const std::vector<float>& x, const std::vector<float>& w,
                                 const std::vector<int64_t>& offsets, int64_t k, int64_t n) {
  std::vector<double> y((offsets.back()) * n, 0.0);
  for (size_t e = 0; e + 1 < offsets.size(); ++e)
    for (int64_t r = offsets[e]; r < offsets[e + 1]; ++r)
      for (int64_t j = 0; j < n; ++j)
        for (int64_t i = 0; i < k; ++i) y[r * n + j] += static_cast<double>(x[r * k + i]) * w[(e * k + i) * n + j];
  return y;
}

TEST_F(SessionTest, TunedDecisionIsLookedUpLoadedAndTravelsInABundle) {
  const int64_t experts = 3, k = 32, n = 16, tokens = 40;
  const Problem p(Family::grouped_gemm_fwd, DType::f32, GemmShape{experts, 1, k, n}, tokens);
  Session tuner(options("a"));
  EXPECT_EQ(tuner.lookup(p).rung, Rung::heuristic);
  const Choice tuned = tuner.tune(p, {.max_candidates = 2, .max_seconds = 0, .quiet = true});
  EXPECT_EQ(tuned.rung, Rung::exact);
  EXPECT_GT(tuned.time_ms, 0);
  EXPECT_NE(tuned.uri.find("grouped_gemm_fwd/"), std::string::npos) << tuned.uri;

  std::mt19937 rng(std::random_device{}());
  std::uniform_real_distribution<float> dist(-2, 2);
  std::vector<float> x(tokens * k), w(experts * k * n), y(tokens * n, std::nanf(""));
  for (float& v : x) v = dist(rng);
  for (float& v : w) v = dist(rng);
  const std::vector<int64_t> offsets = {0, 25, 25, tokens};  // uneven, one expert empty
  auto kernel = tuner.load(p);
  EXPECT_EQ(kernel->choice().config, tuned.config);
  void* tensors[] = {x.data(), w.data(), y.data(), const_cast<int64_t*>(offsets.data())};
  kernel->launch(tensors);
  const std::vector<double> want = grouped_gemm(x, w, offsets, k, n);
  for (size_t i = 0; i < want.size(); ++i) ASSERT_NEAR(y[i], want[i], 1e-4 + 1e-4 * std::fabs(want[i])) << i;

  const fs::path bundle = dir_ / "bundle.json";
  EXPECT_EQ(tuner.export_bundle(bundle).decisions, 1);
  Session other(options("b"));
  EXPECT_EQ(other.lookup(p).rung, Rung::heuristic);
  EXPECT_EQ(other.import_bundle(bundle).added, 1);
  const Choice imported = other.lookup(p);
  EXPECT_EQ(imported.rung, Rung::exact);
  EXPECT_EQ(imported.config, tuned.config);
}

std::vector<float> random_floats(size_t n, std::mt19937& rng) {
  std::uniform_real_distribution<float> dist(-2, 2);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

void expect_near(const std::vector<double>& want, const std::vector<float>& got, const char* what) {
  ASSERT_EQ(want.size(), got.size()) << what;
  for (size_t i = 0; i < want.size(); ++i)
    ASSERT_NEAR(got[i], want[i], 1e-4 + 1e-4 * std::fabs(want[i])) << what << " element " << i;
}

// The other grouped GEMMs of an MoE layer through LoadedKernel::launch on the host, each against
// plain loops in double: up-projection with SwiGLU, dgrad, wgrad (overwrites, 0 for the empty
// expert). Outputs start as NaN, so an element left unwritten fails.
TEST_F(SessionTest, LaunchesEveryGroupedGemmOfTheLayer) {
  const int64_t E = 3, K = 24, N = 16, rows = 37;
  std::mt19937 rng(std::random_device{}());
  const std::vector<int64_t> offsets = {0, 20, 20, rows};  // expert 1 empty
  void* off = const_cast<int64_t*>(offsets.data());
  Session session(options("a"));
  const auto problem = [&](Family f) { return Problem(f, DType::f32, GemmShape{E, 1, K, N}, rows); };
  auto expert_of = [&](int64_t r) { return r < offsets[1] ? 0 : (r < offsets[2] ? 1 : 2); };

  {  // up projection: gate_up = x . w_e (w: E, K, 2N), h = silu(gate) * up
    const auto x = random_floats(rows * K, rng), w = random_floats(E * K * 2 * N, rng);
    std::vector<float> gate_up(rows * 2 * N, std::nanf("")), h(rows * N, std::nanf(""));
    void* t[] = {const_cast<float*>(x.data()), const_cast<float*>(w.data()), gate_up.data(), h.data(), off};
    session.load(problem(Family::grouped_gemm_up_swiglu))->launch(t);
    const std::vector<double> want_gu = grouped_gemm(x, w, offsets, K, 2 * N);
    std::vector<double> want_h(rows * N);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t j = 0; j < N; ++j) {
        const double g = want_gu[r * 2 * N + j], u = want_gu[r * 2 * N + N + j];
        want_h[r * N + j] = g / (1 + std::exp(-g)) * u;
      }
    expect_near(want_gu, gate_up, "gate_up");
    expect_near(want_h, h, "h");
  }
  {  // dgrad: dx = dy . w_e^T (w: E, K, N)
    const auto dy = random_floats(rows * N, rng), w = random_floats(E * K * N, rng);
    std::vector<float> dx(rows * K, std::nanf(""));
    void* t[] = {const_cast<float*>(dy.data()), const_cast<float*>(w.data()), dx.data(), off};
    session.load(problem(Family::grouped_gemm_dgrad))->launch(t);
    std::vector<double> want(rows * K, 0.0);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t i = 0; i < K; ++i)
        for (int64_t j = 0; j < N; ++j) want[r * K + i] += double(dy[r * N + j]) * w[(expert_of(r) * K + i) * N + j];
    expect_near(want, dx, "dx");
  }
  {  // wgrad: dw_e = x_e^T . dy_e, overwritten
    const auto x = random_floats(rows * K, rng), dy = random_floats(rows * N, rng);
    std::vector<float> dw(E * K * N, std::nanf(""));
    void* t[] = {const_cast<float*>(x.data()), const_cast<float*>(dy.data()), dw.data(), off};
    session.load(problem(Family::grouped_gemm_wgrad))->launch(t);
    std::vector<double> want(E * K * N, 0.0);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t i = 0; i < K; ++i)
        for (int64_t j = 0; j < N; ++j) want[(expert_of(r) * K + i) * N + j] += double(x[r * K + i]) * dy[r * N + j];
    expect_near(want, dw, "dw");
  }
}

// A whole MoE layer (tiny) tuned through the API at two token counts: every call of its step gets a
// decision, and lookup answers each from the cache afterwards.
TEST_F(SessionTest, TunesEveryCallOfALayer) {
  Session session(options("a"));
  const LayerSpec layer{.d_model = 32, .d_expert = 16, .experts = 4, .top_k = 2};
  const std::vector<int64_t> tokens = {16, 64};
  const LayerTuning t = session.tune_layer(layer, tokens, {.max_candidates = 1});
  EXPECT_EQ(t.not_started, 0);
  ASSERT_GE(t.calls.size(), 2 * 5u) << "routing, grouped GEMMs and SwiGLU for each token count";
  EXPECT_EQ(t.tuned(), int(t.calls.size()));
  for (const auto& [step, choice] : t.calls) {
    EXPECT_EQ(session.lookup(choice.problem).rung, Rung::exact) << step;
    EXPECT_EQ(session.lookup(choice.problem).config, choice.config) << step;
  }
  EXPECT_THROW(session.tune_layer({.d_model = 32, .d_expert = 16, .experts = 2, .top_k = 4}, tokens),
               InvalidProblemError);
  EXPECT_THROW(session.tune_layer(layer, std::vector<int64_t>{}), InvalidProblemError);
  EXPECT_THROW(session.tune_layer(layer, std::vector<int64_t>{0}), InvalidProblemError);
}

TEST_F(SessionTest, BadInputThrowsTheTypesTheCApiMaps) {
  Session session(options("a"));
  EXPECT_THROW(session.lookup(Problem(Family::swiglu_fwd, DType::f32, RowsShape{1, 0}, 8)), InvalidProblemError);
  EXPECT_THROW(session.lookup(Problem(Family::swiglu_fwd, DType::f32, RowsShape{1, 64}, -1)), InvalidProblemError);
  EXPECT_THROW(session.import_bundle(dir_ / "missing.json"), Error);
  EXPECT_EQ(launch_tensor_count(Family::route_plan, "host"), 0);
  EXPECT_EQ(launch_tensor_count(Family::grouped_gemm_up_swiglu, "cuda"), 5);
  SessionOptions stream_on_host = options("a");
  stream_on_host.cuda_stream = &stream_on_host;  // any non-null: refused before it is used
  try {
    Session refused(stream_on_host);
    ADD_FAILURE() << "a cuda_stream on the host backend was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cuda_stream is for the cuda backend"), std::string::npos) << e.what();
  }
  fs::create_directories(dir_ / "bad");
  std::ofstream(dir_ / "bad" / "swiglu_bwd.json") << "{";
  EXPECT_THROW(Session(options("bad")), CacheError);
}

}  // namespace
