// `moejit train`: train a model config (models/configs) on a runtime backend (reference or host, fp32) with a
// progress line, JSONL metrics, checkpoints and exact resume. See docs/training.md.
#include <unistd.h>

#include <cstdio>
#include <iostream>

#include "cli_checks.hpp"
#include "commands.hpp"
#include "model_config.hpp"
#include "trainer.hpp"

namespace moejit::cli {
namespace {

std::string duration_text(double seconds) {
  long s = long(seconds + 0.5);
  char buf[32];
  if (s >= 3600)
    std::snprintf(buf, sizeof buf, "%ldh%02ldm", s / 3600, (s / 60) % 60);
  else
    std::snprintf(buf, sizeof buf, "%ldm%02lds", s / 60, s % 60);
  return buf;
}

// "parameters, gradients and AdamW moments per rank: rank 0 1.2 MiB, rank 1 1.2 MiB (one process: 2.0 MiB)":
// with sharded experts each rank holds less than one process would.
void print_parameter_memory(const std::vector<std::string>& per_rank_bytes, int64_t unsharded_bytes) {
  auto mib = [](double bytes) {
    char text[32];
    std::snprintf(text, sizeof text, "%.3g MiB", bytes / double(1 << 20));
    return std::string(text);
  };
  std::cout << "parameters, gradients and AdamW moments per rank:";
  for (size_t r = 0; r < per_rank_bytes.size(); ++r)
    std::cout << (r ? ", rank " : " rank ") << r << " " << mib(std::stod(per_rank_bytes[r]));
  std::cout << " (one process: " << mib(double(unsharded_bytes)) << ")\n";
}

struct TrainFlags {
  std::string config{kDefaultSmallConfig};
  int64_t tokens = 0;
  double compute = 0;
  std::string data, out;
  bool resume = false;
  std::string kernels;  // deprecated: --kernels jit|reference = --backend host|reference
  runtime::TrainOptions o;
};

// --kernels predates --backend: jit meant the host backend's JIT kernels.
void fold_deprecated_kernels_flag(TrainFlags& f, bool backend_given) {
  if (f.kernels.empty()) return;
  const std::string backend = f.kernels == "jit" ? "host" : f.kernels;
  if (backend_given && backend != f.o.backend)
    throw CLI::ValidationError("--kernels", "contradicts --backend " + f.o.backend + "; drop --kernels");
  std::cerr << "note: --kernels " << f.kernels << " is deprecated; use --backend " << backend << "\n";
  f.o.backend = backend;
}

void train(TrainFlags& f, bool backend_given, runtime::Communicator& comm) {
  fold_deprecated_kernels_flag(f, backend_given);
  f.o.config = find_model_config(f.config);
  f.o.tokens = f.tokens;
  f.o.compute = f.compute;
  f.o.data = f.data;
  f.o.out_dir = f.out;
  if (f.resume && f.out.empty()) throw CLI::ValidationError("--resume", "needs --out DIR (where the checkpoints are)");
  runtime::Trainer trainer(f.o, comm);
  // Every rank's share of the parameter memory (a collective, so before the ranks part ways).
  const auto parameter_bytes = comm.allgather(std::to_string(trainer.parameter_bytes()));
  // Data parallel: rank 0 alone prints (run_training reports only there as well).
  if (!comm.root()) {
    runtime::run_training(trainer, f.resume, {});
    return;
  }
  const bool tty = isatty(STDOUT_FILENO);
  std::cout << "model " << runtime::describe(trainer.model().config()) << "\n"
            << "data " << trainer.dataset().description << ": " << trainer.dataset().train.size() << " train / "
            << trainer.dataset().val.size() << " val tokens; unigram entropy "
            << runtime::unigram_entropy_nats(trainer.dataset().train) << " nats\n"
            << "schedule " << trainer.total_steps() << " steps x " << trainer.tokens_per_step() << " tokens, warm-up "
            << trainer.schedule().warmup_steps << ", lr " << f.o.max_lr << " -> " << f.o.min_lr << ", " << f.o.threads
            << " threads, " << trainer.epochs(trainer.total_steps()) << " epochs\n"
            << "backend " << trainer.backend().name() << "\n";
  if (!trainer.backend().host_memory())  // device memory: what it holds, before the first step
    std::cout << runtime::memory_summary(trainer.memory(), trainer.backend().device_free_bytes(), trainer.local_batch())
              << "\n";
  if (comm.size() > 1)
    std::cout << "data parallel over " << comm.size() << " processes (" << comm.name() << "): " << trainer.local_batch()
              << " of the " << f.o.batch << " sequences of each micro-batch per rank"
              << (f.o.expert_parallel > 1
                      ? "; experts split over groups of " + std::to_string(f.o.expert_parallel) + " ranks"
                      : std::string())
              << "; gradients summed "
              << (trainer.sums_over_nccl()       ? "on the GPUs over NCCL, layer by layer during the backward"
                  : trainer.overlaps_allreduce() ? "layer by layer during the backward"
                                                 : "after the backward")
              << "\n";
  if (comm.size() > 1) print_parameter_memory(parameter_bytes, trainer.unsharded_parameter_bytes());
  const char* unit = trainer.dataset().byte_level ? "bits/byte" : "bits/token";
  double tokens_per_s = 0;
  runtime::RunCallbacks cb;
  cb.on_message = [&](const std::string& m) { std::cout << (tty ? "\r\033[K" : "") << m << "\n" << std::flush; };
  cb.on_step = [&](const runtime::Trainer& t, const runtime::StepStats& s) {
    double now = double(s.tokens) / s.seconds;
    tokens_per_s = tokens_per_s == 0 ? now : 0.9 * tokens_per_s + 0.1 * now;
    double eta = double((t.total_steps() - s.step) * s.tokens) / tokens_per_s;
    char line[256];
    std::snprintf(line, sizeof line, "step %lld/%lld | loss %.4f | lr %.2e | %.0f tok/s | ETA %s", (long long)s.step,
                  (long long)t.total_steps(), s.loss, s.lr, tokens_per_s, duration_text(eta).c_str());
    if (tty)
      std::cout << "\r\033[K" << line << std::flush;
    else if (s.step % 10 == 0 || s.step == t.total_steps())
      std::cout << line << "\n" << std::flush;
  };
  cb.on_eval = [&](const runtime::Trainer& t, const runtime::EvalStats& e) {
    char line[160];
    std::snprintf(line, sizeof line, "step %lld: val loss %.4f, %.4f %s", (long long)t.step(), e.loss, e.bits_per_token,
                  unit);
    std::cout << (tty ? "\r\033[K" : "") << line << "\n" << std::flush;
  };
  runtime::run_training(trainer, f.resume, cb);
  if (tty) std::cout << "\n";
  const auto choices = trainer.backend().kernel_choices();
  std::cout << "kernels (backend " << trainer.backend().name() << "): " << runtime::summarize_tuning(choices) << "\n";
  bool heuristic = false;
  for (const auto& k : choices) heuristic |= k.rung == Rung::heuristic;
  if (heuristic)
    // The config as it was given (a name or a path), so that the command runs as printed.
    std::cout << "  tune them: moejit tune --backend " << trainer.backend().name() << " --model " << f.config
              << " --tokens " << f.o.batch * trainer.model().config().seq_len << "\n";
  if (!f.out.empty()) std::cout << "metrics " << (std::filesystem::path(f.out) / "metrics.jsonl").string() << "\n";
}

// Under mpirun an error on one rank ends every rank (the others would wait in a collective forever),
// with the rank named; one process reports as every command does.
void run(TrainFlags& f, bool backend_given) {
  runtime::Communicator& comm = runtime::process_communicator();
  if (comm.size() == 1) return train(f, backend_given, comm);
  try {
    train(f, backend_given, comm);
  } catch (const std::exception& e) {
    comm.abort(e.what(), kError);
  }
}

}  // namespace

void add_train_command(CLI::App& app) {
  auto flags = std::make_shared<TrainFlags>();
  auto* cmd = app.add_subcommand("train", "Train a model (fp32 on the CPU), default data: the fortunes corpus");
  auto* config = cmd->add_option("--config", flags->config, "Model config name (moejit plan --list) or a .json path")
                     ->capture_default_str();
  cmd->add_option("CONFIG", flags->config, "The same as --config")->excludes(config);
  auto* tokens =
      cmd->add_option("--tokens", flags->tokens, "Training tokens D (default 2^20)")->transform(integer_in(1));
  cmd->add_option("--compute", flags->compute, "Training FLOPs C; D = C / (6 N_a + 12 L D_m S)")
      ->excludes(tokens)
      ->check(real_in(0, kMaxReal, true));
  cmd->add_option("--data", flags->data, "Token shard(s) (.bin, llm.c format), text file or fortunes directory");
  cmd->add_option("--unique-tokens", flags->o.unique_tokens,
                  "Train on at most the first U tokens of the training split, repeating them (0: all)")
      ->transform(integer_in(0));
  cmd->add_option("--out", flags->out, "Directory for checkpoints and metrics.jsonl");
  cmd->add_flag("--resume", flags->resume, "Continue from the newest checkpoint in --out");
  cmd->add_option("--batch", flags->o.batch, "Sequences per micro-batch")
      ->capture_default_str()
      ->transform(integer_in(1, kMaxIndex));
  cmd->add_option("--grad-accum", flags->o.grad_accum, "Micro-batches per step")
      ->capture_default_str()
      ->transform(integer_in(1, kMaxIndex));
  cmd->add_option("--lr", flags->o.max_lr, "Peak learning rate")
      ->capture_default_str()
      ->check(real_in(0, kMaxReal, true));
  cmd->add_option("--warmup", flags->o.warmup,
                  "Warm-up steps (default: clip(0.01 steps, 200, 2000), at most half the run)")
      ->transform(integer_in(0));
  cmd->add_option("--eval-every", flags->o.eval_every, "Validate every N steps (0: at the end)")
      ->capture_default_str()
      ->transform(integer_in(0));
  cmd->add_option("--eval-batches", flags->o.eval_batches, "Validation batches (from the start of the held-out text)")
      ->capture_default_str()
      ->transform(integer_in(1));
  cmd->add_option("--checkpoint-every", flags->o.checkpoint_every, "Checkpoint every N steps (0: at the end)")
      ->transform(integer_in(0));
  cmd->add_option("--threads", flags->o.threads, "Worker threads")
      ->capture_default_str()
      ->transform(integer_in(1, 4096));
  cmd->add_option("--seed", flags->o.seed, "Initialisation and data-order seed")
      ->capture_default_str()
      ->transform(integer_in(0));
  cmd->add_option("--stop-after", flags->o.stop_after, "Stop after N steps, keeping the full run's schedule")
      ->transform(integer_in(0));
  cmd->add_option("--expert-parallel", flags->o.expert_parallel,
                  "Under mpirun: split every MoE layer's experts over groups of P ranks (P divides the experts "
                  "and the ranks); docs/distributed.md")
      ->capture_default_str()
      ->transform(integer_in(1, 4096));
  cmd->add_option("--overlap", flags->o.overlap_allreduce,
                  "Under mpirun: sum the gradients layer by layer while the backward runs (on), after it (off; the "
                  "same bits), or on where the node has a core to spare for it (auto)")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "on", "off"}));
  flags->o.backend = runtime::default_backend();
  auto* backend =
      cmd->add_option("--backend", flags->o.backend,
                      "Runtime backend: host (JIT kernels, configs from the tuning cache), reference (plain C++ "
                      "loops) or cuda (GPU: fp32 storage, bf16 grouped GEMMs, one CUDA graph per step); default: the "
                      "first available of cuda, host, reference")
          ->check(CLI::IsMember({"host", "reference", "cuda"}));
  cmd->add_option("--kernels", flags->kernels, "Deprecated: --kernels jit|reference = --backend host|reference")
      ->check(CLI::IsMember({"jit", "reference"}));
  cmd->callback([flags, backend] { run(*flags, backend->count() > 0); });
}

}  // namespace moejit::cli
