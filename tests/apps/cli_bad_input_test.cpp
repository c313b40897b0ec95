// The `moejit` binary on every bad input of issue 20's adversarial probe: each must exit with the
// documented code (docs/cli.md: 1 failed, 2 bad usage; never a crash) and a message naming the bad
// value and the fix. Every case is small: micro configs, a few hundred tokens, one kernel family.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "../common/cli_run.hpp"
#include "../common/test_util.hpp"
#include "../tuning_cache/fixtures.hpp"
#include "bundle.hpp"
#include "files.hpp"

namespace moejit {
namespace {
namespace fs = std::filesystem;

class Cli : public ::testing::Test {
 protected:
  // `moejit <args>` with a private cache dir (or `cache`), stdout + stderr in the result.
  test::CliRun run(const std::string& args, const std::string& env = "") const {
    return test::run_cli(MOEJIT_CLI, cache_, args, env);
  }
  fs::path path(const std::string& name) const { return tmp_.path() / name; }
  // A byte-level text corpus that needs no installed files: words in random order.
  fs::path corpus(size_t bytes = 20000) const {
    const char* words[] = {"the ", "quick ", "brown ", "fox ", "jumps ", "over ", "a ", "lazy ", "dog. ", "and\n"};
    std::mt19937_64 rng(test::test_seed());
    std::string text;
    while (text.size() < bytes) text += words[rng() % 10];
    std::ofstream(path("corpus.txt")) << text;
    return path("corpus.txt");
  }
  // A short run on the reference kernels (micro-moe: 8 steps of 2 x 64 tokens) on `data` (default: corpus()).
  std::string train_args(const std::string& extra, const fs::path& data = {},
                         const std::string& config = "micro-moe") const {
    return "train --config " + config + " --kernels reference --batch 2 --tokens 1024 --eval-every 0 --data " +
           (data.empty() ? corpus() : data).string() + " " + extra;
  }
  fs::path write(const std::string& name, const std::string& text) const {
    std::ofstream(path(name), std::ios::binary) << text;
    return path(name);
  }

