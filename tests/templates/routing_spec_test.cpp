// Routing KernelSpecs: config spaces, pruning, heuristics, rendering for both backends; the host
// sources compile with the system C++ compiler; GPU sources compile with NVRTC for sm_80 and sm_90a
// without register spills.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "../common/nvrtc_check.hpp"
#include "arch_limits.hpp"
#include "binary_cache.hpp"
#include "compile_pool.hpp"
#include "files.hpp"
#include "kernel_dirs.hpp"
#include "moejit/error.hpp"
#include "nvrtc_compiler.hpp"
#include "routing/routing_spec.hpp"
#include "routing_test_util.hpp"

namespace moejit::test {
namespace {

const std::vector<Family> kFamilies{Family::route_gate_fwd,    Family::route_gate_bwd,    Family::route_plan,
                                    Family::route_permute_fwd, Family::route_combine_bwd, Family::route_combine_fwd,
                                    Family::route_permute_bwd};

// (E, K, d_model, dtype) of the shapes file, plus group-limited and limit shapes.
std::vector<Problem> shapes() {
  return {routing_problem(Family::route_gate_fwd, 8, 2, 4096, 4096),
          routing_problem(Family::route_gate_fwd, 64, 6, 4096, 2048),
          routing_problem(Family::route_gate_fwd, 64, 8, 4096, 2048),
          routing_problem(Family::route_gate_fwd, 128, 8, 16384, 2048),
          routing_problem(Family::route_gate_fwd, 92, 7, 4096, 1408),
          routing_problem(Family::route_gate_fwd, 78, 6, 4096, 2048, DType::f32),
          routing_problem(Family::route_gate_fwd, 256, 8, 4096, 7168),
          routing_problem(Family::route_gate_fwd, 512, 16, 1, 1024, DType::f32)};
}

TEST(RoutingSpec, RegisteredAndHeuristicsValid) {
  for (const auto& family : kFamilies) {
    const auto& spec = spec_for(family, "cuda");
    EXPECT_TRUE(spec.supports_backend("cuda"));
    EXPECT_TRUE(spec.supports_backend("host"));
    for (auto p : shapes()) {
      p.family = family;
      for (const auto& device : {arch_limits("sm_90a"), arch_limits("sm_80"), host_device()}) {
        const Config h = spec.heuristic(p, device);
        EXPECT_EQ(spec.prune_reason(p, h, device), "") << family << " " << p.to_string() << " " << h.to_string();
        size_t valid = 0;
        for (const auto& c : spec.space(p, device)) valid += spec.prune_reason(p, c, device).empty();
        EXPECT_GT(valid, 0u) << family << " " << device.backend;
      }
    }
  }
}

TEST(RoutingSpec, PruneReasonsNameTheLimit) {
  const auto& gate = spec_for(Family::route_gate_fwd, "cuda");
  const auto device = arch_limits("sm_90a");
  EXPECT_NE(gate.prune_reason(routing_problem(Family::route_gate_fwd, 600, 8, 1), Config{{"lanes", 32}, {"tokens", 4}},
                              device)
                .find("E 600"),
            std::string::npos);
  EXPECT_NE(gate.prune_reason(routing_problem(Family::route_gate_fwd, 64, 17, 1), Config{{"lanes", 32}, {"tokens", 4}},
                              device)
                .find("top_k"),
            std::string::npos);
  EXPECT_NE(gate.prune_reason(routing_problem(Family::route_gate_fwd, 512, 8, 1), Config{{"lanes", 4}, {"tokens", 16}},
                              device)
                .find("spills"),
            std::string::npos);
  const auto& rows = spec_for(Family::route_permute_fwd, "cuda");
  EXPECT_NE(rows.prune_reason(routing_problem(Family::route_gate_fwd, 64, 8, 1, 100),
                              Config{{"vec", 8}, {"lanes", 32}, {"rows", 4}}, device)
                .find("% vec"),
            std::string::npos);
  EXPECT_THROW(rows.render(routing_problem(Family::route_gate_fwd, 64, 8, 1, 100),
                           Config{{"vec", 8}, {"lanes", 32}, {"rows", 4}}, device),
               Error);
}

TEST(RoutingSpec, RendersEntriesForBothBackends) {
  const Problem p = routing_problem(Family::route_plan, 128, 8, 16384, 2048);
  const auto& plan = spec_for(Family::route_plan, "cuda");
  const Source gpu = plan.render(p, plan.heuristic(p, arch_limits("sm_90a")), arch_limits("sm_90a"));
  ASSERT_EQ(gpu.entries.size(), 5u);  // count, offsets, slots, bias update, sequence-wise aux
  EXPECT_EQ(gpu.entries[0], "moejit::route_count_kernel<128, 8, 8>");
  EXPECT_EQ(gpu.entries[4], "moejit::route_seq_aux_kernel<128, 8, 128>");
  EXPECT_NE(gpu.code.find("routing/routing_cuda.cuh"), std::string::npos);
  const Source host = plan.render(p, plan.heuristic(p, host_device()), host_device());
  ASSERT_EQ(host.entries.size(), 5u);
  EXPECT_NE(host.code.find("extern \"C\" void " + host.entries[1] + "(void** args, const moejit::HostLaunch* launch)"),
            std::string::npos);
  EXPECT_NE(host.code.find("route_slots_host<128, 8, 256>"), std::string::npos);
  EXPECT_NE(host.code.find("route_seq_aux_host<128, 8>"), std::string::npos);
}

// The host backend's input: every family's rendered host source, compiled as one C++ file.
TEST(RoutingSpec, HostSourcesCompileWithTheSystemCompiler) {
  std::string all;
  const Problem shape = routing_problem(Family::route_gate_fwd, 128, 8, 4096, 2048);
  for (const auto& family : kFamilies) {
    const auto& spec = spec_for(family, "cuda");
    all += spec.render(shape, spec.heuristic(shape, host_device()), host_device()).code;
  }
  const auto dir = std::filesystem::temp_directory_path() / ("moejit_routing_host_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  write_file_atomic(dir / "routing_all.cpp", all);
  std::string cmd = "c++ -std=c++20 -fsyntax-only -Wall -Wextra -Werror";
  for (const std::string& include : kernel_include_dirs()) cmd += " -I'" + include + "'";
  cmd += " '" + (dir / "routing_all.cpp").string() + "' 2> '" + (dir / "log.txt").string() + "'";
  const int rc = std::system(cmd.c_str());
  EXPECT_EQ(rc, 0) << cmd << "\n" << read_file(dir / "log.txt").value_or("");
  std::filesystem::remove_all(dir);
}

// NVRTC + ptxas for each family's heuristic config (and a second config) at the main shapes.
void compile_without_spills(const std::string& arch, const std::vector<Problem>& problems) {
  const DeviceDescription device = arch_limits(arch);
  std::vector<Source> sources;
  for (const auto& family : kFamilies) {
    const auto& spec = spec_for(family, "cuda");
    for (auto p : problems) {
      p.family = family;
      sources.push_back(spec.render(p, spec.heuristic(p, device), device));
    }
  }
  test::expect_compiles_without_spills(arch, sources, BinaryCache::global());
}

TEST(RoutingNvrtc, Sm90aMainShapesCompileWithoutSpills) {
  compile_without_spills("sm_90a", {routing_problem(Family::route_gate_fwd, 128, 8, 16384, 2048),
                                    routing_problem(Family::route_gate_fwd, 256, 8, 4096, 7168)});
}

TEST(RoutingNvrtc, Sm80CompilesWithoutSpills) {
  compile_without_spills("sm_80", {routing_problem(Family::route_gate_fwd, 92, 7, 4096, 1408, DType::f32)});
}

}  // namespace
}  // namespace moejit::test
