// The grouped GEMM workloads under the autotuner: for every family (4 host, 4 GPU; and the host
// SwiGLU families, whose check runs in parallel chunks) a small MoE
// problem is tuned end to end (isolation none, few repeats, few candidates); the decision's winner
// and the heuristic pass the workload's check, and planted wrong results fail it: a kernel that
// never runs (outputs stay NaN-poisoned) and one whose first output element is off by 1000.
// The check itself (reference, tolerance) is in autotune/grouped_gemm_workload.cpp.
#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <numeric>

#include "../common/planted_kernel.hpp"
#include "autotuner.hpp"
#include "cuda_backend.hpp"
#include "grouped_gemm/grouped_gemm_spec.hpp"
#include "grouped_gemm_workload.hpp"
#include "moejit/kernel_spec.hpp"
#if MOEJIT_WITH_LLVM
#include "host_backend.hpp"
#endif

namespace moejit {
namespace {

using test::PlantedKernel;

LoadedCandidate load(Backend& backend, const KernelSpec& spec, const Problem& p, const Config& config) {
  const Source source = spec.render(p, config, backend.device());
  LoadedCandidate c;
  c.config = config;
  for (const std::string& entry : source.entries) c.kernels.push_back(backend.load(backend.build(source), entry));
  return c;
}

// 64 tokens x top-2 over 4 experts; a grouped GEMM's K x N, or an element-wise family's width n.
Problem small_problem(Family family, DType dtype, int64_t k, int64_t n) {
  if (family_info(family).shape == ShapeKind::rows) return Problem(family, dtype, RowsShape{2, n}, 64);
  return Problem(family, dtype, GemmShape{4, 2, k, n}, 64);
}

// Tunes `p` and checks the winner, the heuristic and two planted wrong results. `corrupt_first`
// adds 1000 to output element 0 of a finished launch, given the launch's argument array.
void tune_and_verify(Backend& backend, const Problem& p, const std::function<void(void**)>& corrupt_first) {
  const KernelSpec& spec = spec_for(p.family, backend.name());
  auto workload = make_workload(p.family, backend.name());
  const auto dir = std::filesystem::temp_directory_path() / ("moejit-gg-tune-" + std::to_string(::getpid()));
  TuneOptions options;
  options.tuning_dir = dir;
  options.isolation = Isolation::none;
  options.timing.warmup = 1, options.timing.repeats = 3, options.timing.min_sample_ms = 0.01;
  options.max_candidates = 4;
  options.retime_top = 2;
  options.compile_threads = 2;
  options.progress = nullptr;
  TuneResult r = tune(backend, spec, *workload, p, options);
  std::filesystem::remove_all(dir);
  ASSERT_TRUE(r.decision) << r.summary();
  EXPECT_EQ(r.count(CandidateStatus::ok), static_cast<int>(r.results.size())) << r.summary();
  EXPECT_EQ(r.decision->throughput_unit, family_info(p.family).shape == ShapeKind::rows ? "GB/s" : "TFLOP/s");
  EXPECT_GT(r.decision->throughput, 0);

  // tune() left the workload prepared for the bucketed problem: check configs against it.
  const Problem& tuned = r.problem;
  for (const Config& config : {r.decision->config, spec.heuristic(tuned, backend.device())}) {
    LoadedCandidate c = load(backend, spec, tuned, config);
    const CheckResult check = workload->check(c);
    EXPECT_TRUE(check.ok) << config.to_string() << ": " << check.detail;
  }
  const Config heuristic = spec.heuristic(tuned, backend.device());
  for (bool skip : {true, false}) {
    LoadedCandidate c = load(backend, spec, tuned, heuristic);
    c.kernels[0] = std::make_unique<PlantedKernel>(std::move(c.kernels[0]), skip,
                                                   skip ? std::function<void(void**)>() : corrupt_first);
    const CheckResult check = workload->check(c);
    EXPECT_FALSE(check.ok) << (skip ? "a kernel that never ran" : "a corrupted element") << " passed the check";
    EXPECT_NE(check.detail.find(skip ? "nan" : "[0, 0]"), std::string::npos) << check.detail;
  }
}

TEST(GroupedGemmWorkload, SkewedOffsetsCoverEveryRowWithAnEmptyExpert) {
  for (int64_t experts : {1, 2, 4, 78, 128})
    for (int64_t rows : {0, 1, 7, 128, 393216}) {
      const auto off = skewed_offsets(rows, experts);
      ASSERT_EQ(off.size(), static_cast<size_t>(experts + 1));
      EXPECT_EQ(off.front(), 0);
      EXPECT_EQ(off.back(), rows);
      EXPECT_TRUE(std::is_sorted(off.begin(), off.end()));
      if (experts > 1) {
        EXPECT_EQ(off[experts], off[experts - 1]) << "the last expert must be empty";
      }
      if (experts >= 8 && rows >= 128 * experts) {  // skewed: the busiest expert holds over twice the lightest busy one
        EXPECT_GT(off[1] - off[0], 2 * (off[experts - 1] - off[experts - 2]));
      }
    }
  EXPECT_EQ(skewed_offsets(100, 4), skewed_offsets(100, 4));  // deterministic
}

std::string family_name(const ::testing::TestParamInfo<Family>& param) {
  return std::string(to_string(param.param));
}

#if MOEJIT_WITH_LLVM
HostBackend& host() {
  static HostBackend backend(nullptr, 2);
  return backend;
}

// Host GEMM kernels' argument 2 is the first output (Y, GU, dX or dW), an f32 pointer.
void corrupt_host_output(void** args) {
  host().synchronize();
  (*static_cast<float**>(args[2]))[0] += 1000.0f;
}

class GroupedGemmTuneHost : public ::testing::TestWithParam<Family> {};

TEST_P(GroupedGemmTuneHost, TunesAndTheCheckCatchesWrongResults) {
  tune_and_verify(host(), small_problem(GetParam(), DType::f32, 64, 48), corrupt_host_output);
}

INSTANTIATE_TEST_SUITE_P(Families, GroupedGemmTuneHost,
                         ::testing::Values(Family::grouped_gemm_fwd, Family::grouped_gemm_up_swiglu,
                                           Family::grouped_gemm_dgrad, Family::grouped_gemm_wgrad,
                                           Family::attention_scores, Family::attention_values, Family::attention_grads),
                         family_name);

// The SwiGLU workloads' parallel check (rows x F >= 2^19 elements: several chunks) under the same
// end-to-end run; host SwiGLU kernels' output is argument 1 (fwd) or 2 (bwd), f32 here.
TEST(SwigluTuneHost, TunesAndTheParallelCheckCatchesWrongResults) {
  for (const auto& [family, out_arg] : {std::pair<Family, int>{Family::swiglu_fwd, 1}, {Family::swiglu_bwd, 2}}) {
    SCOPED_TRACE(to_string(family));
    Problem p = small_problem(family, DType::f32, 64, 64);
    p.tokens = 4096;
    tune_and_verify(host(), p, [out_arg = out_arg](void** args) {
      host().synchronize();
      (*static_cast<float**>(args[out_arg]))[0] += 1000.0f;
    });
  }
}

// Beyond kReferenceMacs the reference covers a sample of rows; an unwritten output anywhere still
// fails.
TEST(GroupedGemmWorkload, LargeProblemSamplesTheReferenceButSeesEveryUnwrittenRow) {
  const Problem p = small_problem(Family::grouped_gemm_fwd, DType::f32, 64, 48);
  Problem big = p;
  big.tokens = 32768;  // 65536 rows x 3072 MACs > 2^27
  const KernelSpec& spec = spec_for(p.family, "host");
  GroupedGemmWorkload workload(Family::grouped_gemm_fwd, false);
  auto cpu = std::make_shared<ThreadPool>(2);
  workload.prepare(host(), big, 1, cpu);
  EXPECT_LT(workload.checked_rows(), 65536u);
  EXPECT_GT(workload.checked_rows(), 4u * 2);
  const Config heuristic = spec.heuristic(big, host().device());
  LoadedCandidate good = load(host(), spec, big, heuristic);
  EXPECT_TRUE(workload.check(good).ok);
  LoadedCandidate bad = load(host(), spec, big, heuristic);
  bad.kernels[0] = std::make_unique<PlantedKernel>(std::move(bad.kernels[0]), true, nullptr);
  EXPECT_FALSE(workload.check(bad).ok);
  // The next bucket reuses the inputs generated for this one (a prefix of X, all of W): still right.
  workload.prepare(host(), p, 1, cpu);
  EXPECT_EQ(workload.checked_rows(), 128u);
  LoadedCandidate small = load(host(), spec, p, heuristic);
  EXPECT_TRUE(workload.check(small).ok);
}
#endif

// GPU: the four CUDA families (bf16 inputs; fwd, up_swiglu, dgrad store bf16, wgrad f32).
class GroupedGemmTuneGpu : public ::testing::TestWithParam<Family> {};

TEST_P(GroupedGemmTuneGpu, TunesAndTheCheckCatchesWrongResults) {
  std::string why;
  if (!CudaDriver::available(&why)) GTEST_SKIP() << "no GPU: " << why;
  CudaBackend backend;
  const Family family = GetParam();
  const DType out = family == Family::grouped_gemm_wgrad ? DType::f32 : DType::bf16;
  const Problem p = small_problem(family, out, 256, 128);
  // The planted corruption runs on the heuristic: its gg::Params is argument 0 (tc80) or 2 (tc90,
  // after the two TMA maps).
  const size_t params_arg = spec_for(family, "cuda").heuristic(p, backend.device()).get("tc") == 90 ? 2 : 0;
  auto corrupt = [&](void** args) {
    backend.synchronize();
    const auto* params = static_cast<const gg::Params*>(args[params_arg]);
    void* first = family == Family::grouped_gemm_up_swiglu ? params->out_gate_up : params->out;
    if (out == DType::f32) {
      float v = 0;
      backend.copy_to_host(&v, first, 4);
      v += 1000.0f;
      backend.copy_to_device(first, &v, 4);
    } else {
      bf16 v{};
      backend.copy_to_host(&v, first, 2);
      v = from_float<bf16>(to_float(v) + 1000.0f);
      backend.copy_to_device(first, &v, 2);
    }
  };
  tune_and_verify(backend, p, corrupt);
}

INSTANTIATE_TEST_SUITE_P(Families, GroupedGemmTuneGpu,
                         ::testing::Values(Family::grouped_gemm_fwd, Family::grouped_gemm_up_swiglu,
                                           Family::grouped_gemm_dgrad, Family::grouped_gemm_wgrad),
                         family_name);

}  // namespace
}  // namespace moejit