  test::TempDir tmp_;
  fs::path cache_ = tmp_.path() / "cache";
};

// Runs `r` once, then checks its exit code and that its output holds `text`.
#define EXPECT_RUN(r, want_code, text)                                           \
  do {                                                                           \
    const test::CliRun ran = (r);                                                \
    EXPECT_EQ(ran.code, want_code) << ran.output;                                \
    EXPECT_TRUE(ran.has(text)) << "want '" << (text) << "' in:\n" << ran.output; \
  } while (0)

// Finding 1: an empty data file (text or a .bin shard whose header counts 0 tokens) crashed train and
// eval in the train/validation split.
TEST_F(Cli, EmptyDataIsRefusedNamingTheFileNotACrash) {
  const fs::path empty = write("empty.txt", "");
  EXPECT_RUN(run(train_args("--out " + path("o").string(), empty)), 1, "holds 0 tokens");
  std::string shard(1024, '\0');
  const int32_t header[3] = {20240520, 1, 0};
  std::memcpy(shard.data(), header, sizeof header);
  EXPECT_RUN(run(train_args("", write("empty.bin", shard))), 1, "empty.bin holds 0 tokens");
  EXPECT_RUN(run(train_args("", write("one.txt", "x"))), 1, "too few to hold out validation");

  // eval reads --data the same way: a real checkpoint, then an empty file.
  const test::CliRun trained = run(train_args("--out " + path("run").string()));
  ASSERT_EQ(trained.code, 0) << trained.output;
  const fs::path checkpoint = path("run") / "ckpt_step00000008.safetensors";
  ASSERT_TRUE(fs::exists(checkpoint)) << trained.output;
  EXPECT_RUN(run("eval " + checkpoint.string() + " --data " + empty.string()), 1, "holds 0 tokens");
}

// Finding 4: an unwritable --out was found only at the first checkpoint, and a failed metrics write
// was ignored. Now both stop the run before (or at) the step, naming the path.
TEST_F(Cli, UnwritableOutAndFailedMetricsWritesStopTheRun) {
  const fs::path file = write("a-file", "not a directory");
  test::CliRun r = run(train_args("--out " + (file / "run").string()));
  EXPECT_RUN(r, 1, "is not writable");
  EXPECT_TRUE(r.has("choose another --out")) << r.output;
  EXPECT_FALSE(r.has("val loss")) << "refused before the first evaluation and step:\n" << r.output;

  fs::create_directories(path("dir-metrics") / "metrics.jsonl");  // a directory where the file goes
  r = run(train_args("--out " + path("dir-metrics").string()));
  EXPECT_RUN(r, 1, "cannot open " + (path("dir-metrics") / "metrics.jsonl").string());
  EXPECT_FALSE(r.has("val loss")) << r.output;

  if (!fs::exists("/dev/full")) GTEST_SKIP() << "no /dev/full to simulate a full disk";
  fs::create_directories(path("full"));
  fs::create_symlink("/dev/full", path("full") / "metrics.jsonl");
  EXPECT_RUN(run(train_args("--out " + path("full").string())), 1, "is the disk full?");
}

// Finding 5: numbers are read whole and range-checked; bad ones exit 2 naming value and range.
TEST_F(Cli, EveryNumberIsReadWholeAndRangeChecked) {
  struct Case {
    std::string args, want;
  };
  const std::string shape = "tune --backend host --shape ";
  const std::vector<Case> cases = {
      {shape + "64,32,8,2e3", "topk '2e3' is not a whole decimal number"},
      {shape + "64abc,32,8,2", "d_model '64abc' is not a whole decimal number"},
      {shape + "64,32,8", "wants four positive integers"},
      {shape + "64,32,8,0", "topk 0 is out of range; want an integer in [1, 1048576]"},
      {shape + "64,32,8,2 --tokens 64.7", "'64.7' is not a whole decimal number"},
      {shape + "64,32,8,2 --tokens 0", "0 is out of range"},
      {shape + "64,32,8,2 --tokens 64,", "'' is not a whole decimal number"},
      {shape + "64,32,8,2 --repeats 0", "0 is out of range; want an integer in [1, 1000000]"},
      {shape + "64,32,8,2 --warmup -1", "-1 is out of range"},
      {shape + "64,32,8,2 --max-seconds -5", "-5 is out of range; want a finite number >= 0"},
      {shape + "64,32,8,2 --max-candidates -1", "-1 is out of range"},
      {shape + "64,32,8,2 --timeout 0", "want a finite number > 0"},
      {shape + "64,32,8,2 --race 0.5", "(or 0: racing off)"},
      {shape + "64,32,8,2 --exhaustive-limit -1", "-1 is out of range"},
      {"bench --backend host --shape 64,32,8,2 --tokens 64.7", "'64.7' is not a whole decimal number"},
      {"bench --backend host --shape 64,32,8,2 --repeats 0", "0 is out of range"},
      {"compile --tokens 64abc", "'64abc' is not a whole decimal number"},
      {"train --tokens 0", "--tokens: 0 is out of range; want a positive integer"},
      {"train --tokens -5", "-5 is out of range"},
      {"train --tokens 64.7", "'64.7' is not a whole decimal number"},
      {"train --compute 0", "0 is out of range; want a finite number > 0"},
      {"train --lr nan", "'nan' is not finite"},
      {"train --lr -1", "-1 is out of range"},
      {"train --lr inf", "'inf' is not finite"},
      {"train --batch 0", "0 is out of range"},
      {"train --warmup -1", "-1 is out of range"},
      {"train --threads 0", "0 is out of range"},
      {"train --eval-every -1", "-1 is out of range"},
      {"train --checkpoint-every -2", "-2 is out of range"},
      {"eval x.safetensors --batches 0", "0 is out of range"},
      {"plan micro-moe --tokens -1", "-1 is out of range"},
      {"plan micro-moe --compute nan", "'nan' is not finite"},
      {"plan micro-moe --target-ra 1", "1 is out of range; want a number in (0, 1)"},
      {"plan micro-moe --target-ra 0.2 --width-multiple 0", "0 is out of range"},
      {"plan micro-moe --target-ra 0.2 --experts 8:1e3", "--experts wants lo:hi or a single integer: '1e3'"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.args);
    EXPECT_RUN(run(c.args), 2, c.want);
  }
  EXPECT_RUN(run("plan micro-moe --tokens 1e6"), 0, "micro-moe");  // a real may use an exponent
}

// Finding 5: a run whose loss becomes NaN/inf stops with an error naming the step and the cause.
TEST_F(Cli, DivergingRunStopsNamingTheStepAndTheLearningRate) {
  const test::CliRun r = run(train_args("--lr 1e30 --warmup 0 --out " + path("run").string()));
  EXPECT_RUN(r, 1, "the run diverged");
  EXPECT_TRUE(r.has("moejit: step ")) << r.output;
  EXPECT_TRUE(r.has("peak --lr 1e+30); lower --lr")) << r.output;
}

// Finding 6: unknown families and impossible shapes exit non-zero naming the known values.
TEST_F(Cli, UnknownFamiliesAndImpossibleShapesExitNonZero) {
  for (const std::string verb : {"tune --backend host --shape 64,32,8,2", "bench --backend host --shape 64,32,8,2",
                                 "compile --heuristic-only"}) {
    SCOPED_TRACE(verb);
    const test::CliRun r = run(verb + " --family nosuch");
    EXPECT_RUN(r, 2, "unknown kernel family 'nosuch' (known: ");
    EXPECT_TRUE(r.has("grouped_gemm_up_swiglu")) << r.output;
  }
  EXPECT_RUN(run("compile --shape 64,32,8,9"), 2, "topk 9 exceeds E 8");
  // swiglu_fwd is a family the layer does not run (it fuses it into grouped_gemm_up_swiglu).
  for (const std::string verb : {"tune --backend host --shape 64,32,8,2", "bench --backend host --shape 64,32,8,2",
                                 "compile --heuristic-only"}) {
    SCOPED_TRACE(verb);
    EXPECT_RUN(run(verb + " --family swiglu_fwd"), 1,
               "--families selects none of the kernel families the MoE layer runs (they are: ");
  }
  // Every grouped GEMM config needs d_model and d_expert in multiples of 8: say so, exit 1.
  EXPECT_RUN(run("compile --arch sm_80 --family grouped_gemm_fwd --shape 60,32,8,2"), 1, "no config fits shape");
  EXPECT_RUN(run("tune --shape 64,32,8,2 --backend gpu"), 2, "unknown backend 'gpu' (known: host, cuda)");
}

// Finding 7: sizes beyond the machine or beyond int64 are refused with a figure, not bad_alloc or 0.
TEST_F(Cli, HugeConfigsAreRefusedWithAnEstimateOrAnOverflowMessage) {
  const std::string huge_dims = R"({"name": "huge", "layers": 4, "d_model": 4294967296, "heads": 1,
      "head_dim": 4294967296, "d_ffn": 4294967296, "vocab": 257, "seq_len": 64})";
  test::CliRun r = run("plan " + write("huge.json", huge_dims).string());
  EXPECT_RUN(r, 1, "does not fit a 64-bit integer");
  EXPECT_FALSE(r.has("attention 0")) << r.output;

