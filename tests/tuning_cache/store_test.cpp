// The on-disk store: record/load, replace vs keep_faster, corrupt files set aside (never
// overwritten), and concurrent writers from several processes losing nothing.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include "files.hpp"
#include "fixtures.hpp"
#include "moejit/error.hpp"
#include "tuning_store.hpp"

namespace fs = std::filesystem;

namespace moejit {
namespace {

using testing::kToy;
using testing::kToyFile;
using testing::make_decision;
using testing::TempDir;

TEST(TuningStore, RecordsAndLoadsPerFamily) {
  TempDir dir("store");
  TuningStore store(dir.path);
  auto report = store.record({make_decision(kToy, 1024, "a5_b4", 0.1), make_decision(kToy, 2048, "a5_b4", 0.2),
                              make_decision(Family::route_plan, 1, "a1", 0.3)});
  EXPECT_EQ(report.added, 3);
  EXPECT_EQ(store.load(kToy).size(), 2u);
  EXPECT_EQ(store.families(), (std::vector<Family>{kToy, Family::route_plan}));
  EXPECT_EQ(store.load_all().size(), 3u);
  EXPECT_TRUE(fs::exists(dir.path / kToyFile));
  EXPECT_TRUE(store.load(Family::grouped_gemm_wgrad).empty());
}

TEST(TuningStore, ReplaceForLocalTuningKeepFasterForImports) {
  TempDir dir("policy");
  TuningStore store(dir.path);
  store.record({make_decision(kToy, 1024, "a5_b4", 0.1)});
  auto r = store.record({make_decision(kToy, 1024, "a4_b4", 0.3)});  // a re-tune replaces
  EXPECT_EQ(r.replaced, 1);
  EXPECT_EQ(store.load(kToy)[0].config.to_string(), "a4_b4");
  r = store.record({make_decision(kToy, 1024, "a5_b4", 0.1)}, TuningStore::Policy::keep_faster);
  ASSERT_EQ(r.conflicts.size(), 1u);
  EXPECT_NE(r.conflicts[0].find("keeps a5_b4"), std::string::npos);
  auto stored = store.load(kToy);
  ASSERT_EQ(stored.size(), 1u);
  EXPECT_EQ(stored[0].config.to_string(), "a5_b4");
  EXPECT_EQ(stored[0].alternatives.size(), 1u);
}

TEST(TuningStore, CorruptFileIsReportedAndSetAsideNeverOverwritten) {
  TempDir dir("corrupt");
  TuningStore store(dir.path);
  store.record({make_decision(kToy, 1024, "a5_b4", 0.1)});
  std::string good = *read_file(dir.path / kToyFile);
  write_file_atomic(dir.path / kToyFile, good.substr(0, good.size() / 2));  // truncated
  EXPECT_THROW(
      {
        try {
          store.load(kToy);
        } catch (const Error& e) {
          EXPECT_NE(std::string(e.what()).find("truncated"), std::string::npos) << e.what();
          throw;
        }
      },
      Error);
  store.record({make_decision(kToy, 2048, "a1_b1", 0.1)});
  EXPECT_EQ(store.load(kToy).size(), 1u);
  int aside = 0;
  for (const auto& e : fs::directory_iterator(dir.path))
    if (e.path().filename().string().find(std::string(kToyFile) + ".corrupt-") == 0) {
      ++aside;
      EXPECT_EQ(*read_file(e.path()), good.substr(0, good.size() / 2));
    }
  EXPECT_EQ(aside, 1);
}

// A cache written by schema 1 (overloaded problem fields, host_-prefixed family names) is refused with
// the command that rebuilds it, and nothing of it is deleted.
TEST(TuningStore, OldSchemaIsRefusedNamingTheRebuildAndKept) {
  TempDir dir("schema1");
  const std::string old_family_file =
      R"({"moejit_tuning": 1, "family": "swiglu_fwd", "decisions": [{"family": "swiglu_fwd",
          "key": "swiglu_fwd[f32,E=8,k=2,d=64,f=32,tb=1024]", "problem": {"dtype": "f32", "num_experts": 8,
          "top_k": 2, "d_model": 64, "d_expert": 32, "token_bucket": 1024}}]})";
  const std::string old_host_file = R"({"moejit_tuning": 1, "family": "host_grouped_gemm_fwd", "decisions": []})";
  write_file_atomic(dir.path / kToyFile, old_family_file);
  write_file_atomic(dir.path / "host_grouped_gemm_fwd.json", old_host_file);
  TuningStore store(dir.path);
  try {
    store.load(kToy);
    FAIL() << "a schema-1 file loaded";
  } catch (const SchemaError& e) {
    EXPECT_EQ(e.found_schema, 1);
    EXPECT_NE(std::string(e.what()).find("moejit tune --model"), std::string::npos) << e.what();
  }
  // The unknown (schema 1) family name is not listed, and not touched.
  EXPECT_EQ(store.families(), std::vector<Family>{kToy});
  // The first write keeps the old file beside the new one.
  store.record({make_decision(kToy, 1024, "a5_b4", 0.1)});
  EXPECT_EQ(store.load(kToy).size(), 1u);
  EXPECT_EQ(*read_file(fs::path(dir.path / kToyFile) += ".schema1"), old_family_file);
  EXPECT_EQ(*read_file(dir.path / "host_grouped_gemm_fwd.json"), old_host_file);
}

TEST(TuningStore, ConcurrentWritersLoseNothing) {
  TempDir dir("concurrent");
  constexpr int kWriters = 6, kEach = 8;
  std::vector<pid_t> children;
  for (int w = 0; w < kWriters; ++w) {
    pid_t pid = ::fork();
    if (pid == 0) {
      TuningStore store(dir.path);
      for (int i = 0; i < kEach; ++i)
        store.record({make_decision(kToy, int64_t{1} << (i % 16), "a" + std::to_string(w) + "_b" + std::to_string(i),
                                    0.1, "device" + std::to_string(w) + "x" + std::to_string(i))});
      ::_exit(0);
    }
    children.push_back(pid);
  }
  for (pid_t pid : children) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    EXPECT_EQ(WEXITSTATUS(status), 0);
  }
  EXPECT_EQ(TuningStore(dir.path).load(kToy).size(), size_t{kWriters * kEach});
}

}  // namespace
}  // namespace moejit
