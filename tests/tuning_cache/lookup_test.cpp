// The lookup ladder on the toy backend: every rung, rejection of a changed template hash, of a
// config the device cannot run, counters, and the info log line naming the rung.
#include <gtest/gtest.h>

#include "bundle.hpp"
#include "files.hpp"
#include "fixtures.hpp"
#include "lookup.hpp"
#include "moejit/log.hpp"
#include "shipped.hpp"
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

// Issue 20, finding 8: each rejection names its real reason. A config that left the space is not
// reported as a changed template hash (it hashes differently too, but the template file is fine).
TEST_F(LookupTest, RejectionsNameTheirRealReason) {
  toy::world().include_dirs = {dir_.path.string()};
  toy::world().template_include = "toy_template.h";
  write_file_atomic(dir_.path / "toy_template.h", "// version 1\n");
  TuningStore(dir_.path).record({decision(256, "a8_b4"), decision(512, "a2_b4")});
  toy::world().params["a"] = {1, 2, 3, 4};  // a8 left the space
  write_file_atomic(dir_.path / "toy_template.h", "// version 2\n");
  set_log_level(LogLevel::info);
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(lookup(256).rung, Rung::heuristic);
  const std::string log = ::testing::internal::GetCapturedStderr();
  set_log_level(LogLevel::warn);
  EXPECT_NE(log.find("a8_b4 not used: its config is no longer in the swiglu_fwd config space"), std::string::npos)
      << log;
  EXPECT_NE(log.find("a2_b4 not used: template hash changed since it was tuned; re-run moejit tune"), std::string::npos)
      << log;
  EXPECT_EQ(log.find("a8_b4 not used: template hash"), std::string::npos) << log;
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

// The shipped rung (shipped.hpp): a bundle in the shipped dir serves a device of its model (nearest
// bucket too) when the user's cache has nothing, below the user's own same_arch decision; a
// decision of another device model is not served.
TEST_F(LookupTest, ShippedBundleServesThisDeviceModelBelowTheUsersOwnDecisions) {
  TempDir shipped{"shipped"};
  Bundle bundle;
  bundle.exported = Provenance::here("test");
  Decision other_model = decision(256, "a1_b2");
  other_model.validators.device = "Toy CPU Pro";
  bundle.decisions = {decision(256, "a3_b4"), other_model};
  write_file_atomic(shipped.path / "toy-cpu.json", render_bundle(bundle));
  {
    TuningLookup l{TuningStore(dir_.path), shipped.path};
    LookupResult r = l.lookup(spec_, toy_problem(200), backend_);
    EXPECT_EQ(r.rung, Rung::shipped);
    EXPECT_EQ(r.config.to_string(), "a3_b4");
    EXPECT_EQ(l.lookup(spec_, toy_problem(1024), backend_).rung, Rung::shipped);  // nearest shipped bucket
    EXPECT_EQ(l.counts()[Rung::shipped], 2);
  }
  Decision same_arch = decision(256, "a5_b4");
  same_arch.validators.device = "Toy CPU Pro";
  same_arch.validators.compute_units = 64;
  TuningStore(dir_.path).record({same_arch});
  TuningLookup l{TuningStore(dir_.path), shipped.path};
  EXPECT_EQ(l.lookup(spec_, toy_problem(256), backend_).rung, Rung::same_arch);
  TuningLookup none{TuningStore(dir_.path / "empty"), ""};  // no shipped dir: the heuristic
  EXPECT_EQ(none.lookup(spec_, toy_problem(256), backend_).rung, Rung::heuristic);
}

// A shipped decision whose template changed since it was tuned is ignored with a warning naming
// moejit tune; a damaged bundle is skipped whole and named, and the others still serve.
TEST_F(LookupTest, ShippedDecisionsOfAChangedTemplateOrADamagedBundleAreSkippedLoudly) {
  toy::world().include_dirs = {dir_.path.string()};
  toy::world().template_include = "toy_template.h";
  write_file_atomic(dir_.path / "toy_template.h", "// version 1\n");
  TempDir shipped{"shipped-stale"};
  Bundle bundle;
  bundle.exported = Provenance::here("test");
  bundle.decisions = {decision(256, "a3_b4")};
  write_file_atomic(shipped.path / "b-good.json", render_bundle(bundle));
  write_file_atomic(shipped.path / "a-damaged.json", "{\"moejit_bundle\": 1, \"decisions\": [");
  const ShippedDecisions loaded = load_shipped(shipped.path);
  ASSERT_EQ(loaded.rejected.size(), 1u);
  EXPECT_NE(loaded.rejected[0].find("a-damaged.json"), std::string::npos) << loaded.rejected[0];
  EXPECT_EQ(loaded.bundles.size(), 1u);

  ::testing::internal::CaptureStderr();
  TuningLookup fresh{TuningStore(dir_.path), shipped.path};
  EXPECT_EQ(fresh.lookup(spec_, toy_problem(256), backend_).rung, Rung::shipped);
  write_file_atomic(dir_.path / "toy_template.h", "// version 2, edited\n");
  TuningLookup stale{TuningStore(dir_.path), shipped.path};
  EXPECT_EQ(stale.lookup(spec_, toy_problem(256), backend_).rung, Rung::heuristic);
  const std::string log = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(log.find("shipped tuning bundle skipped: " + (shipped.path / "a-damaged.json").string()), std::string::npos)
      << log;
  EXPECT_NE(log.find("template hash changed since it was tuned; moejit tune tunes it for this version"),
            std::string::npos)
      << log;
}

}  // namespace
}  // namespace moejit