  const std::string big = R"({"name": "big", "layers": 64, "d_model": 16384, "heads": 128, "head_dim": 128,
      "d_ffn": 65536, "vocab": 257, "seq_len": 4096})";  // ~2e11 parameters: 3 TB of weights and state
  r = run(train_args("", {}, write("big.json", big).string()));
  EXPECT_RUN(r, 1, "needs about");
  EXPECT_TRUE(r.has("pick a smaller config")) << r.output;
}

// Finding 9: a cache dir that cannot be written gives one warning naming it and MOEJIT_CACHE_DIR,
// and tune refuses before measuring (it would have nowhere to keep its journal and decisions).
TEST_F(Cli, UnwritableCacheDirWarnsOnceNamingMoejitCacheDir) {
  const fs::path blocked = write("cache-is-a-file", "x") / "cache";
  const test::CliRun tune = test::run_cli(MOEJIT_CLI, blocked, "tune --backend host --shape 64,32,8,2 --tokens 64");
  EXPECT_RUN(tune, 1, "tuning cache directory " + (blocked / "tuning").string() + " is not writable");
  EXPECT_TRUE(tune.has("set MOEJIT_CACHE_DIR to a writable directory")) << tune.output;
  EXPECT_FALSE(tune.has("No such file or directory") && tune.has("journal")) << tune.output;

  const test::CliRun compile =
      test::run_cli(MOEJIT_CLI, blocked, "compile --arch sm_80 --heuristic-only --family route_gate_fwd");
  EXPECT_EQ(compile.code, 0) << compile.output;
  size_t warnings = 0;
  for (size_t at = compile.output.find("MOEJIT_CACHE_DIR"); at != std::string::npos;
       at = compile.output.find("MOEJIT_CACHE_DIR", at + 1))
    ++warnings;
  EXPECT_EQ(warnings, 1u) << compile.output;
  EXPECT_TRUE(compile.has("kernel cache directory " + (blocked / "kernels").string())) << compile.output;
}

