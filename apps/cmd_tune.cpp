// `moejit tune`: tunes every kernel call of the MoE layer (autotune/tune_layer.hpp: the same
// Problems the runtime looks up) for the given shape and token counts and writes the winners to the
// tuning cache; with --model on the host backend, also the step's dense kernels
// (runtime/dense_step_kernels.hpp), so that a training step finds every kernel tuned. `moejit tune-worker` (hidden)
// measures one candidate in a separate process for spawn isolation (CUDA) and prints its result as one JSON line.
#include <algorithm>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>

#include "commands.hpp"
#include "dense_step_kernels.hpp"
#include "model_config.hpp"
#include "moejit/error.hpp"
#include "moejit/kernel_spec.hpp"
#include "tune_layer.hpp"
#include "tuning_common.hpp"
#include "tuning_store.hpp"

namespace moejit::cli {
namespace {

struct TuneFlags {
  std::string model, shape, tokens = "4096", dtype, backend, isolate;
  std::vector<std::string> families;
  double max_seconds = 0, timeout = 60, race = 1.5;
  int max_candidates = 0, repeats = 15, warmup = 3;
  size_t exhaustive_limit = 64;
  bool cold = false;
};

TuneOptions tune_options(const TuneFlags& f, const Backend& backend) {
  TuneOptions options;
  options.timing.warmup = f.warmup;
  options.timing.repeats = f.repeats;
  options.timing.cold = f.cold;
  options.candidate_timeout_s = f.timeout;
  options.max_candidates = f.max_candidates;
  options.exhaustive_limit = f.exhaustive_limit;
  options.abandon_factor = f.race;
  // spawn by default on both backends: a forked child has no CUDA context to reuse, and the host
  // backend's kernels run on a worker pool whose threads do not survive fork().
  options.isolation = !f.isolate.empty() ? parse_isolation(f.isolate) : Isolation::spawn;
  if (options.isolation == Isolation::fork && backend.name() == "host")
    throw Error(
        "--isolate fork cannot run host kernels (their worker threads do not survive fork()): use spawn or none");
  if (options.isolation == Isolation::spawn)
    options.worker_command = {std::filesystem::read_symlink("/proc/self/exe").string(), "tune-worker", "--backend",
                              backend.name()};
  return options;
}

// The calls to tune: the MoE layer's (--shape, or the MoE layer of --model) and, for --model on the
// host backend, every dense kernel of its training step for micro-batches of each token count.
std::vector<StepCall> tune_calls(const TuneFlags& f, const std::string& backend) {
  const std::vector<int64_t> tokens = parse_tokens(f.tokens);
  const std::vector<Family> only = parse_families(f.families);
  std::optional<ModelConfig> model;
  if (!f.model.empty()) model = find_model_config(f.model);
  if (model && !model->is_moe() && backend != "host")
    throw Error("model '" + f.model + "' has no MoE layer to tune on " + backend +
                ", and its dense kernels are tuned on the host backend: use --backend host or an MoE config "
                "(moejit plan --list)");
  std::vector<StepCall> calls;
  if (!model || model->is_moe())
    calls = step_calls(layer_calls(layer_shape_of(f.model, f.shape, f.dtype, backend), tokens, only));
  if (model && backend == "host")
    for (int64_t t : tokens)
      for (const runtime::DenseKernel& k :
           runtime::dense_step_kernels(*model, std::max<int64_t>(1, t / model->seq_len)))
        if (only.empty() || std::find(only.begin(), only.end(), k.problem.family) != only.end())
          calls.push_back({k.name(), k.problem});
  return calls;
}

int run_tune(const TuneFlags& f) {
  // Every flag is checked before a backend opens: a bad shape is reported as such, GPU or not.
  const std::string backend_name = f.backend.empty() ? default_backend_name() : f.backend;
  const std::vector<StepCall> calls = tune_calls(f, backend_name);
  std::unique_ptr<Backend> backend = open_backend(backend_name);
  LayerTuneOptions options;
  options.tune = tune_options(f, *backend);
  options.max_seconds = f.max_seconds;
  options.on_result = [](const LayerTuneResult& r) {
    std::cout << "  " << r.call.name << ": " << r.result.summary() << "\n";
  };
  std::cout << "tuning on " << backend->device().name << " (" << backend->device().arch << ", " << backend->name()
            << " backend), isolation " << to_string(options.tune.isolation) << "\n";
  const LayerTuneReport report = tune_layer(*backend, calls, options);
  if (!report.not_started.empty())
    std::cout << "  time budget spent: " << report.not_started.front().problem.to_string() << " and "
              << report.not_started.size() - 1 << " later call(s) not tuned\n";
  std::cout << report.decisions() << " decision(s) written to " << TuningStore::default_dir().string() << " in "
            << report.seconds << " s\n";
  if (report.decisions() == 0) throw Error("no decision was made: see the candidate results above");
  return kOk;
}

struct WorkerFlags {
  std::string backend, problem, config;
  TimingOptions timing;
};

void run_worker(const WorkerFlags& f) {
  CandidateResult result;
  result.config = f.config;
  try {
    std::unique_ptr<Backend> backend = open_backend(f.backend);
    const Problem p = Problem::parse(f.problem);
    auto workload = make_workload(p.family, backend->name());
    result = measure_candidate(*backend, spec_for(p.family, backend->name()), *workload, p, Config::parse(f.config),
                               f.timing);
  } catch (const std::exception& e) {
    result.status = CandidateStatus::failed;
    result.detail = e.what();
  }
  std::cout << to_json(result).dump() << std::endl;
}

}  // namespace

void add_tune_command(CLI::App& app) {
  auto f = std::make_shared<TuneFlags>();
  auto* cmd = app.add_subcommand("tune", "Autotune the MoE layer's kernels for a shape and write the tuning cache");
  auto* model = cmd->add_option("--model", f->model,
                                "Model config name or path: its MoE layer, and on the host backend every dense "
                                "kernel of its training step (micro-batches of --tokens tokens)");
  cmd->add_option("--shape", f->shape, "d_model,d_expert,E,topk")->excludes(model);
  cmd->add_option("--tokens", f->tokens, "Token counts, comma separated, or 'all' buckets 1..65536")
      ->capture_default_str();
  cmd->add_option("--dtype", f->dtype, "bf16 or f32 (default: f32 on the host backend, bf16 on cuda)");
  cmd->add_option("--backend", f->backend, "host or cuda (default: cuda if a GPU is usable)");
  cmd->add_option("--families", f->families, "Only these kernel families")->delimiter(',');
  cmd->add_option("--max-seconds", f->max_seconds, "Stop starting new candidates after this many seconds");
  cmd->add_option("--max-candidates", f->max_candidates, "Measure at most this many candidates per problem");
  cmd->add_option("--isolate", f->isolate, "spawn (default), none, or fork (toy backends only)");
  cmd->add_option("--timeout", f->timeout, "Seconds a candidate may take before it is killed")->capture_default_str();
  cmd->add_option("--exhaustive-limit", f->exhaustive_limit, "Larger spaces use local search")->capture_default_str();
  cmd->add_option("--warmup", f->warmup, "Warm-up samples")->capture_default_str();
  cmd->add_option("--repeats", f->repeats, "Timed samples (median)")->capture_default_str();
  cmd->add_option("--race", f->race,
                  "Stop timing a candidate whose first samples are all this many times the best so far (0: off)")
      ->capture_default_str();
  cmd->add_flag("--cold", f->cold, "Cold-cache timing: rotate inputs larger than the last-level cache");
  cmd->callback([f] { run_tune(*f); });

  auto w = std::make_shared<WorkerFlags>();
  auto* worker = app.add_subcommand("tune-worker", "")->group("");  // internal: spawn isolation
  worker->add_option("--backend", w->backend)->required();
  worker->add_option("--problem", w->problem)->required();
  worker->add_option("--config", w->config)->required();
  worker->add_option("--warmup", w->timing.warmup);
  worker->add_option("--repeats", w->timing.repeats);
  worker->add_option("--min-sample-ms", w->timing.min_sample_ms);
  worker->add_flag("--cold", w->timing.cold);
  worker->add_option("--abandon-above-ms", w->timing.abandon_above_ms);
  worker->callback([w] { run_worker(*w); });
}

}  // namespace moejit::cli
