// `moejit cache export|import|merge|decisions` end to end through the real binary, with
// MOEJIT_CACHE_DIR pointing at a temp directory.
#include <gtest/gtest.h>

#include "../common/cli_run.hpp"
#include "bundle.hpp"
#include "files.hpp"
#include "fixtures.hpp"

namespace moejit {
namespace {

using testing::kToy;
using testing::kToyFile;
using testing::make_decision;
using testing::TempDir;

using test::CliRun;

CliRun moejit_cli(const TempDir& cache, const std::string& args) {
  return test::run_cli(MOEJIT_CLI, cache.path, args);
}

void write_bundle(const std::filesystem::path& path, std::vector<Decision> decisions) {
  Bundle b;
  b.exported = Provenance::here("export");
  b.decisions = std::move(decisions);
  write_file_atomic(path, render_bundle(b));
}

TEST(CacheCli, ImportExportMergeAndRefuseBadBundles) {
  TempDir cache("cli");
  const auto a = cache.path / "a.json", b = cache.path / "b.json", c = cache.path / "c.json";
  write_bundle(a, {make_decision(kToy, 1024, "a4_b4", 0.2), make_decision(kToy, 64, "a1_b1", 0.1)});
  write_bundle(b, {make_decision(kToy, 1024, "a5_b4", 0.1)});

  CliRun r = moejit_cli(cache, "cache merge " + a.string() + " " + b.string() + " -o " + c.string());
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("1 conflict(s)"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("keeps a5_b4"), std::string::npos) << r.output;

  r = moejit_cli(cache, "cache import " + c.string());
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("2 added"), std::string::npos) << r.output;
  r = moejit_cli(cache, "cache decisions");
  EXPECT_NE(r.output.find("2 decision(s)"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("a5_b4"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("+1 alt"), std::string::npos) << r.output;

  const auto exported = cache.path / "exported.json";
  r = moejit_cli(cache, "cache export -o " + exported.string());
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_EQ(parse_bundle(*read_file(exported), "x").decisions, parse_bundle(*read_file(c), "c").decisions);

  const std::string store_before = *read_file(cache.path / "tuning" / kToyFile);
  const std::string text = *read_file(c);
  write_file_atomic(cache.path / "cut.json", text.substr(0, text.size() - 40));
  r = moejit_cli(cache, "cache import " + (cache.path / "cut.json").string());
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.output.find("not valid JSON"), std::string::npos) << r.output;
  r = moejit_cli(cache, "cache import " + (cache.path / "missing.json").string());
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.output.find("does not exist"), std::string::npos) << r.output;
  EXPECT_EQ(*read_file(cache.path / "tuning" / kToyFile), store_before);
}

TEST(TuneCli, ClearErrorsForModelAndBadShape) {
  TempDir cache("cli-tune");
  // On cuda a dense model's dense products are cuBLASLt's: only its SwiGLU is a tuned kernel there.
  CliRun r = moejit_cli(cache, "tune --model dense-7b --backend cuda --families grouped_gemm_dgrad");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.output.find("selects none of the kernel families dense-7b's training step looks up on cuda"),
            std::string::npos)
      << r.output;
  r = moejit_cli(cache, "tune --model no-such-model");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.output.find("no model config named 'no-such-model'"), std::string::npos) << r.output;
  r = moejit_cli(cache, "tune --shape 1,2 --backend cuda");
  EXPECT_EQ(r.code, 2);  // a bad flag value: usage (tests/apps has every bad input)
  EXPECT_NE(r.output.find("--shape wants four positive integers"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace moejit