// Finding 12: after --resume, metrics.jsonl holds each step once (cut back to the checkpoint's step).
TEST_F(Cli, ResumeCutsMetricsBackToTheCheckpoint) {
  const fs::path out = path("run");
  const fs::path data = corpus();  // one corpus for both runs: a checkpoint records its training split
  // 8 steps; checkpoint at 4; stop after 6: steps 5 and 6 are logged, then redone on resume.
  test::CliRun r = run(train_args("--checkpoint-every 4 --stop-after 6 --out " + out.string(), data));
  ASSERT_EQ(r.code, 0) << r.output;
  fs::remove(out / "ckpt_step00000006.safetensors");  // as if killed between the checkpoints
  r = run(train_args("--checkpoint-every 4 --resume --out " + out.string(), data));
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_TRUE(r.has("at step 4")) << r.output;
  std::ifstream in(out / "metrics.jsonl");
  std::vector<int> seen(9, 0);
  for (std::string line; std::getline(in, line);)
    if (line.find("\"loss\"") != std::string::npos) {
      const size_t at = line.find("\"step\":");
      ASSERT_NE(at, std::string::npos) << line;
      ++seen.at(std::stoul(line.substr(at + 7)));
    }
  for (int step = 1; step <= 8; ++step) EXPECT_EQ(seen[step], 1) << "step " << step;
}

// Finding 13: every verb that takes a config takes it both ways; the tune hint names the config as
// given; all unsupported fields are listed at once; info names the host CPU and its vector ISAs.
TEST_F(Cli, ConfigFlagsHintsAndInfoAreConsistent) {
  EXPECT_RUN(run("plan --config micro-moe"), 0, "micro-moe");
  EXPECT_RUN(run("plan micro-moe"), 0, "micro-moe");
  EXPECT_RUN(run("plan micro-moe --config micro-dense"), 2, "excludes");
  const std::string small = "--kernels reference --batch 2 --tokens 256 --eval-every 0 --data " + corpus().string();
  EXPECT_RUN(run("train micro-dense " + small), 0, "model micro-dense");
  // On cuda a dense model's tuned kernels are its SwiGLU: its products are cuBLASLt's.
  EXPECT_RUN(run("tune --config dense-7b --backend cuda --families grouped_gemm_fwd"), 1,
             "its tuned dense kernels are swiglu_fwd and swiglu_bwd");

  // RoPE, tied embeddings, sigmoid scores and renormalised top-k train (issue 19) ...
  const std::string modern = R"({"name": "modern", "layers": 2, "d_model": 64, "heads": 2, "head_dim": 32,
      "d_ffn": 128, "vocab": 257, "seq_len": 64, "positions": "rope", "tie_embeddings": true,
      "moe": {"experts": 4, "top_k": 2, "d_expert": 32, "dense_layers": [0],
              "router": {"score": "sigmoid", "renormalize": true, "bias_update_rate": 0.01}}})";
  EXPECT_RUN(run("train --config " + write("modern.json", modern).string() + " " + small), 0, "model modern");
  // ... and what stays unsupported is listed at once.
  const std::string unsupported = R"({"name": "odd", "layers": 2, "d_model": 64, "heads": 64, "head_dim": 1,
      "d_ffn": 128, "vocab": 257, "seq_len": 64, "positions": "rope",
      "moe": {"experts": 600, "top_k": 17, "d_expert": 1, "dense_layers": [0],
              "router": {"groups": 40, "topk_groups": 2}}})";
  const test::CliRun r = run("train --config " + write("odd.json", unsupported).string() + " " + small);
  EXPECT_RUN(r, 1, "cannot be trained (4 problem(s))");
  for (const char* field : {"head_dim", "\"experts\"", "\"top_k\"", "\"groups\""})
    EXPECT_TRUE(r.has(field)) << field << " in:\n" << r.output;

  const test::CliRun info = run("info");
  EXPECT_EQ(info.code, 0) << info.output;
