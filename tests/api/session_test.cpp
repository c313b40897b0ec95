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

TEST_F(SessionTest, BadInputThrowsTheTypesTheCApiMaps) {
  Session session(options("a"));
  EXPECT_THROW(session.lookup(Problem(Family::swiglu_fwd, DType::f32, RowsShape{1, 0}, 8)), InvalidProblemError);
  EXPECT_THROW(session.lookup(Problem(Family::swiglu_fwd, DType::f32, RowsShape{1, 64}, -1)), InvalidProblemError);
  EXPECT_THROW(session.import_bundle(dir_ / "missing.json"), Error);
  EXPECT_EQ(launch_tensor_count(Family::route_plan, "host"), 0);
  fs::create_directories(dir_ / "bad");
  std::ofstream(dir_ / "bad" / "swiglu_bwd.json") << "{";
  EXPECT_THROW(Session(options("bad")), CacheError);
}

}  // namespace
