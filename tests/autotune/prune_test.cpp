// Pruning never drops a config that would run, and what it keeps runs: checked against NVRTC
// (sm_80, sm_90a; no GPU needed) and, for divisibility rules, against the kernel's own index
// arithmetic executed on the host with the shared MOEJIT_HD code.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "arch_limits.hpp"
#include "binary_cache.hpp"
#include "common/host_device.h"
#include "isolation.hpp"
#include "moejit/error.hpp"
#include "nvrtc_compiler.hpp"
#include "prune.hpp"
#include "swiglu/swiglu.h"  // its `#pragma unroll` is unknown to GCC: -Wno-unknown-pragmas in CMake
#include "swiglu/swiglu_spec.hpp"

namespace fs = std::filesystem;

namespace moejit {
namespace {

Problem swiglu(bool backward, DType dtype, int64_t width) {
  return Problem(backward ? Family::swiglu_bwd : Family::swiglu_fwd, dtype, RowsShape{8, width}, 16);
}

// The GPU kernel's grid-stride loop over (row, vector), run on the host for one config.
template <int VEC>
std::vector<float> run_forward_like_the_gpu(const std::vector<float>& gate_up, int64_t rows, int64_t width) {
  std::vector<float> out(static_cast<size_t>(rows * width), std::nanf(""));
  const int64_t per_row = width / VEC, total = rows * per_row;
  for (int64_t i = 0; i < total; ++i) {
    const int64_t row = i / per_row;
    swiglu_forward_vec<float, VEC>(gate_up.data(), out.data(), row, (i - row * per_row) * VEC, width);
  }
  return out;
}

TEST(Prune, DivisibilityPrunedConfigsWouldComputeWrongResults) {
  SwigluSpec spec(false);
  const Problem p = swiglu(false, DType::f32, 1002);  // 1002 % 4 != 0
  const DeviceDescription device = arch_limits("sm_90a");
  PruneReport report = enumerate_and_prune(spec, p, device);
  EXPECT_EQ(report.pruned(), 8);  // vec 4 and 8, every thread count
  EXPECT_EQ(report.reasons["width 1002 % vec 4 != 0"], 4);
  EXPECT_EQ(report.reasons["vector wider than 16 bytes"], 4);
  const int64_t rows = 3, width = p.row_shape().width;
  std::vector<float> gate_up(static_cast<size_t>(rows * 2 * width));
  for (size_t i = 0; i < gate_up.size(); ++i) gate_up[i] = std::sin(0.37f * static_cast<float>(i));
  auto unwritten = [](const std::vector<float>& v) {
    return std::count_if(v.begin(), v.end(), [](float x) { return std::isnan(x); });
  };
  EXPECT_EQ(unwritten(run_forward_like_the_gpu<2>(gate_up, rows, width)), 0);  // kept: complete
  // Pruned: misaligned vector accesses fault (as they would on the GPU) or columns stay unwritten.
  // Run it in a forked child so a fault is observed, not suffered.
  CandidateResult pruned = run_in_fork(
      "vec4",
      [&] {
        CandidateResult r;
        r.status = CandidateStatus::ok;
        r.max_error = static_cast<double>(unwritten(run_forward_like_the_gpu<4>(gate_up, rows, width)));
        return r;
      },
      30);
  EXPECT_TRUE(pruned.status == CandidateStatus::crashed ||
              (pruned.status == CandidateStatus::ok && pruned.max_error > 0))
      << to_string(pruned.status) << " " << pruned.detail;
}

// Compiles `configs` of `spec` for `arch` and checks each fits the arch: registers for a full
// block and static shared memory.
void expect_compiles_and_fits(const KernelSpec& spec, const Problem& p, const std::vector<Config>& configs,
                              const std::string& arch, BinaryCache& cache) {
  NvrtcCompiler compiler(arch);
  const DeviceDescription device = arch_limits(arch);
  for (const Config& config : configs) {
    SCOPED_TRACE(p.to_string() + " " + config.to_string() + " " + arch);
    std::shared_ptr<const Binary> binary;
    ASSERT_NO_THROW(binary = cache.get_or_compile(compiler, spec.render(p, config, device)));
    ASSERT_FALSE(binary->resources.empty());
    for (const ResourceUsage& r : binary->resources) {
      EXPECT_LE(r.registers * config.get("threads"), device.registers_per_sm);
      EXPECT_LE(r.shared_bytes, device.shared_per_block_optin);
      // Spills do not stop a config from running (it may lose the timing); they are reported.
      if (r.has_spills())
        std::printf("note: %s %s on %s spills (%lld B stores)\n", std::string(to_string(p.family)).c_str(),
                    config.to_string().c_str(), arch.c_str(), static_cast<long long>(r.spill_store_bytes));
    }
  }
}

TEST(Prune, KeptConfigsCompileWithNvrtcAndFitSm80AndSm90a) {
  const fs::path dir = fs::temp_directory_path() / ("moejit-prune-" + std::to_string(::getpid()));
  BinaryCache cache(dir);
  for (bool backward : {false, true}) {
    SwigluSpec spec(backward);
    const Problem p = swiglu(backward, backward ? DType::f32 : DType::bf16, 1408);
    for (const std::string arch : {"sm_80", "sm_90a"}) {
      PruneReport report = enumerate_and_prune(spec, p, arch_limits(arch));
      // A sample: the extremes of both parameters among the survivors (NVRTC takes ~1 s each).
      std::vector<Config> sample;
      for (const Config& c : report.survivors) {
        const int64_t vec = c.get("vec"), threads = c.get("threads");
        const bool extreme_vec =
            vec == report.survivors.front().get("vec") || vec == report.survivors.back().get("vec");
        if (extreme_vec && (threads == 128 || threads == 1024) && (arch == "sm_90a" || threads == 1024))
          sample.push_back(c);
      }
      ASSERT_FALSE(sample.empty());
      expect_compiles_and_fits(spec, p, sample, arch, cache);
    }
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace moejit
