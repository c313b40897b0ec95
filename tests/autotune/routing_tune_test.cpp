// The autotuner on every routing family: tune() on a small problem (isolation none, few repeats)
// makes a decision, every candidate passes the workload's check (double reference), and the winner
// passes it again when loaded on its own. RoutingTuneHost runs on the host JIT backend (built with
// MOEJIT_WITH_LLVM); RoutingTuneGpu on the CUDA backend (skips with a message without a GPU).
#include <gtest/gtest.h>

#include "../common/test_util.hpp"
#include "autotuner.hpp"
#include "moejit/kernel_spec.hpp"
#include "routing/routing_spec.hpp"
#if MOEJIT_TEST_HOST
#include "host_backend.hpp"
#endif
#include "cuda_backend.hpp"
#include "cuda_driver.hpp"

namespace moejit {
namespace {

const Family kFamilies[] = {Family::route_gate_fwd,    Family::route_gate_bwd,    Family::route_plan,
                            Family::route_permute_fwd, Family::route_combine_bwd, Family::route_combine_fwd,
                            Family::route_permute_bwd};

std::string family_name(const ::testing::TestParamInfo<Family>& info) {
  return std::string(to_string(info.param));
}

void tune_and_recheck(Backend& backend, Family family, const Problem& shape) {
  const KernelSpec& spec = spec_for(family, backend.name());
  auto workload = make_workload(family, backend.name());
  Problem p = shape;
  p.family = family;
  test::TempDir dir;
  TuneOptions options;
  options.isolation = Isolation::none;
  options.timing.warmup = 1;
  options.timing.repeats = 3;
  options.retime_top = 2;
  options.compile_threads = 2;
  options.tuning_dir = dir.path();
  options.progress = nullptr;
  const TuneResult r = tune(backend, spec, *workload, p, options);
  ASSERT_TRUE(r.decision) << r.summary();
  for (const auto& c : r.results)
    EXPECT_EQ(c.status, CandidateStatus::ok) << to_string(family) << " " << c.config << ": " << c.detail;
  EXPECT_EQ(r.count(CandidateStatus::ok), static_cast<int>(r.prune.survivors.size())) << r.summary();
  EXPECT_GT(r.decision->throughput, 0.0);
  EXPECT_EQ(r.decision->throughput_unit, "GB/s");

  // The winner, loaded on its own, passes the check again (outputs poisoned first).
  const Source source = spec.render(r.problem, r.decision->config, backend.device());
  auto binary = backend.build(source);
  LoadedCandidate winner{r.decision->config, {}};
  for (const auto& entry : source.entries) winner.kernels.push_back(backend.load(binary, entry));
  workload->prepare(backend, r.problem, 1, std::make_shared<ThreadPool>(2));
  const CheckResult check = workload->check(winner);
  EXPECT_TRUE(check.ok) << to_string(family) << " " << r.decision->config.to_string() << ": " << check.detail;
}

Problem small_problem(DType dtype) {
  return Problem(Family::route_gate_fwd, dtype, RoutingShape{16, 4, 128}, 256);
}

#if MOEJIT_TEST_HOST
class RoutingTuneHost : public ::testing::TestWithParam<Family> {};

TEST_P(RoutingTuneHost, DecidesAndTheWinnerPassesTheCheck) {
  HostBackend backend(nullptr, 2);
  tune_and_recheck(backend, GetParam(), small_problem(DType::f32));
}

INSTANTIATE_TEST_SUITE_P(Families, RoutingTuneHost, ::testing::ValuesIn(kFamilies), family_name);
#endif

class RoutingTuneGpu : public ::testing::TestWithParam<Family> {};

TEST_P(RoutingTuneGpu, DecidesAndTheWinnerPassesTheCheck) {
  std::string why;
  if (!CudaDriver::available(&why)) GTEST_SKIP() << "no GPU: " << why;
  CudaBackend backend;
  Problem p = small_problem(DType::bf16);
  p.tokens = 1000;
  tune_and_recheck(backend, GetParam(), p);
}

INSTANTIATE_TEST_SUITE_P(Families, RoutingTuneGpu, ::testing::ValuesIn(kFamilies), family_name);

}  // namespace
}  // namespace moejit
