// Every built-in CUDA kernel compiles for sm_80 and sm_90a; errors name the file and line.
#include <gtest/gtest.h>

#include <fstream>

#include "../common/test_util.hpp"
#include "arch_limits.hpp"
#include "moejit/error.hpp"
#include "moejit/kernel_spec.hpp"
#include "nvrtc_compiler.hpp"

namespace moejit {
namespace {

bool contains(const std::vector<char>& bytes, const std::string& needle) {
  return std::search(bytes.begin(), bytes.end(), needle.begin(), needle.end()) != bytes.end();
}

class EveryBuiltinKernel : public ::testing::TestWithParam<std::string> {};

// The heuristic config of every CUDA family, for a paper-shaped problem. (Whole config spaces are
// compiled by each family's own tests.)
TEST_P(EveryBuiltinKernel, CompilesWithEntrySymbolAndNoSpills) {
  const std::string arch = GetParam();
  NvrtcCompiler compiler(arch);
  DeviceDescription device = arch_limits(arch);
  for (const RegisteredSpec& registered : registered_specs()) {
    if (registered.backend != "cuda") continue;
    const KernelSpec* spec = registered.spec;
    for (DType dtype : {DType::bf16, DType::f32}) {
      // The paper's moe-2b layer (d_model 1408, d_expert 320, E 92, top-7), in each family's shape.
      Shape shape;
      switch (family_info(registered.family).shape) {
        case ShapeKind::grouped_gemm:
          shape = GemmShape{92, 7, 1408, 320};
          break;
        case ShapeKind::routing:
          shape = RoutingShape{92, 7, 1408};
          break;
        case ShapeKind::rows:
          shape = RowsShape{7, 320};
          break;
      }
      const Problem problem(registered.family, dtype, shape, 4096);
      Source source = spec->render(problem, spec->heuristic(problem, device), device);
      SCOPED_TRACE(source.uri(arch));
      Binary binary = compiler.compile(source);
      ASSERT_GT(binary.image.size(), 64u);
      EXPECT_EQ(std::string(binary.image.data() + 1, 3), "ELF");
      ASSERT_FALSE(binary.ptx.empty());
      for (const auto& entry : source.entries) {
        const std::string& symbol = binary.symbol(entry);
        EXPECT_NE(symbol, entry) << "name expression was not lowered";
        EXPECT_TRUE(contains(binary.image, symbol)) << symbol;
        EXPECT_NE(binary.ptx.find(".entry " + symbol), std::string::npos) << symbol;
        const ResourceUsage* r = binary.resources_of(entry);
        ASSERT_NE(r, nullptr) << "no ptxas report for " << symbol;
        EXPECT_FALSE(r->has_spills());
        EXPECT_GT(r->registers, 0);
        EXPECT_LE(r->shared_bytes, device.shared_per_block_optin);
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Archs, EveryBuiltinKernel, ::testing::Values("sm_80", "sm_90a"));

TEST(NvrtcCompiler, SyntaxErrorNamesFileLineAndShowsTheLine) {
  NvrtcCompiler compiler("sm_90a");
  Source source{.family = "broken",
                .config = "default",
                .file_name = "broken.default.cu",
                .code = "#include \"common/host_device.h\"\n__global__ void k(float* x) {\n  x[0] = 1.0f +;\n}\n",
                .entries = {"k"}};
  try {
    compiler.compile(source);
    FAIL() << "expected a CompileError";
  } catch (const CompileError& e) {
    std::string what = e.what();
    EXPECT_NE(what.find("broken.default.cu(3)"), std::string::npos) << what;
    EXPECT_NE(what.find("x[0] = 1.0f +;"), std::string::npos) << what;
  }
}

TEST(NvrtcCompiler, ErrorInsideAnIncludedTemplateNamesThatFile) {
  test::TempDir dir;
  std::ofstream(dir.path() / "bad_header.cuh")
      << "#pragma once\n\ninline __device__ int f() { return undefined_name; }\n";
  NvrtcCompiler compiler("sm_80");
  Source source{.family = "broken",
                .config = "default",
                .file_name = "uses_bad.cu",
                .code = "#include \"bad_header.cuh\"\n__global__ void k(int* x) { x[0] = f(); }\n",
                .entries = {"k"},
                .options = {"--include-path=" + dir.path().string()}};
  try {
    compiler.compile(source);
    FAIL() << "expected a CompileError";
  } catch (const CompileError& e) {
    std::string what = e.what();
    EXPECT_NE(what.find("bad_header.cuh(3)"), std::string::npos) << what;
    EXPECT_NE(what.find("undefined_name"), std::string::npos) << what;
  }
}

TEST(NvrtcCompiler, UnknownArchIsAClearError) {
  try {
    NvrtcCompiler compiler("sm_42");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("supported"), std::string::npos);
  }
  EXPECT_THROW(parse_family("no_such_family"), Error);
}

}  // namespace
}  // namespace moejit
