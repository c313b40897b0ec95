// Host backend: Clang in-process -> object -> binary cache -> ORC, on this machine's CPU.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <random>

#include "binary_cache.hpp"
#include "host_backend.hpp"
#include "moejit/abi/host_launch.h"
#include "moejit/error.hpp"

namespace fs = std::filesystem;
using namespace moejit;

namespace {

fs::path fresh_dir(const std::string& name) {
  fs::path dir = fs::temp_directory_path() / ("moejit-" + name + "-" + std::to_string(std::random_device{}()));
  fs::remove_all(dir);
  return dir;
}

// y[i] = a * x[i] + exp(0) over a parallel-for: exercises args, libm symbols and the worker pool.
Source axpy_source(const std::string& tag = "") {
  Source s;
  s.family = "test_axpy";
  s.config = "v1";
  s.file_name = "test_axpy.v1.cpp";
  s.code = "// " + tag + "\n#include <cmath>\n#include \"moejit/abi/host_launch.h\"\n" + R"(
struct Ctx { const float* x; float* y; float a; long long n; int* seen; };
static void item(void* p, int worker, long long i) {
  Ctx& c = *static_cast<Ctx*>(p);
  c.y[i] = c.a * c.x[i] + std::exp(0.0f);
  c.seen[worker] = 1;
}
extern "C" void test_axpy(void** args, const moejit::HostLaunch* launch) {
  Ctx c{*static_cast<const float**>(args[0]), *static_cast<float**>(args[1]), *static_cast<float*>(args[2]),
        *static_cast<long long*>(args[3]), *static_cast<int**>(args[4])};
  launch->parallel_for(launch, c.n, &item, &c);
}
)";
  s.entries = {"test_axpy"};
  return s;
}

}  // namespace

TEST(HostCompiler, IdAndArchNameClangAndTheCpu) {
  HostCompiler compiler;
  EXPECT_EQ(compiler.id().rfind("clang-16", 0), 0u) << compiler.id();
  EXPECT_EQ(compiler.binary_kind(), "o");
  EXPECT_EQ(compiler.arch().rfind(compiler.target().cpu + "-", 0), 0u) << compiler.arch();
  EXPECT_FALSE(compiler.target().features.empty());
}

TEST(HostCompiler, DifferentFeatureSetGivesDifferentKey) {
  HostTarget native = HostTarget::native();
  HostTarget other = native;
  ASSERT_FALSE(other.features.empty());
  std::string& flipped = other.features.front();
  flipped[0] = flipped[0] == '+' ? '-' : '+';
  HostCompiler a(native), b(other);
  EXPECT_EQ(a.target().cpu, b.target().cpu);
  EXPECT_NE(a.arch(), b.arch());
  EXPECT_NE(BinaryCache::key(a, axpy_source()), BinaryCache::key(b, axpy_source()));
  EXPECT_EQ(BinaryCache::key(a, axpy_source()), BinaryCache::key(HostCompiler(native), axpy_source()));
}

TEST(HostBackend, CompilesLoadsAndRunsOnEveryWorker) {
  BinaryCache cache(fresh_dir("host-run"));
  HostBackend backend(&cache, 2);
  EXPECT_EQ(backend.device().backend, "host");
  EXPECT_FALSE(backend.device().name.empty());
  auto kernel = backend.load(backend.build(axpy_source()), "test_axpy");

  const long long n = 1000;
  std::vector<float> x(n);
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> dist(-1, 1);
  for (auto& v : x) v = dist(rng);
  DeviceBuffer dx = DeviceBuffer::from(backend, x), dy(backend, n * sizeof(float));
  dy.fill(0xFF);  // NaN: unwritten elements fail
  EXPECT_EQ(reinterpret_cast<uintptr_t>(dy.get()) % 64, 0u);
  std::vector<int> seen(2, 0);
  float a = 1.5f;
  int* seen_ptr = seen.data();
  void* args[] = {const_cast<void**>(dx.arg()), const_cast<void**>(dy.arg()), &a, const_cast<long long*>(&n),
                  &seen_ptr};
  LaunchDims dims;
  dims.grid[0] = 2;
  kernel->launch(dims, args);
  auto y = dy.to_host<float>();
  for (long long i = 0; i < n; ++i) ASSERT_NEAR(y[i], 1.5 * x[i] + 1.0, 1e-6 + 1e-6 * std::abs(x[i])) << i;
  EXPECT_GE(seen[0] + seen[1], 1);  // worker ids stay in [0, 2); which worker wins items is up to timing
}

TEST(HostBackend, CacheHitSkipsClangAcrossProcessesAndInMemory) {
  const fs::path dir = fresh_dir("host-cache");
  long long first_invocations = 0;
  std::string key;
  {
    BinaryCache cache(dir);
    HostBackend backend(&cache, 1);
    auto binary = backend.build(axpy_source("cache"));
    key = binary->key;
    first_invocations = backend.compiler().invocations();
    EXPECT_EQ(first_invocations, 1);
    backend.build(axpy_source("cache"));
    EXPECT_EQ(backend.compiler().invocations(), 1);  // memory hit
  }
  BinaryCache cold(dir);  // a new process's view: only the disk
  HostBackend backend(&cold, 1);
  auto binary = backend.build(axpy_source("cache"));
  EXPECT_EQ(backend.compiler().invocations(), 0);  // warm start: Clang never ran
  EXPECT_EQ(cold.stats().disk_hits, 1);
  EXPECT_EQ(binary->key, key);
  EXPECT_EQ(binary->kind, "o");
  EXPECT_NO_THROW(backend.load(binary, "test_axpy"));
  fs::remove_all(dir);
}

TEST(HostBackend, CompileErrorNamesFileAndLine) {
  HostCompiler compiler;
  Source s = axpy_source();
  s.file_name = "broken.cpp";
  s.code = "int ok = 1;\nint also_ok = 2;\nint broken = undeclared_name;\n";
  try {
    compiler.compile(s);
    FAIL() << "expected a CompileError";
  } catch (const CompileError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("broken.cpp:3:"), std::string::npos) << what;
    EXPECT_NE(what.find("int broken = undeclared_name;"), std::string::npos) << what;  // the source line
    EXPECT_EQ(what.find("moejit-jit-source"), std::string::npos) << what;              // no virtual path
  }
}

TEST(HostBackend, MissingEntrySaysExternC) {
  BinaryCache cache(fresh_dir("host-entry"));
  HostBackend backend(&cache, 1);
  auto binary = backend.build(axpy_source("entry"));
  try {
    backend.load(binary, "no_such_entry");
    FAIL() << "expected an Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("extern \"C\""), std::string::npos) << e.what();
  }
}

// An error inside a template header names that header's file and line, with the line's text.
TEST(HostBackend, CompileErrorInATemplateNamesTheTemplate) {
  HostCompiler compiler;
  Source s;
  s.family = "test_bad_tile";
  s.config = "nr24";
  s.file_name = "test_bad_tile.nr24.cpp";
  s.code =
      "#include \"host/grouped_gemm_families.h\"\n"
      "extern \"C\" void bad(void** args, const moejit::HostLaunch* launch) {\n"
      "  moejit::host::grouped_gemm_entry<moejit::host::Tile<16, 6, 24, true>, moejit::host::Family::fwd>(args, "
      "launch);\n"
      "}\n";
  s.entries = {"bad"};
  try {
    compiler.compile(s);
    FAIL() << "expected a CompileError";
  } catch (const CompileError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("host/gemm_tile.h:"), std::string::npos) << what;
    EXPECT_NE(what.find("NR must be a multiple of the vector width"), std::string::npos) << what;
  }
}
