// The host backend's MoE layer on JIT-compiled host kernels (JitHostMoeKernels), forward and backward,
// against the naive per-token double reference (naive_moe.hpp) and the reference backend, on random,
// empty-expert and skewed routings; and the tuning-rung report: an empty tuning cache falls back to
// the heuristic for all 14 kernels, a cache tuned for the layer's 14 problems serves every kernel
// exactly.
// ctest runs every test in its own process: binaries go to one cache directory in the build tree
// (MOEJIT_TEST_JIT_CACHE) so that the 14 kernels compile cold once, not once per test; tuning
// decisions go to a fresh temporary directory per test.
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>

#include <set>

#include "dense_step_kernels.hpp"
#include "host_backend.hpp"
#include "host_step_backend.hpp"
#include "moe_layer_steps.hpp"
#include "naive_moe.hpp"
#include "trainer.hpp"
#include "tune_layer.hpp"

namespace moejit::runtime {
namespace {

// The micro-moe layer shape (C 64, E 8, top-2, De 32), a smaller shared expert.
constexpr MoeDims kDims{64, 8, 2, 32, 16, {0.05, 0.01}};
constexpr LayerShape kShape{DType::f32, 64, 32, 8, 2};

// Before anything touches the global binary cache.
void use_suite_binary_cache() {
  setenv("MOEJIT_CACHE_DIR", MOEJIT_TEST_JIT_CACHE, 1);
}

// fp32 on both sides; the JIT GEMMs block and vectorise their sums (up to 64 terms) differently from
// the reference loops and the naive double reference.
constexpr double kAtol = 3e-5, kRtol = 3e-4;

// Two fp32 implementations against each other: a weight gradient is a sum over tokens whose terms
// can cancel (the router's, under skewed routing), so each tensor's absolute tolerance also scales
// with its largest element, as the step comparison's does (step_compare.hpp).
void expect_same(const test_moe::LayerResult& ref, const test_moe::LayerResult& got) {
  auto same = [](const std::vector<float>& want, const std::vector<float>& have, const char* what) {
    double largest = 0;
    for (float v : want) largest = std::max(largest, double(std::abs(v)));
    return test::count_mismatches(std::vector<double>(want.begin(), want.end()), have, kAtol + kRtol * largest, kRtol,
                                  what);
  };
  EXPECT_EQ(got.counts, ref.counts);
  EXPECT_EQ(same(ref.out, got.out, "out vs reference kernels"), 0u);
  EXPECT_EQ(same(ref.dx, got.dx, "dx vs reference kernels"), 0u);
  EXPECT_EQ(same(ref.drouter, got.drouter, "d_router vs reference"), 0u);
  EXPECT_EQ(same(ref.dup, got.dup, "d_w_up vs reference kernels"), 0u);
  EXPECT_EQ(same(ref.ddown, got.ddown, "d_w_down vs reference"), 0u);
}

// Host and reference backends on the same random problem, both against the naive double reference.
void check_case(HostStepBackend& host, int64_t N, bool skew, uint64_t seed) {
  SCOPED_TRACE("N " + std::to_string(N) + (skew ? ", skewed" : "") + ", seed " + std::to_string(seed));
  const test_moe::Naive naive = test_moe::make_problem(N, kDims, skew, seed);
  ThreadPool par(2);
  ReferenceStepBackend<float> reference(par);
  const test_moe::LayerResult want = test_moe::run_layer(reference, kDims, naive);
  const test_moe::LayerResult got = test_moe::run_layer(host, kDims, naive);
  test_moe::expect_matches(naive, got, skew, kAtol, kRtol);
  expect_same(want, got);
}

TEST(JitHostMoe, EmptyTuningCacheFallsBackToHeuristicAndMatchesReference) {
  use_suite_binary_cache();
  test::TempDir tuning;
  ThreadPool par(2);
  HostStepBackend host(par, {.kernel_threads = 0, .tuning_dir = tuning.path()});
  EXPECT_EQ(summarize_tuning(host.moe().kernel_choices()).substr(0, 29), "14 of 14 kernels not tuned: g");  // none ran
  EXPECT_EQ(summarize_tuning(host.kernel_choices()), "no tuned kernels");  // the step reports what ran
  const uint64_t seed = test::test_seed();
  check_case(host, 37, false, seed);                 // random routing
  check_case(host, 3, false, seed + 1);              // 6 choices over 8 experts: some stay empty
  check_case(host, 29, true, seed + 2);              // skewed: experts 0 and 1 take everything
  const auto choices = host.moe().kernel_choices();  // the MoE steps (the router and shared expert are dense)
  ASSERT_EQ(choices.size(), size_t(kLayerSteps));
  for (int i = 0; i < kLayerSteps; ++i) {
    EXPECT_EQ(choices[i].kernel, to_string(LayerStep(i)));
    EXPECT_EQ(choices[i].rung, Rung::heuristic) << choices[i].kernel;
    // swiglu_bwd runs in down_dgrad's epilogue on the host: never looked up.
    EXPECT_EQ(choices[i].config == "(not run)", !step_runs_on(LayerStep(i), "host")) << choices[i].kernel;
  }
  EXPECT_EQ(summarize_tuning(choices),
            "14 of 14 kernels not tuned: gate_fwd (heuristic), plan (heuristic), permute_fwd (heuristic), "
            "up_swiglu (heuristic), and 10 more; 0 tuned");
}

TEST(JitHostMoe, TunedLayerProblemsServeEveryKernelExactly) {
  use_suite_binary_cache();
  const int64_t N = 37;
  test::TempDir tuning;
  {
    HostBackend backend;  // as `moejit tune --backend host`: one worker per hardware thread
    LayerTuneOptions options;
    options.tune.isolation = Isolation::none;
    options.tune.timing.warmup = 1;
    options.tune.timing.repeats = 2;
    options.tune.max_candidates = 2;
    options.tune.retime_top = 1;
    options.tune.tuning_dir = tuning.path();
    options.tune.progress = nullptr;
    const LayerTuneReport report = tune_layer(backend, layer_calls(kShape, {N}, {}, "host"), options);
    ASSERT_EQ(report.tuned.size(), static_cast<size_t>(kLayerSteps - 1));  // all but swiglu_bwd
    for (const LayerTuneResult& r : report.tuned)
      EXPECT_TRUE(r.result.decision) << r.call.name << ": " << r.result.summary();
  }
  ThreadPool par(2);
  HostStepBackend host(par, {.kernel_threads = 0, .tuning_dir = tuning.path()});
  check_case(host, N, false, test::test_seed());
  std::vector<KernelChoice> ran;
  for (const auto& c : host.moe().kernel_choices())
    if (c.config != JitHostMoeKernels::kNotRun) ran.push_back(c);
  for (const auto& c : ran) EXPECT_EQ(c.rung, Rung::exact) << c.kernel << " " << c.config;
  EXPECT_EQ(summarize_tuning(ran), "all 13 kernels tuned (13 exact)");
}

// A few training steps of micro-moe on the host backend track the reference backend's losses, and
// the run's last metrics line names the backend and says which rung served each kernel: the 14 MoE
// steps and exactly the dense kernels dense_step_kernels() lists (what `moejit tune --model` tunes).
TEST(JitHostMoe, TrainingMatchesReferenceAndLogsTheRungs) {
  use_suite_binary_cache();
  test::TempDir dir;
  {
    std::string text;
    const char* words[] = {"the ", "quick ", "brown ", "fox ", "jumps ", "over ", "a ", "lazy ", "dog. ", "and\n"};
    std::mt19937_64 rng(7);
    while (text.size() < 20000) text += words[rng() % 10];
    std::ofstream(dir.path() / "corpus.txt") << text;
  }
  TrainOptions run;
  auto losses = [&](const std::string& backend) {
    TrainOptions o;
    o.config = find_model_config("micro-moe");
    o.config.seq_len = 32;
    o.data = (dir.path() / "corpus.txt").string();
    o.out_dir = dir.path() / backend;
    o.batch = 4;
    o.tokens = 3 * o.batch * o.config.seq_len;  // 3 steps
    o.eval_batches = 1;
    o.backend = backend;
    run = o;
    Trainer t(o);
    std::vector<double> v;
    RunCallbacks cb;
    cb.on_step = [&](const Trainer&, const StepStats& s) { v.push_back(s.loss); };
    run_training(t, false, cb);
    return v;
  };
  const auto want = losses("reference"), got = losses("host");
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-4 * (1 + i)) << "step " << i + 1;

