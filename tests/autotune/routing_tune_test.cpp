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

const char* const kFamilies[] = {"route_gate_fwd",    "route_gate_bwd",    "route_plan",       "route_permute_fwd",
                                 "route_combine_bwd", "route_combine_fwd", "route_permute_bwd"};

std::string family_name(const ::testing::TestParamInfo<const char*>& info) {
  return info.param;
}

void tune_and_recheck(Backend& backend, const std::string& family, const Problem& shape) {
  const KernelSpec& spec = find_spec(family);
  auto workload = make_workload(family);
  ASSERT_TRUE(workload) << "no workload registered for " << family;
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
    EXPECT_EQ(c.status, CandidateStatus::ok) << family << " " << c.config << ": " << c.detail;
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
  EXPECT_TRUE(check.ok) << family << " " << r.decision->config.to_string() << ": " << check.detail;
}

Problem small_problem(DType dtype) {
  Problem p;
  p.dtype = dtype;
  p.num_experts = 16;
  p.top_k = 4;
  p.d_model = 128;
  p.d_expert = 64;
  p.tokens = 256;
  return p;
}

#if MOEJIT_TEST_HOST
class RoutingTuneHost : public ::testing::TestWithParam<const char*> {};

TEST_P(RoutingTuneHost, DecidesAndTheWinnerPassesTheCheck) {
  HostBackend backend(nullptr, 2);
  tune_and_recheck(backend, GetParam(), small_problem(DType::f32));
}

INSTANTIATE_TEST_SUITE_P(Families, RoutingTuneHost, ::testing::ValuesIn(kFamilies), family_name);
#endif

class RoutingTuneGpu : public ::testing::TestWithParam<const char*> {};

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
