// The autotuner's machinery on the toy backend (exact virtual timings): winner, correctness gate,
// isolation of crashing/hanging candidates, compile errors, tie-break, budgets + resume, progress.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "autotuner.hpp"
#include "lookup.hpp"
#include "toy_backend.hpp"
#include "tuning_store.hpp"

namespace fs = std::filesystem;

namespace moejit::toy {
namespace {

class AutotuneTest : public ::testing::Test {
 protected:
  void SetUp() override {
    reset_world();
    dir_ = fs::temp_directory_path() / ("moejit-autotune-" + std::to_string(::getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    options_.tuning_dir = dir_;
    options_.progress = nullptr;
    options_.timing.warmup = 1;
    options_.timing.repeats = 3;
    options_.timing.min_sample_ms = 0;
    options_.candidate_timeout_s = 5;
    options_.compile_threads = 2;
  }
  void TearDown() override { fs::remove_all(dir_); }
  TuneResult run() { return tune(backend_, spec_, workload_, toy_problem(), options_); }
  const CandidateResult* result_of(const TuneResult& r, const std::string& config) {
    for (const auto& c : r.results)
      if (c.config == config) return &c;
    return nullptr;
  }

  fs::path dir_;
  ToyBackend backend_;
  ToySpec spec_;
  ToyWorkload workload_;
  TuneOptions options_;
};

TEST_F(AutotuneTest, ExhaustiveFindsTheCheapestAndCountsPruning) {
  TuneResult r = run();
  ASSERT_TRUE(r.decision);
  EXPECT_EQ(r.decision->config.to_string(), "a5_b4");
  EXPECT_NEAR(r.decision->time_ms, 0.1, 1e-9);  // 100 us of virtual time
  EXPECT_EQ(r.strategy, "exhaustive");
  // a*b > 32: (5,8) (6,8) (7,8) (8,8) -> 4 of 32 pruned with the reason counted.
  EXPECT_EQ(r.prune.total, 32);
  EXPECT_EQ(r.prune.pruned(), 4);
  EXPECT_EQ(r.prune.reasons.size(), 4u);
  EXPECT_NE(r.prune.summary().find("4 pruned"), std::string::npos);
  EXPECT_EQ(r.count(CandidateStatus::ok), 28);
  EXPECT_EQ(r.retimed.size(), 3u);
  // Stored: the exact rung now answers.
  TuningLookup lookup{TuningStore(dir_)};
  LookupResult l = lookup.lookup(spec_, toy_problem(200), backend_);
  EXPECT_EQ(l.rung, Rung::exact);
  EXPECT_EQ(l.config.to_string(), "a5_b4");
  EXPECT_FALSE(fs::exists(dir_ / "journal") && !fs::is_empty(dir_ / "journal"));  // journal removed when done
}

TEST_F(AutotuneTest, PlantedWrongCandidateIsRejectedWithItsError) {
  world().plans["a5_b4"] = Plan::wrong;  // the fastest one computes garbage
  TuneResult r = run();
  const CandidateResult* wrong = result_of(r, "a5_b4");
  ASSERT_NE(wrong, nullptr);
  EXPECT_EQ(wrong->status, CandidateStatus::wrong);
  EXPECT_NEAR(wrong->max_error, 1.0, 1e-6);  // 2x instead of 2x+1
  EXPECT_NE(wrong->detail.find("expected"), std::string::npos);
  ASSERT_TRUE(r.decision);
  EXPECT_NE(r.decision->config.to_string(), "a5_b4");
  EXPECT_NEAR(r.decision->time_ms, 0.107, 1e-9);  // next best: a5_b2 or a5_b8 (pruned) -> a5_b2
}

TEST_F(AutotuneTest, CrashingAndHangingCandidatesAreIsolatedAndTheRunCompletes) {
  world().plans["a5_b4"] = Plan::crash;
  world().plans["a5_b2"] = Plan::hang;
  options_.isolation = Isolation::fork;
  options_.candidate_timeout_s = 1;
  TuneResult r = run();
  EXPECT_EQ(result_of(r, "a5_b4")->status, CandidateStatus::crashed);
  EXPECT_NE(result_of(r, "a5_b4")->detail.find("signal 11"), std::string::npos);
  EXPECT_EQ(result_of(r, "a5_b2")->status, CandidateStatus::timeout);
  EXPECT_EQ(r.count(CandidateStatus::ok), 26);
  ASSERT_TRUE(r.decision);
  EXPECT_EQ(r.decision->config.to_string(), "a4_b4");  // 110 us, tied with a6_b4: a4_b4 comes first
}

TEST_F(AutotuneTest, CompileErrorsAreRecordedNotFatal) {
  world().plans["a5_b4"] = Plan::compile_error;
  TuneResult r = run();
  EXPECT_EQ(result_of(r, "a5_b4")->status, CandidateStatus::compile_error);
  EXPECT_NE(result_of(r, "a5_b4")->detail.find("planted compile error"), std::string::npos);
  ASSERT_TRUE(r.decision);
  EXPECT_EQ(r.decision->config.to_string(), "a5_b2");
}

TEST_F(AutotuneTest, TiesBreakTowardsTheHeuristicThenSpaceOrder) {
  // Everything within 0.5% of 100 us: all ties at 1% tolerance; the heuristic wins.
  world().cost_us = [](const Config& c) { return 100.0 + 0.05 * static_cast<double>(c.get("a") + c.get("b")); };
  world().heuristic = Config{{"a", 3}, {"b", 4}};
  options_.retime_top = 40;
  EXPECT_EQ(run().decision->config.to_string(), "a3_b4");
  // Heuristic outside the space: the first of the tied configs in space order, on every rerun.
  world().heuristic = Config{{"a", 9}, {"b", 9}};
  EXPECT_EQ(run().decision->config.to_string(), "a1_b1");
  EXPECT_EQ(run().decision->config.to_string(), "a1_b1");
}

TEST_F(AutotuneTest, ReTimingSurvivesACoreTakenAwayForMostOfItsRuns) {
  // a5_b4 is the fastest (100 us, the rest 150 us and up). While it is re-timed, the first 13 calls
  // of its kernel run at half speed (a 2-thread config whose other core the VM took away): three of
  // the five runs of samples, 9 samples of 15. Its best run still shows its speed.
  world().cost_us = [](const Config& c) {
    return c.to_string() == "a5_b4" ? 100.0 : 150.0 + static_cast<double>(c.get("a") + c.get("b"));
  };
  world().slowdown = [](const Config& c, int load, long call) {
    return c.to_string() == "a5_b4" && load == 2 && call < 13 ? 2.0 : 1.0;
  };
  options_.isolation = Isolation::none;  // the search loads each kernel once, the re-timing again
  options_.timing.repeats = 15;
  TuneResult r = run();
  ASSERT_TRUE(r.decision);
  EXPECT_EQ(world().loads["a5_b4"], 2);
  EXPECT_EQ(r.decision->config.to_string(), "a5_b4");
  EXPECT_NEAR(r.decision->time_ms, 0.100, 1e-9);
}

TEST_F(AutotuneTest, ReTimingWarmsUpLongEnoughForTheSchedulerToSpreadThreads) {
  // a5_b4 is the fastest (100 us). Once loaded for re-timing, its first 60 calls run at half speed
  // (a 2-thread config whose woken helper the scheduler left on the caller's CPU): every run of
  // samples under a warm-up counted in samples (3 each) would fall among them. The warm-up lasts at
  // least min_warmup_ms (20 ms: 100-200 calls), so the first run already shows its speed.
  world().cost_us = [](const Config& c) {
    return c.to_string() == "a5_b4" ? 100.0 : 150.0 + static_cast<double>(c.get("a") + c.get("b"));
  };
  world().slowdown = [](const Config& c, int load, long call) {
    return c.to_string() == "a5_b4" && load == 2 && call < 60 ? 2.0 : 1.0;
  };
  options_.isolation = Isolation::none;
  options_.timing.repeats = 15;
  ASSERT_GE(options_.timing.min_warmup_ms, 20.0);
  TuneResult r = run();
  ASSERT_TRUE(r.decision);
  EXPECT_EQ(r.decision->config.to_string(), "a5_b4");
  EXPECT_NEAR(r.decision->time_ms, 0.100, 1e-9);
  options_.timing.min_warmup_ms = 0;  // the old warm-up: counted in samples only
  world().loads.clear();
  fs::remove_all(dir_);
  TuneResult old = run();
  ASSERT_TRUE(old.decision);
  EXPECT_NE(old.decision->config.to_string(), "a5_b4");
}

TEST_F(AutotuneTest, AHeuristicOffTheSpacesGridIsMeasuredToo) {
  // b 3 is not among the space's values (a heuristic that sizes its blocks for the problem), but it
  // passes pruning: the tuner measures it, and here it is the fastest, so it is the decision.
  world().heuristic = Config{{"a", 3}, {"b", 3}};
  world().cost_us = [](const Config& c) { return c.to_string() == "a3_b3" ? 50.0 : 100.0 + double(c.get("a")); };
  TuneResult r = run();
  ASSERT_NE(result_of(r, "a3_b3"), nullptr);
  ASSERT_TRUE(r.decision);
  EXPECT_EQ(r.decision->config.to_string(), "a3_b3");
}

TEST_F(AutotuneTest, BudgetStopsEarlyAndTheJournalResumesWithoutRetiming) {
  options_.max_candidates = 10;
  TuneResult first = run();
  EXPECT_TRUE(first.partial);
  EXPECT_EQ(first.measured, 10);
  ASSERT_TRUE(first.decision);
  EXPECT_TRUE(first.decision->provenance.partial);
  options_.max_candidates = 0;
  fs::create_directories(dir_);
  world().measured_log = (dir_ / "measured.txt").string();
  TuneResult second = run();
  EXPECT_FALSE(second.partial);
  EXPECT_EQ(second.resumed, 10);
  EXPECT_EQ(second.measured, 18);
  EXPECT_EQ(second.decision->config.to_string(), "a5_b4");
  EXPECT_FALSE(second.decision->provenance.partial);
  // The resumed run gated (and timed) only the 18 candidates the journal did not have.
  std::ifstream log(world().measured_log);
  std::set<std::string> measured_again;
  for (std::string line; std::getline(log, line);) measured_again.insert(line);
  EXPECT_EQ(measured_again.size(), 18u);
  for (const auto& r : first.results) EXPECT_FALSE(measured_again.count(r.config)) << r.config;
}

// Issue 20, finding 3: a timeout in the journal (the machine was loaded, or --timeout was shorter)
// is measured again on resume instead of excluding what may be the winner for good.
TEST_F(AutotuneTest, ResumedTimeoutsAreMeasuredAgain) {
  world().plans["a5_b4"] = Plan::hang;  // the fastest config times out in the first run
  options_.isolation = Isolation::fork;
  options_.candidate_timeout_s = 0.5;
  options_.max_candidates = 20;  // partial: the journal is kept (a5_b4 is the 19th in space order)
  TuneResult first = run();
  ASSERT_TRUE(first.partial);
  ASSERT_NE(result_of(first, "a5_b4"), nullptr);
  EXPECT_EQ(result_of(first, "a5_b4")->status, CandidateStatus::timeout);

  world().plans.clear();
  options_.max_candidates = 0;
  TuneResult second = run();
  EXPECT_EQ(second.resumed, 19) << "every journal entry but the timeout";
  ASSERT_NE(result_of(second, "a5_b4"), nullptr);
  EXPECT_EQ(result_of(second, "a5_b4")->status, CandidateStatus::ok);
  ASSERT_TRUE(second.decision);
  EXPECT_EQ(second.decision->config.to_string(), "a5_b4");
}

// Issue 20, finding 2: a re-tune whose winner is another binary replaces the stored decision (it
// used to be stored beside it, and the lookup served the smaller stored time forever), even when the
// new winner is slower; the old winner stays on record as an alternative.
TEST_F(AutotuneTest, ReTuneWithAnotherWinnerReplacesTheDecision) {
  options_.isolation = Isolation::none;
  TuneResult first = run();
  ASSERT_TRUE(first.decision);
  EXPECT_EQ(first.decision->config.to_string(), "a5_b4");
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));  // stored dates have 1 s resolution
  world().cost_us = [](const Config& c) { return 200.0 + static_cast<double>(c.get("a") + c.get("b")); };
  TuneResult second = run();
  ASSERT_TRUE(second.decision);
  EXPECT_EQ(second.decision->config.to_string(), "a1_b1");
  const std::vector<Decision> stored = TuningStore(dir_).load(kToyFamily);
  ASSERT_EQ(stored.size(), 1u);
  EXPECT_EQ(stored[0].config.to_string(), "a1_b1");
  ASSERT_EQ(stored[0].alternatives.size(), 1u);
  EXPECT_EQ(stored[0].alternatives[0].config, "a5_b4");
  TuningLookup lookup{TuningStore(dir_)};
  EXPECT_EQ(lookup.lookup(spec_, toy_problem(), backend_).config.to_string(), "a1_b1");
}

// Issue 20, finding 2: two tune processes on one cache dir, with different winners, leave one
// decision per problem: the faster measurement.
TEST_F(AutotuneTest, ConcurrentTunesLeaveOneDecisionTheFaster) {
  options_.isolation = Isolation::none;
  std::vector<pid_t> children;
  for (int child = 0; child < 2; ++child) {
    const pid_t pid = ::fork();
    if (pid == 0) {
      world().cost_us = [child](const Config& c) {  // child 0: a1_b1 fastest (50 us); child 1: a8_b4 (60 us)
        return child == 0 ? 50.0 + static_cast<double>(c.get("a") + c.get("b") - 2)
                          : 60.0 + static_cast<double>(std::abs(c.get("a") - 8) + std::abs(c.get("b") - 4));
      };
      options_.timing.repeats += child;  // separate journals: each run measures its own candidates
      TuneResult r = tune(backend_, spec_, workload_, toy_problem(), options_);
      ::_exit(r.decision ? 0 : 1);
    }
    children.push_back(pid);
  }
  for (pid_t pid : children) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  const std::vector<Decision> stored = TuningStore(dir_).load(kToyFamily);
  ASSERT_EQ(stored.size(), 1u);
  EXPECT_EQ(stored[0].config.to_string(), "a1_b1");
  EXPECT_NEAR(stored[0].time_ms, 0.05, 1e-9);
}

TEST_F(AutotuneTest, MaxSecondsBudgetStopsStartingCandidates) {
  world().check_sleep_ms = 30;
  options_.max_seconds = 0.2;
  options_.isolation = Isolation::none;
  TuneResult r = run();
  EXPECT_TRUE(r.partial);
  EXPECT_LT(r.measured, 28);
  EXPECT_GE(r.measured, 1);
}

TEST_F(AutotuneTest, LargeSpacesUseLocalSearchAndStillFindTheOptimum) {
  world().params = {{"a", {1, 2, 3, 4, 5, 6, 7, 8}}, {"b", {1, 2, 4, 8}}, {"c", {1, 2, 3, 4}}};
  world().max_product = 1000;
  world().heuristic = Config{{"a", 2}, {"b", 2}, {"c", 1}};
  world().cost_us = [](const Config& c) {
    const double a = static_cast<double>(c.get("a")), b = std::log2(static_cast<double>(c.get("b"))),
                 k = static_cast<double>(c.get("c"));
    return 100.0 + 10 * (a - 6) * (a - 6) + 7 * (b - 1) * (b - 1) + 5 * (k - 3) * (k - 3);
  };
  options_.exhaustive_limit = 16;
  TuneResult r = run();
  EXPECT_EQ(r.strategy, "local_search");
  EXPECT_LT(r.results.size(), 128u * 2 / 3);
  ASSERT_TRUE(r.decision);
  EXPECT_EQ(r.decision->config.to_string(), "a6_b2_c3");
}

// Racing: candidates clearly slower than the best so far stop after kRaceSamples samples. Same
// winner as timing everything; far fewer kernel calls (the toy clock counts them).
TEST_F(AutotuneTest, RacingStopsSlowCandidatesEarlyWithTheSameWinner) {
  options_.isolation = Isolation::none;
  options_.timing.repeats = 15;
  options_.timing.min_warmup_ms = 0;       // the re-timing's warm-up costs both runs the same: count the search's calls
  world().cost_us = [](const Config& c) {  // best first in space order: later ones race against it
    return 100.0 + 30.0 * static_cast<double>(c.get("a") - 1) + 20.0 * std::log2(static_cast<double>(c.get("b")));
  };
  std::map<double, std::pair<std::string, long>> runs;  // abandon factor -> (winner, virtual ns)
  for (double factor : {0.0, 1.5}) {
    fs::remove_all(dir_);
    options_.abandon_factor = factor;
    const long before = world().virtual_ns.load();
    TuneResult r = run();
    ASSERT_TRUE(r.decision);
    runs[factor] = {r.decision->config.to_string(), world().virtual_ns.load() - before};
    int raced = 0;
    for (const auto& c : r.results) raced += c.detail.find("raced out after 3 of 15") != std::string::npos;
    if (factor == 0) {
      EXPECT_EQ(raced, 0);
    } else {
      EXPECT_GT(raced, 10) << "most of the 28 toy configs cost over 1.5x the best";
    }
  }
  EXPECT_EQ(runs[0.0].first, "a1_b1");
  EXPECT_EQ(runs[1.5].first, "a1_b1");
  EXPECT_LT(runs[1.5].second, runs[0.0].second / 2);
}

TEST_F(AutotuneTest, ColdCacheRotatesThroughSetsLargerThanTheCache) {
  TimingOptions cold;
  cold.cold = true;
  DeviceDescription device = backend_.device();             // 1 MiB "L2"
  EXPECT_EQ(rotation_copies(cold, device, 256 * 1024), 9);  // 2 MiB / 256 KiB + 1
  EXPECT_EQ(rotation_copies(TimingOptions{}, device, 256 * 1024), 1);
  options_.timing.cold = true;
  options_.isolation = Isolation::none;
  TuneResult r = run();
  ASSERT_TRUE(r.decision);
  EXPECT_EQ(r.decision->config.to_string(), "a5_b4");
  // toy problem: 256 tokens x 32 floats x 2 buffers = 64 KiB per set -> 33 sets.
  EXPECT_EQ(workload_.copies(), 33);
}

TEST(Median, OddEvenAndEmpty) {
  EXPECT_EQ(median({3, 1, 2}), 2);
  EXPECT_EQ(median({4, 1, 3, 2}), 2.5);
  EXPECT_EQ(median({}), 0);
}

TEST(ProgressTest, PlainLinesWhenNotATerminalBarOnATerminal) {
  for (int tty : {0, 1}) {
    std::FILE* f = std::tmpfile();
    Progress p(f, "tune x", 2, tty);
    p.step("c1 1 ms", "c1 1 ms");
    p.step("c2 2 ms", "c1 1 ms");
    p.finish("done");
    std::rewind(f);
    std::string text(4096, '\0');
    text.resize(std::fread(text.data(), 1, text.size(), f));
    std::fclose(f);
    if (tty) {
      EXPECT_NE(text.find("\r"), std::string::npos);
      EXPECT_NE(text.find("2/2"), std::string::npos);
      EXPECT_NE(text.find("[########################]"), std::string::npos);
    } else {
      EXPECT_EQ(text.find("\r"), std::string::npos);
      EXPECT_NE(text.find("tune x 1/2 c1 1 ms (best c1 1 ms"), std::string::npos);
    }
  }
}

}  // namespace
}  // namespace moejit::toy

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