#ifdef MOEJIT_TEST_HOST
  EXPECT_TRUE(info.has("host CPU: ")) << info.output;
  for (const char* isa : {"AVX2 ", "AVX-512 ", "AVX-512-BF16 ", "AMX-BF16 "})
    EXPECT_TRUE(info.has(isa)) << isa << " in:\n" << info.output;
#endif
}

// Findings 10 and 11: one bad tuning-store file does not hide the others from `cache decisions`
// and `cache export` (both name it and exit 1); import counts say what happened; a decision with
// time_ms <= 0 is refused.
TEST_F(Cli, TuningCacheListsAroundABadFileAndCountsImportsTruly) {
  Bundle b;
  b.exported = Provenance::here("export");
  b.decisions = {testing::make_decision(testing::kToy, 1024, "a5_b4", 0.1),
                 testing::make_decision(Family::route_plan, 64, "a1", 0.2)};
  const fs::path bundle = write("b.json", render_bundle(b));
  EXPECT_RUN(run("cache import " + bundle.string()), 0, "2 added, 0 replaced, 0 unchanged, 0 conflict(s)");
  EXPECT_RUN(run("cache import " + bundle.string()), 0, "0 added, 0 replaced, 2 unchanged, 0 conflict(s)");
  b.decisions = {testing::make_decision(testing::kToy, 1024, "a5_b4", 0.3)};  // the same config, slower
  EXPECT_RUN(run("cache import " + write("slow.json", render_bundle(b)).string()), 0,
             "0 added, 0 replaced, 1 unchanged, 1 conflict(s)");

  const fs::path bad = cache_ / "tuning" / "route_plan.json";
  const std::string text = *read_file(bad);
  write_file_atomic(bad, text.substr(0, text.size() / 2));
  test::CliRun r = run("cache decisions");
  EXPECT_RUN(r, 1, "1 decision(s) (1 file(s) unreadable)");
  EXPECT_TRUE(r.has(testing::make_decision(testing::kToy, 1024, "a5_b4", 0.1).uri() + "  ")) << r.output;
  EXPECT_TRUE(r.has("skipped " + bad.string() + ": not valid JSON")) << r.output;
  r = run("cache export -o " + path("out.json").string());
  EXPECT_RUN(r, 1, "exported 1 decision(s)");
  EXPECT_TRUE(r.has("skipped " + bad.string())) << r.output;
  EXPECT_EQ(parse_bundle(*read_file(path("out.json")), "out").decisions.size(), 1u);

  b.decisions = {testing::make_decision(testing::kToy, 2048, "a5_b4", 0.1)};
  b.decisions[0].time_ms = 0;
  EXPECT_RUN(run("cache import " + write("zero.json", render_bundle(b)).string()), 1, "must be a finite number > 0");
}

#ifdef MOEJIT_TEST_HOST
// Finding 13: the end-of-run tune hint names the config as it was given (here a path), so that the
// printed command runs. JIT kernels with no tuning decisions fall back to the heuristic, which
// prints the hint; the kernel cache is shared by the suite's runs (warm after the first).
TEST_F(Cli, TuneHintNamesTheConfigAsGiven) {
  const fs::path config = write("my-moe.json", R"({"name": "micro-moe", "layers": 2, "d_model": 64, "heads": 2,
      "head_dim": 32, "d_ffn": 192, "vocab": 257, "seq_len": 64,
      "moe": {"experts": 8, "top_k": 2, "d_expert": 32, "dense_layers": [0]}})");
  const fs::path jit_cache = fs::path(MOEJIT_TEST_JIT_CACHE);
  fs::remove_all(jit_cache / "tuning");  // no decisions: every kernel comes from the heuristic
  const test::CliRun r =
      test::run_cli(MOEJIT_CLI, jit_cache,
                    "train --config " + config.string() + " --kernels jit --batch 2 --tokens 256 --eval-every 0 " +
                        "--data " + corpus().string());
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_TRUE(r.has("tune them: moejit tune --backend host --model " + config.string() + " --tokens 128")) << r.output;
}
#endif

}  // namespace
}  // namespace moejit
