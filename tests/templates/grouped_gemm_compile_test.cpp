// Every grouped GEMM config of every family compiles with NVRTC for sm_80 (mma.sync path) and
// sm_90a (mma.sync and wgmma paths) without register spills and within the arch's shared-memory
// and register limits; the sm_90a path really uses wgmma and TMA; oversized configs are pruned by
// the spec before any compile. No GPU needed.
#include <gtest/gtest.h>

#include <map>

#include "arch_limits.hpp"
#include "binary_cache.hpp"
#include "compile_pool.hpp"
#include "grouped_gemm/grouped_gemm_spec.hpp"
#include "moejit/error.hpp"
#include "nvrtc_compiler.hpp"

namespace moejit {
namespace {

const int kOps[] = {gg::kFwd, gg::kUpSwiglu, gg::kDgrad, gg::kWgrad};

// A shape that prunes nothing for shape reasons.
Problem problem_for(int op) {
  return Problem(GroupedGemmSpec::family_of(op), op == gg::kWgrad ? DType::f32 : DType::bf16,
                 GemmShape{64, 8, 2048, 1408}, 4096);
}

void compile_space(const std::string& arch) {
  const DeviceDescription device = arch_limits(arch);
  NvrtcCompiler compiler(arch);
  std::vector<Source> sources;
  std::vector<std::pair<int, Config>> what;
  for (int op : kOps) {
    GroupedGemmSpec spec(GroupedGemmSpec::family_of(op));
    const Problem problem = problem_for(op);
    for (const Config& c : spec.space(problem, device)) {
      if (!spec.prune_reason(problem, c, device).empty()) continue;
      sources.push_back(spec.render(problem, c, device));
      what.emplace_back(op, c);
    }
  }
  ASSERT_FALSE(sources.empty());
  ThreadPool pool;
  auto futures = compile_all(pool, BinaryCache::global(), compiler, sources);
  for (size_t i = 0; i < futures.size(); ++i) {
    const auto& [op, config] = what[i];
    SCOPED_TRACE(sources[i].uri(arch));
    std::shared_ptr<const Binary> binary;
    try {
      binary = futures[i].get();
    } catch (const CompileError& e) {
      ADD_FAILURE() << e.what();
      continue;
    }
    const ResourceUsage* r = binary->resources_of(sources[i].entries.front());
    ASSERT_NE(r, nullptr) << binary->log;
    EXPECT_FALSE(r->has_spills()) << "spills: " << r->spill_store_bytes << " B stored, " << r->spill_load_bytes
                                  << " B loaded\n"
                                  << binary->log;
    EXPECT_EQ(r->stack_bytes, 0) << binary->log;
    EXPECT_LE(r->registers, 255);
    const int threads = GroupedGemmSpec::threads(config);
    EXPECT_LE(static_cast<int64_t>(r->registers) * threads, device.registers_per_sm) << "registers per CTA";
    EXPECT_LE(r->shared_bytes + static_cast<int64_t>(GroupedGemmSpec::shared_bytes(op, config)),
              device.shared_per_block_optin);
    if (config.get("tc") == 90) {
      EXPECT_NE(binary->ptx.find("wgmma.mma_async"), std::string::npos);
      EXPECT_NE(binary->ptx.find("cp.async.bulk.tensor"), std::string::npos);
      EXPECT_NE(binary->ptx.find("setmaxnreg"), std::string::npos);
      EXPECT_EQ(binary->log.find("C7508"), std::string::npos) << "setmaxnreg ignored:\n" << binary->log;
    } else {
      EXPECT_NE(binary->ptx.find("mma.sync.aligned.m16n8k16"), std::string::npos);
      EXPECT_NE(binary->ptx.find("ldmatrix"), std::string::npos);
    }
  }
}

TEST(GroupedGemmCompile, EveryConfigCompilesForSm80) {
  compile_space("sm_80");
}
TEST(GroupedGemmCompile, EveryConfigOfBothPathsCompilesForSm90a) {
  compile_space("sm_90a");
}

TEST(GroupedGemmSpec, PrunesWhatCannotRun) {
  const DeviceDescription h100 = arch_limits("sm_90a"), a100 = arch_limits("sm_80"), a10 = arch_limits("sm_86");
  GroupedGemmSpec fwd(Family::grouped_gemm_fwd), up(Family::grouped_gemm_up_swiglu);
  Problem p = problem_for(gg::kFwd);
  // Shared memory over the opt-in limit.
  EXPECT_NE(fwd.prune_reason(p, Config{{"tc", 90}, {"bm", 128}, {"bn", 256}, {"s", 6}}, h100).find("shared memory"),
            std::string::npos);
  EXPECT_NE(fwd.prune_reason(p, Config{{"tc", 80}, {"bm", 128}, {"bn", 128}, {"bk", 64}, {"w", 8}, {"s", 4}}, a10)
                .find("shared memory"),
            std::string::npos);
  // wgmma only on sm_90a.
  EXPECT_NE(fwd.prune_reason(p, Config{{"tc", 90}, {"bm", 128}, {"bn", 128}, {"s", 4}}, a100).find("sm_90a"),
            std::string::npos);
  EXPECT_NE(up.prune_reason(p, Config{{"tc", 90}, {"bm", 128}, {"bn", 64}, {"s", 4}}, h100).find("bn >= 128"),
            std::string::npos);
  // Widths that are not multiples of 8 are a clear spec-level error naming the fix.
  Problem odd = p;
  odd.gemm().n = 1404;
  EXPECT_NE(fwd.prune_reason(odd, fwd.heuristic(odd, h100), h100).find("multiples of 8"), std::string::npos);
  EXPECT_THROW(fwd.render(odd, fwd.heuristic(odd, h100), h100), Error);
  // The heuristic always runs, on every arch.
  for (int op : kOps)
    for (const auto& d : {h100, a100, a10, arch_limits("sm_89")}) {
      GroupedGemmSpec spec(GroupedGemmSpec::family_of(op));
      EXPECT_EQ(spec.prune_reason(problem_for(op), spec.heuristic(problem_for(op), d), d), "") << d.arch;
    }
  // sm_90a offers both paths; sm_80 only mma.sync.
  std::map<int64_t, int> paths;
  for (const Config& c : fwd.space(p, h100)) ++paths[c.get("tc")];
  EXPECT_GT(paths[80], 0);
  EXPECT_GT(paths[90], 0);
  for (const Config& c : fwd.space(p, a100)) EXPECT_EQ(c.get("tc"), 80);
}

TEST(GroupedGemmSpec, RendersOneEntryPerConfig) {
  GroupedGemmSpec wgrad(Family::grouped_gemm_wgrad);
  const Problem p = problem_for(gg::kWgrad);
  const Source s = wgrad.render(p, Config{{"tc", 90}, {"bm", 128}, {"bn", 128}, {"s", 4}}, arch_limits("sm_90a"));
  EXPECT_EQ(s.family, "grouped_gemm_wgrad");
  EXPECT_EQ(s.dtype, "f32");
  EXPECT_EQ(s.shape, "any");
  EXPECT_EQ(s.config, "tc90_bm128_bn128_s4");
  EXPECT_EQ(s.uri("sm_90a"), "grouped_gemm_wgrad/sm_90a/f32/any/tc90_bm128_bn128_s4");
  ASSERT_EQ(s.entries.size(), 1u);
  EXPECT_EQ(s.entries[0], "moejit::gg::grouped_gemm_sm90_kernel<3, float, 128, 4, 2>");
  EXPECT_NE(s.code.find("grouped_gemm_sm90.cuh"), std::string::npos);
}

}  // namespace
}  // namespace moejit
