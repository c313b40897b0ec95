// The lookup ladder on the toy backend: every rung, rejection of a changed template hash, of a
// config the device cannot run, counters, and the info log line naming the rung.
#include <gtest/gtest.h>

#include "files.hpp"
#include "fixtures.hpp"
#include "lookup.hpp"
#include "moejit/log.hpp"
#include "toy_backend.hpp"
#include "validators.hpp"

namespace moejit {
namespace {

using testing::TempDir;
using toy::toy_problem;

class LookupTest : public ::testing::Test {
 protected:
  void SetUp() override { toy::reset_world(); }
  Decision decision(int64_t bucket, const std::string& config, double ms = 0.1) {
    Decision d;
    d.problem = toy_problem(bucket);
    d.config = Config::parse(config);
    d.time_ms = ms;
    d.validators = current_validators(spec_, d.problem, d.config, backend_.device(), backend_.compiler());
    d.provenance = Provenance::here("exhaustive");
    return d;
  }
  LookupResult lookup(int64_t tokens) {
    TuningLookup l{TuningStore(dir_.path)};
    return l.lookup(spec_, toy_problem(tokens), backend_);
  }
  TempDir dir_{"lookup"};
  toy::ToyBackend backend_;
  toy::ToySpec spec_;
};

TEST_F(LookupTest, ExactKeyAnswersFirst) {
  TuningStore(dir_.path).record({decision(256, "a5_b4"), decision(512, "a1_b1")});
  LookupResult r = lookup(200);  // bucket 256
  EXPECT_EQ(r.rung, Rung::exact);
  EXPECT_EQ(r.config.to_string(), "a5_b4");
  ASSERT_TRUE(r.decision);
  EXPECT_EQ(r.decision->problem.tokens, 256);
}

TEST_F(LookupTest, NearestBucketWhenTheExactOneIsMissing) {
  TuningStore(dir_.path).record({decision(64, "a1_b1"), decision(4096, "a2_b2")});
  LookupResult r = lookup(1024);  // 4096 is 2 doublings away, 64 is 4
  EXPECT_EQ(r.rung, Rung::nearest_bucket);
  EXPECT_EQ(r.config.to_string(), "a2_b2");
  EXPECT_EQ(lookup(100).config.to_string(), "a1_b1");  // bucket 128: 64 is nearest
  // Equidistant (256 vs 1024 from 512): the larger bucket.
  TuningStore(dir_.path).record({decision(256, "a3_b1"), decision(1024, "a4_b1")});
  EXPECT_EQ(lookup(512).config.to_string(), "a4_b1");
}

TEST_F(LookupTest, SameArchOtherDeviceBeforeTheHeuristic) {
  Decision other = decision(256, "a3_b4");
  other.validators.device = "Toy CPU Pro";
  other.validators.compute_units = 64;
  other.validators.driver = "2.0";
  Decision other_arch = decision(256, "a1_b2");
  other_arch.validators.arch = "toy2";
  TuningStore(dir_.path).record({other, other_arch});
  LookupResult r = lookup(256);
  EXPECT_EQ(r.rung, Rung::same_arch);
  EXPECT_EQ(r.config.to_string(), "a3_b4");
  EXPECT_EQ(r.decision->validators.device, "Toy CPU Pro");
}

TEST_F(LookupTest, HeuristicWhenNothingApplies) {
  LookupResult r = lookup(256);
  EXPECT_EQ(r.rung, Rung::heuristic);
  EXPECT_EQ(r.config.to_string(), "a2_b2");
  EXPECT_FALSE(r.decision);
}

TEST_F(LookupTest, ChangedTemplateHashRejectsTheDecision) {
  toy::world().include_dirs = {dir_.path.string()};
  toy::world().template_include = "toy_template.h";
  write_file_atomic(dir_.path / "toy_template.h", "// version 1\n");
  TuningStore(dir_.path).record({decision(256, "a5_b4")});
  EXPECT_EQ(lookup(256).rung, Rung::exact);
  write_file_atomic(dir_.path / "toy_template.h", "// version 2, edited\n");
  LookupResult r = lookup(256);
  EXPECT_EQ(r.rung, Rung::heuristic);
  EXPECT_EQ(r.config.to_string(), "a2_b2");
}

TEST_F(LookupTest, ConfigTheDeviceCannotRunIsSkipped) {
  TuningStore(dir_.path).record({decision(256, "a8_b4")});
  EXPECT_EQ(lookup(256).rung, Rung::exact);
  toy::world().max_product = 16;  // a8_b4 is now pruned for this problem/device
  EXPECT_EQ(lookup(256).rung, Rung::heuristic);
}

TEST_F(LookupTest, CountsRungsAndLogsTheAnswerAtInfo) {
  TuningStore(dir_.path).record({decision(256, "a5_b4")});
  const RungCounts before = global_rung_counts();
  TuningLookup l{TuningStore(dir_.path)};
  set_log_level(LogLevel::info);
  ::testing::internal::CaptureStderr();
  l.lookup(spec_, toy_problem(256), backend_);
  l.lookup(spec_, toy_problem(256), backend_);
  l.lookup(spec_, toy_problem(64), backend_);
  toy::world().plans.clear();
  Problem unknown = toy_problem(256);
  unknown.row_shape().width = 48;
  l.lookup(spec_, unknown, backend_);
  const std::string log = ::testing::internal::GetCapturedStderr();
  set_log_level(LogLevel::warn);
  EXPECT_EQ(l.counts()[Rung::exact], 2);
  EXPECT_EQ(l.counts()[Rung::nearest_bucket], 1);
  EXPECT_EQ(l.counts()[Rung::heuristic], 1);
  EXPECT_EQ(l.counts().total(), 4);
  EXPECT_EQ(global_rung_counts().total() - before.total(), 4);
  EXPECT_NE(log.find("a5_b4 (rung exact"), std::string::npos) << log;
  EXPECT_NE(log.find("(rung heuristic)"), std::string::npos) << log;
}

}  // namespace
}  // namespace moejit