  std::ifstream metrics(dir.path() / "host" / "metrics.jsonl");
  std::string line, last;
  while (std::getline(metrics, line)) last = line;
  const auto j = nlohmann::json::parse(last);
  EXPECT_EQ(j.at("backend"), "host");
  std::set<std::string> want_kernels, got_kernels;
  for (int i = 0; i < kLayerSteps; ++i)
    if (step_runs_on(LayerStep(i), "host")) want_kernels.insert(std::string(to_string(LayerStep(i))));
  for (const auto& k : dense_step_kernels(run.config, run.batch))
    if (dense_kernel_runs_on(k, "host")) want_kernels.insert(k.name());
  for (const auto& k : j.at("kernels")) got_kernels.insert(k.at("kernel").get<std::string>());
  EXPECT_EQ(got_kernels, want_kernels);
  const std::string n = std::to_string(want_kernels.size());
  // The suite's tuning store is empty.
  EXPECT_EQ(j.at("tuning"), n + " of " + n + " kernels not tuned: gate_fwd (heuristic), plan (heuristic), " +
                                "permute_fwd (heuristic), up_swiglu (heuristic), and " +
                                std::to_string(want_kernels.size() - 4) + " more; 0 tuned");
}

}  // namespace
}  // namespace moejit::runtime
