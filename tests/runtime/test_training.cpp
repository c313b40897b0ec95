// End-to-end training on the host: the loss falls well below the corpus's unigram entropy; resuming
// from a checkpoint reproduces the uninterrupted run bit for bit; a corrupt checkpoint is a clear
// error and leaves the earlier checkpoints untouched.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numeric>

#include "../common/test_util.hpp"
#include "backend_choice.hpp"
#include "cuda_driver.hpp"
#include "files.hpp"
#include "hash.hpp"
#include "model_config.hpp"
#include "moejit/error.hpp"
#include "text_corpus.hpp"
#include "trainer.hpp"

namespace moejit::runtime {
namespace {
namespace fs = std::filesystem;

// A small English-like text corpus that needs no installed files.
TrainOptions micro_options(const std::string& config, const fs::path& data, const fs::path& out) {
  TrainOptions o;
  o.config = find_model_config(config);
  o.config.seq_len = 32;
  o.data = data.string();
  o.out_dir = out;
  o.batch = 4;
  o.grad_accum = 2;                                           // exercises accumulation
  o.tokens = 12 * o.batch * o.config.seq_len * o.grad_accum;  // 12 steps
  o.warmup = 3;
  o.threads = 2;
  o.eval_batches = 2;
  return o;
}

TEST(Training, LossFallsWellBelowUnigramEntropyOnFortunes) {
  const char* dir = std::getenv("MOEJIT_FORTUNES_DIR");
  if (!fs::is_directory(dir ? dir : "/usr/share/games/fortunes"))
    GTEST_SKIP() << "fortunes corpus not installed (scripts/setup.sh installs it)";
  TrainOptions o;
  o.config = find_model_config("micro-moe");
  o.batch = 8;
  o.tokens = 200 * o.batch * o.config.seq_len;  // 200 steps, ~100k tokens (~2.9 nats at the end)
  o.warmup = 20;
  o.max_lr = 6e-3;
  o.threads = 2;
  o.eval_batches = 2;
  Trainer t(o);
  double unigram = unigram_entropy_nats(t.dataset().train);
  double before = t.evaluate().loss;
  while (!t.done()) t.train_step();
  double after = t.evaluate().loss;
  // A model that ignores context cannot beat the unigram entropy (3.32 nats for these bytes); 0.9 of
  // it (0.33 nats below) needs real use of the context.
  EXPECT_LT(after, 0.9 * unigram) << "val loss " << before << " -> " << after << ", unigram " << unigram;
}

// micro-dsv3 balances by a selection bias: the resumed run must restore it from the checkpoint.
TEST(Training, ResumeIsBitIdenticalToUninterruptedRun) {
  test::TempDir dir;
  fs::path data = write_text_corpus(dir.path());
  for (const std::string config : {"micro-moe", "micro-dsv3"}) {
    SCOPED_TRACE(config);
    std::vector<double> straight, resumed;
    std::vector<float> straight_params, straight_bias;
    {
      Trainer t(micro_options(config, data, dir.path() / config / "a"));
      while (!t.done()) straight.push_back(t.train_step().loss);
      straight_params = t.model().read_params();
      straight_bias = t.model().read_state();
    }
    {
      TrainOptions o = micro_options(config, data, dir.path() / config / "b");
      o.stop_after = 5;
      Trainer t(o);
      while (!t.done()) resumed.push_back(t.train_step().loss);
      t.save_checkpoint();
    }
    TrainOptions o = micro_options(config, data, dir.path() / config / "b");
    o.seed = 999;   // a different init: everything must come from the checkpoint
    o.threads = 1;  // and the thread count must not matter
    Trainer t(o);
    ASSERT_TRUE(t.latest_checkpoint());
    t.resume_from(*t.latest_checkpoint());
    EXPECT_EQ(t.step(), 5);
    while (!t.done()) resumed.push_back(t.train_step().loss);
    ASSERT_EQ(resumed.size(), straight.size());
    for (size_t i = 0; i < straight.size(); ++i) EXPECT_EQ(resumed[i], straight[i]) << "step " << i + 1;
    EXPECT_TRUE(t.model().read_params() == straight_params) << "final weights differ";
    EXPECT_TRUE(t.model().read_state() == straight_bias) << "final router biases differ";
    if (config == "micro-dsv3") {
      EXPECT_EQ(straight_bias.size(), 16u);
      EXPECT_TRUE(std::any_of(straight_bias.begin(), straight_bias.end(), [](float b) { return b != 0; }));
    }
  }
}

// micro-dsv3 (aux-loss-free: no aux loss, a selection bias) learns, and its bias drives the load
// imbalance (max / mean load over the experts) down: below the same run without the bias update, and
// below its own start.
TEST(Training, SelectionBiasDrivesTheLoadImbalanceDown) {
  test::TempDir dir;
  fs::path data = write_text_corpus(dir.path());
  auto run = [&](double rate, std::vector<double>& loss, std::vector<double>& imbalance) {
    TrainOptions o = micro_options("micro-dsv3", data, {});
    o.config.moe->router.bias_update_rate = rate;
    o.grad_accum = 1;
    o.tokens = 40 * o.batch * o.config.seq_len;  // 40 steps
    o.max_lr = 6e-3;
    Trainer t(o);
    while (!t.done()) {
      const StepStats s = t.train_step();
      loss.push_back(s.loss);
      imbalance.push_back(s.routers.at(0).imbalance);
    }
  };
  auto mean = [](const std::vector<double>& v, size_t begin, size_t end) {
    return std::accumulate(v.begin() + begin, v.begin() + end, 0.0) / double(end - begin);
  };
  std::vector<double> loss, imbalance, loss0, imbalance0;
  run(find_model_config("micro-dsv3").moe->router.bias_update_rate, loss, imbalance);
  run(0.0, loss0, imbalance0);
  EXPECT_LT(mean(loss, 35, 40), 0.8 * mean(loss, 0, 5));
  const double start = mean(imbalance, 0, 10), end = mean(imbalance, 30, 40), end0 = mean(imbalance0, 30, 40);
  EXPECT_LT(end, start) << "imbalance with the bias: " << start << " -> " << end;
  EXPECT_LT(end, end0) << "imbalance at the end: " << end << " with the bias, " << end0 << " without";
}

// metrics.jsonl carries, per MoE layer and step, the expert loads, the imbalance, the dropped choices
// and the bias norm; a capacity of half the mean load drops at least half the choices.
TEST(Training, MetricsReportRouterLoadsDropsAndBias) {
  test::TempDir dir;
  fs::path data = write_text_corpus(dir.path());
  TrainOptions o = micro_options("micro-dsv3", data, dir.path() / "run");
  o.config.moe->router.capacity_factor = 0.5;
  o.stop_after = 3;
  {
    Trainer t(o);
    run_training(t, /*resume=*/false, {});
  }
  std::ifstream metrics(dir.path() / "run" / "metrics.jsonl");
  const double rate = o.config.moe->router.bias_update_rate, E = 16, K = 4;
  const double choices = double(o.batch * o.grad_accum * o.config.seq_len) * K;
  int steps = 0;
  for (std::string line; std::getline(metrics, line);) {
    const auto j = nlohmann::json::parse(line);
    if (!j.contains("loss")) continue;
    ++steps;
    ASSERT_TRUE(j.contains("moe")) << line;
    ASSERT_EQ(j["moe"].size(), 1u) << line;
    const auto& m = j["moe"][0];
    EXPECT_EQ(m["layer"], 1);
    EXPECT_DOUBLE_EQ(m["load_mean"].get<double>(), choices / E);
    EXPECT_LE(m["load_min"].get<double>(), m["load_mean"].get<double>());
    EXPECT_GE(m["load_max"].get<double>(), m["load_mean"].get<double>());
    EXPECT_DOUBLE_EQ(m["imbalance"].get<double>(), m["load_max"].get<double>() / m["load_mean"].get<double>());
    EXPECT_GE(m["dropped"].get<double>(), choices / 2 - E * double(o.grad_accum)) << line;
    EXPECT_GT(m["bias_norm"].get<double>(), 0.0);
    EXPECT_LE(m["bias_norm"].get<double>(), rate * std::sqrt(E) * j["step"].get<double>() + 1e-9);
  }
  EXPECT_EQ(steps, 3);
}

TEST(Training, CorruptCheckpointIsAClearErrorAndEarlierOnesStayUntouched) {
  test::TempDir dir;
  fs::path data = write_text_corpus(dir.path());
  TrainOptions o = micro_options("micro-dense", data, dir.path() / "run");
  fs::path first, second;
  {
    Trainer t(o);
    t.train_step();
    first = t.save_checkpoint();
    t.train_step();
    second = t.save_checkpoint();
  }
  std::string first_hash = hash_hex(*read_file(first));
  std::string bytes = *read_file(second);
  auto expect_corrupt = [&](const std::string& damaged, const std::string& why) {
    write_file_atomic(second, damaged);
    Trainer t(o);
    std::vector<float> before = t.model().read_params();
    try {
      t.resume_from(second);
      ADD_FAILURE() << why << ": no error";
    } catch (const Error& e) {
      std::string m = e.what();
      EXPECT_NE(m.find("is corrupt"), std::string::npos) << why << ": " << m;
      EXPECT_NE(m.find(second.filename().string()), std::string::npos) << "names the file: " << m;
    }
    EXPECT_TRUE(t.model().read_params() == before) << why << ": a failed resume changed the weights";
    EXPECT_EQ(t.step(), 0);
  };
  std::string flipped = bytes;
  flipped[bytes.size() - 100] ^= 0x40;
  expect_corrupt(flipped, "flipped payload bit");
  expect_corrupt(bytes.substr(0, bytes.size() / 2), "truncated");
  expect_corrupt(std::string("\x10\0\0\0\0\0\0\0{not json}      ", 24), "garbage header");
  EXPECT_EQ(hash_hex(*read_file(first)), first_hash) << "the earlier checkpoint changed";
  Trainer t(o);
  t.resume_from(first);
  EXPECT_EQ(t.step(), 1);
}

TEST(Training, ResumeWithOtherOptionsIsRefused) {
  test::TempDir dir;
  fs::path data = write_text_corpus(dir.path());
  TrainOptions o = micro_options("micro-dense", data, dir.path() / "run");
  fs::path ckpt;
  {
    Trainer t(o);
    t.train_step();
    ckpt = t.save_checkpoint();
  }
  o.batch = 2;
  Trainer t(o);
  EXPECT_THROW(t.resume_from(ckpt), Error);
}

TEST(Training, FreshRunIntoAFolderWithCheckpointsIsRefused) {
  test::TempDir dir;
  fs::path data = write_text_corpus(dir.path());
  TrainOptions o = micro_options("micro-dense", data, dir.path() / "run");
  {
    Trainer t(o);
    t.train_step();
    t.save_checkpoint();
  }
  Trainer t(o);
  try {
    run_training(t, /*resume=*/false, {});
    FAIL() << "a fresh run mixed its checkpoints with another run's";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--resume"), std::string::npos) << e.what();
  }
  EXPECT_EQ(list_checkpoints(dir.path() / "run").size(), 1u);
}

// `moejit tune --model` tunes in step_compute_dtype(backend): every backend that can run here must
// look its kernels up in that dtype, or the tuned decisions would never be found by training.
TEST(Training, EachBackendsComputeDtypeIsWhatTuneModelTunes) {
  ThreadPool par(1);
  for (const std::string& name : available_backends()) {
    const auto backend = make_step_backend(name, par);
    EXPECT_EQ(backend->precision().compute, step_compute_dtype(name)) << name;
  }
}

// A backend that cannot run here fails in the Trainer's constructor, before the data is read or
// anything is written, naming what is missing and the backends that can run.
TEST(Training, UnavailableBackendFailsFirstAndTouchesNothing) {
  test::TempDir dir;
  fs::path data = write_text_corpus(dir.path());
  std::vector<std::string> unavailable = {"tpu"};
  if (!CudaDriver::available()) unavailable.push_back("cuda");  // where a GPU is usable, cuda trains
  for (const std::string& name : unavailable) {
    TrainOptions o = micro_options("micro-dense", data, dir.path() / "out");
    o.backend = name;
    o.data = (dir.path() / "no-such-corpus").string();  // reading data would fail with another message
    try {
      Trainer t(o);
      FAIL() << "backend " << name << " was accepted";
    } catch (const Error& e) {
      const std::string m = e.what();
      EXPECT_NE(m.find("available backends: "), std::string::npos) << m;
      EXPECT_NE(m.find("reference"), std::string::npos) << m;
      EXPECT_NE(m.find(name), std::string::npos) << m;
    }
    EXPECT_FALSE(fs::exists(dir.path() / "out")) << name;
  }
}

// Random byte-like tokens as llm.c shards: <dir>/train.bin (n_train tokens) and <dir>/val.bin.
fs::path write_shards(const fs::path& dir, const std::vector<uint32_t>& train, const std::vector<uint32_t>& val) {
  fs::create_directories(dir);
  write_token_shard(dir / "train.bin", train, kShardVersionU16);
  write_token_shard(dir / "val.bin", val, kShardVersionU16);
  return dir;
}

// --unique-tokens U trains exactly as if the data were only the first U tokens: bit-identical losses
// against a run on a shard holding just those tokens, while the tokens past U are different.
TEST(Training, UniqueTokensCapTrainsOnTheFirstTokensOnly) {
  test::TempDir dir;
  std::mt19937_64 rng(test::test_seed());
  std::vector<uint32_t> all(4000), val(600);
  for (auto& t : all) t = uint32_t(rng() % 200);
  for (auto& t : val) t = uint32_t(rng() % 200);
  const int64_t unique = 700;  // < 6 batches of 4 x 32: the capped run repeats its pool
  const std::vector<uint32_t> head(all.begin(), all.begin() + unique);
  TrainOptions capped = micro_options("micro-moe", write_shards(dir.path() / "all", all, val), {});
  capped.unique_tokens = unique;
  TrainOptions cut = micro_options("micro-moe", write_shards(dir.path() / "head", head, val), {});
  TrainOptions whole = micro_options("micro-moe", dir.path() / "all", {});
  Trainer a(capped), b(cut), c(whole);
  EXPECT_TRUE(a.dataset().train == head);
  EXPECT_NE(a.dataset().description.find("first 700 of 4000"), std::string::npos) << a.dataset().description;
  bool differs_from_whole = false;
  while (!a.done()) {
    const double la = a.train_step().loss, lb = b.train_step().loss;
    EXPECT_EQ(la, lb) << "step " << a.step();
    if (a.step() <= 4) differs_from_whole |= la != c.train_step().loss;  // the pool repeats from step 3
  }
  EXPECT_TRUE(differs_from_whole) << "the cap changed nothing: the test would pass without it";
  // 12 steps x 256 tokens over 700 unique tokens.
  EXPECT_DOUBLE_EQ(a.epochs(a.step()), 12.0 * 256.0 / 700.0);
  EXPECT_GT(a.epochs(a.step()), 4.0);
  capped.unique_tokens = int64_t(all.size()) + 1;  // a cap above the split is the whole split
  EXPECT_TRUE(Trainer(capped).dataset().train == all);
}

TEST(Training, ResumeWithAnotherUniqueTokenCapIsRefusedAndEvalsLogEpochs) {
  test::TempDir dir;
  fs::path data = write_text_corpus(dir.path());
  TrainOptions o = micro_options("micro-dense", data, dir.path() / "run");
  o.unique_tokens = 1000;
  o.stop_after = 2;
  {
    Trainer t(o);
    run_training(t, /*resume=*/false, {});
  }
  std::ifstream metrics(dir.path() / "run" / "metrics.jsonl");
  std::string line, last_eval;
  while (std::getline(metrics, line))
    if (line.find("val_loss") != std::string::npos) last_eval = line;
  auto j = nlohmann::json::parse(last_eval);
  EXPECT_EQ(j["step"], 2);
  EXPECT_EQ(j["tokens"], 2 * 256);
  EXPECT_DOUBLE_EQ(j["epochs"].get<double>(), 2.0 * 256.0 / 1000.0);
  o.unique_tokens = 2000;
  o.stop_after = -1;
  Trainer t(o);
  try {
    run_training(t, /*resume=*/true, {});
    FAIL() << "resumed with another unique-token pool";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--unique-tokens"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace moejit::runtime
