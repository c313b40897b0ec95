// GPU: tune SwiGLU fwd/bwd end to end on the CUDA backend (gate against the double-precision
// reference, timing, spawn isolation through `moejit tune-worker`), then look the winners up.
#include <gtest/gtest.h>

#include <filesystem>

#include "autotuner.hpp"
#include "cuda_backend.hpp"
#include "lookup.hpp"
#include "swiglu/swiglu_spec.hpp"

namespace moejit {
namespace {

class SwigluTuneGpu : public ::testing::TestWithParam<std::tuple<bool, Isolation>> {};

TEST_P(SwigluTuneGpu, TunesStoresAndLooksUp) {
  std::string why;
  if (!CudaDriver::available(&why)) GTEST_SKIP() << "no GPU: " << why;
  const auto [backward, isolation] = GetParam();
  CudaBackend backend;
  SwigluSpec spec(backward);
  auto workload = make_workload(spec.family(), "cuda");
  const Problem p(spec.family(), DType::bf16, RowsShape{6, 512}, 1000);
  const auto dir = std::filesystem::temp_directory_path() / ("moejit-gpu-tune-" + std::to_string(::getpid()));
  TuneOptions options;
  options.tuning_dir = dir;
  options.isolation = isolation;
  options.worker_command = {MOEJIT_CLI, "tune-worker", "--backend", "cuda"};
  options.progress = nullptr;
  TuneResult r = tune(backend, spec, *workload, p, options);
  std::printf("%s\n", r.summary().c_str());
  ASSERT_TRUE(r.decision);
  EXPECT_EQ(r.count(CandidateStatus::ok), static_cast<int>(r.prune.survivors.size())) << r.summary();
  TuningLookup lookup{TuningStore(dir)};
  LookupResult l = lookup.lookup(spec, p, backend);
  EXPECT_EQ(l.rung, Rung::exact);
  EXPECT_EQ(l.config, r.decision->config);
  std::filesystem::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(FwdBwd, SwigluTuneGpu,
                         ::testing::Combine(::testing::Bool(), ::testing::Values(Isolation::none, Isolation::spawn)),
                         [](const auto& param_info) {
                           return std::string(std::get<0>(param_info.param) ? "bwd_" : "fwd_") +
                                  to_string(std::get<1>(param_info.param));
                         });

}  // namespace
}  // namespace moejit
