// The autotuner on every routing family: tune() on a small problem (isolation none, few repeats)
// makes a decision, every candidate passes the workload's check (double reference), and the winner
// passes it again when loaded on its own. RoutingTuneHost runs on the host JIT backend (built with
// MOEJIT_WITH_LLVM); RoutingTuneGpu on the CUDA backend (skips with a message without a GPU).
#include <gtest/gtest.h>

#include "../common/planted_kernel.hpp"
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

// The permute / combine steps' check computes its expected rows in parallel chunks (nothing
// stored): a kernel that never ran fails it, and so does one element off by 1000 in a middle chunk
// (row 512, column 3 of the (R, D) or (T, D) output, host kernels' argument 4, f32).
class RowsCheckHost : public ::testing::TestWithParam<Family> {};

TEST_P(RowsCheckHost, CatchesUnwrittenAndWrongElementsInAnyChunk) {
  HostBackend backend(nullptr, 2);
  const KernelSpec& spec = spec_for(GetParam(), backend.name());
  Problem p(GetParam(), DType::f32, RoutingShape{16, 4, 64}, 1024);
  auto workload = make_workload(p.family, backend.name());
  workload->prepare(backend, p, 1, std::make_shared<ThreadPool>(2));
  const Config config = spec.heuristic(p, backend.device());
  const Source source = spec.render(p, config, backend.device());
  auto binary = backend.build(source);
  auto loaded = [&](bool skip, std::function<void(void**)> after) {
    LoadedCandidate c{config, {}};
    c.kernels.push_back(std::make_unique<test::PlantedKernel>(backend.load(binary, source.entries.at(0)), skip, after));
    return c;
  };
  LoadedCandidate good = loaded(false, nullptr);
  const CheckResult ok = workload->check(good);
  EXPECT_TRUE(ok.ok) << ok.detail;
  LoadedCandidate never_ran = loaded(true, nullptr);
  const CheckResult unwritten = workload->check(never_ran);
  EXPECT_FALSE(unwritten.ok);
  EXPECT_NE(unwritten.detail.find("nan"), std::string::npos) << unwritten.detail;
  LoadedCandidate off = loaded(false, [&](void** args) {
    backend.synchronize();
    (*static_cast<float**>(args[4]))[512 * 64 + 3] += 1000.0f;
  });
  const CheckResult wrong = workload->check(off);
  EXPECT_FALSE(wrong.ok);
  EXPECT_NE(wrong.detail.find("[512, 3]"), std::string::npos) << wrong.detail;
}

INSTANTIATE_TEST_SUITE_P(Families, RowsCheckHost,
                         ::testing::Values(Family::route_permute_fwd, Family::route_combine_bwd,
                                           Family::route_combine_fwd, Family::route_permute_bwd),
                         family_name);
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
