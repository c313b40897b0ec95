#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

#include "../common/test_util.hpp"
#include "arch_limits.hpp"
#include "binary_cache.hpp"
#include "moejit/error.hpp"
#include "moejit/kernel_spec.hpp"
#include "nvrtc_compiler.hpp"

namespace fs = std::filesystem;

namespace moejit {
namespace {

Source swiglu_source(int64_t vec = 4) {
  auto device = arch_limits("sm_80");
  Problem p(Family::swiglu_fwd, DType::f32, RowsShape{2, 1024}, 100);
  return spec_for(Family::swiglu_fwd, "cuda").render(p, Config{{"vec", vec}, {"threads", 256}}, device);
}

TEST(BinaryCache, MissThenMemoryHitThenDiskHitWithoutCompiling) {
  test::TempDir dir;
  NvrtcCompiler compiler("sm_80");
  Source source = swiglu_source();
  {
    BinaryCache cache(dir.path());
    auto a = cache.get_or_compile(compiler, source);
    auto b = cache.get_or_compile(compiler, source);
    EXPECT_EQ(a, b);
    EXPECT_EQ(compiler.invocations(), 1);
    EXPECT_EQ(cache.stats().memory_hits, 1);
  }
  BinaryCache fresh(dir.path());  // a new process, in effect
  auto c = fresh.get_or_compile(compiler, source);
  EXPECT_EQ(compiler.invocations(), 1);
  EXPECT_EQ(fresh.stats().disk_hits, 1);
  EXPECT_FALSE(c->image.empty());
  EXPECT_FALSE(c->ptx.empty());
  EXPECT_FALSE(c->resources.empty());
  ASSERT_EQ(fresh.list().size(), 1u);
  EXPECT_EQ(fresh.list()[0].uri, "swiglu_fwd/sm_80/f32/any/vec4_threads256");
  EXPECT_EQ(fresh.list()[0].name.rfind("swiglu_fwd.sm_80.f32.any.vec4_threads256.", 0), 0u);
}

TEST(BinaryCache, KeyCoversSourceOptionsArchAndIncludedFiles) {
  test::TempDir dir;
  std::ofstream(dir.path() / "inc.cuh") << "#pragma once\n#include \"inner.cuh\"\n";
  std::ofstream(dir.path() / "inner.cuh") << "#pragma once\n__device__ int value() { return 1; }\n";
  NvrtcCompiler sm80("sm_80"), sm90("sm_90a");
  Source s{.family = "t",
           .config = "default",
           .file_name = "t.cu",
           .code = "#include \"inc.cuh\"\n__global__ void k(int* x) { x[0] = value(); }\n",
           .entries = {"k"},
           .options = {"--include-path=" + dir.path().string()}};
  const std::string base = BinaryCache::key(sm80, s);
  EXPECT_EQ(base, BinaryCache::key(sm80, s));
  EXPECT_NE(base, BinaryCache::key(sm90, s));
  Source with_option = s;
  with_option.options.push_back("-DFOO=1");
  EXPECT_NE(base, BinaryCache::key(sm80, with_option));
  // Editing a transitively included template changes the key.
  std::ofstream(dir.path() / "inner.cuh") << "#pragma once\n__device__ int value() { return 2; }\n";
  EXPECT_NE(base, BinaryCache::key(sm80, s));
}

TEST(BinaryCache, TruncatedEntryIsReportedAndRecompiled) {
  test::TempDir dir;
  NvrtcCompiler compiler("sm_80");
  Source source = swiglu_source();
  std::string stem;
  {
    BinaryCache cache(dir.path());
    auto b = cache.get_or_compile(compiler, source);
    stem = BinaryCache::entry_name(compiler, source, b->key);
  }
  fs::path image = dir.path() / (stem + ".cubin");
  ASSERT_TRUE(fs::exists(image));
  fs::resize_file(image, fs::file_size(image) / 2);
  BinaryCache reopened(dir.path());
  auto b = reopened.get_or_compile(compiler, source);
  EXPECT_EQ(reopened.stats().corrupt_entries, 1);
  EXPECT_EQ(compiler.invocations(), 2);
  EXPECT_EQ(std::string(b->image.data() + 1, 3), "ELF");
  // The rewritten entry is whole again.
  BinaryCache third(dir.path());
  third.get_or_compile(compiler, source);
  EXPECT_EQ(third.stats().corrupt_entries, 0);
  EXPECT_EQ(third.stats().disk_hits, 1);
}

TEST(BinaryCache, GarbageMetadataIsReportedAndRecompiled) {
  test::TempDir dir;
  NvrtcCompiler compiler("sm_80");
  Source source = swiglu_source();
  std::string stem;
  {
    BinaryCache cache(dir.path());
    stem = BinaryCache::entry_name(compiler, source, cache.get_or_compile(compiler, source)->key);
  }
  std::ofstream(dir.path() / (stem + ".json")) << "{\"schema\": 1, \"key\": ";
  BinaryCache reopened(dir.path());
  reopened.get_or_compile(compiler, source);
  EXPECT_EQ(reopened.stats().corrupt_entries, 1);
  EXPECT_EQ(compiler.invocations(), 2);
}

TEST(BinaryCache, UnusableDirectoryWorksUncached) {
  test::TempDir dir;
  std::ofstream(dir.path() / "a_file") << "not a directory";
  // Even root cannot create a directory under a regular file.
  BinaryCache cache(dir.path() / "a_file" / "kernels");
  NvrtcCompiler compiler("sm_80");
  auto b = cache.get_or_compile(compiler, swiglu_source());
  EXPECT_FALSE(b->image.empty());
  cache.get_or_compile(compiler, swiglu_source());
  EXPECT_EQ(compiler.invocations(), 1);  // the memory cache still works
  EXPECT_TRUE(cache.list().empty());
}

TEST(BinaryCache, CompileErrorsReachEveryWaiterAndAreNotCached) {
  test::TempDir dir;
  BinaryCache cache(dir.path());
  NvrtcCompiler compiler("sm_80");
  Source bad{
      .family = "bad", .config = "default", .file_name = "bad.cu", .code = "__global__ void k( {}\n", .entries = {"k"}};
  EXPECT_THROW(cache.get_or_compile(compiler, bad), CompileError);
  EXPECT_THROW(cache.get_or_compile(compiler, bad), CompileError);
  EXPECT_EQ(compiler.invocations(), 2);
  EXPECT_TRUE(cache.list().empty());
}

TEST(BinaryCache, TwoProcessesTimes32ThreadsCompileEachKernelOnce) {
  test::TempDir dir;
  const std::string cmd = std::string(MOEJIT_CACHE_STRESS) + " " + dir.path().string() + " 32 8";
  FILE* a = popen(cmd.c_str(), "r");
  FILE* b = popen(cmd.c_str(), "r");
  ASSERT_TRUE(a && b);
  long ca = -1, cb = -1;
  ASSERT_EQ(fscanf(a, "%ld", &ca), 1);
  ASSERT_EQ(fscanf(b, "%ld", &cb), 1);
  EXPECT_EQ(pclose(a), 0);
  EXPECT_EQ(pclose(b), 0);
  EXPECT_EQ(ca + cb, 8) << "process A compiled " << ca << ", process B " << cb;
  // No torn files: every entry verifies on read, no compiles needed.
  BinaryCache check(dir.path());
  EXPECT_EQ(check.list().size(), 8u);
  for (const auto& f : fs::directory_iterator(dir.path()))
    EXPECT_EQ(f.path().string().find(".tmp."), std::string::npos) << f.path();
  FILE* c = popen(cmd.c_str(), "r");
  long cc = -1;
  ASSERT_EQ(fscanf(c, "%ld", &cc), 1);
  pclose(c);
  EXPECT_EQ(cc, 0);
}

}  // namespace
}  // namespace moejit
