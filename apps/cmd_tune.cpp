// `moejit tune`: tunes every kernel call of the MoE layer (runtime/moe_layer_kernels.hpp: the same
// Problems the runtime looks up) for the given shape and token counts and writes the winners to the
// tuning cache; with --model on the host backend, also the step's dense kernels
// (runtime/dense_step_kernels.hpp), so that a training step finds every kernel tuned. `moejit tune-worker` (hidden)
// measures one candidate in a separate process for spawn isolation (CUDA) and prints its result as one JSON line.
#include <chrono>
#include <filesystem>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>

#include "autotuner.hpp"
#include "commands.hpp"
#include "dense_step_kernels.hpp"
#include "model_config.hpp"
#include "moe_layer_kernels.hpp"
#include "moejit/error.hpp"
#include "moejit/kernel_spec.hpp"
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

struct TuneTarget {
  std::string label;  // the layer step or dense kernel name
  Problem problem;
};

// The kernels to tune for token count t: the MoE layer's (a --shape, or the MoE layer of --model) and,
// for --model on the host backend, the step's dense kernels for micro-batches of t tokens.
std::vector<TuneTarget> tune_targets(const std::optional<ModelConfig>& model, const Problem& layer, int64_t t,
                                     const std::string& backend) {
  std::vector<TuneTarget> targets;
  if (layer.d_model > 0) {
    const runtime::LayerShape shape{layer.dtype, layer.d_model, layer.d_expert, layer.num_experts, layer.top_k};
    for (const runtime::LayerKernel& k : runtime::moe_layer_kernels(shape, t, backend))
      targets.push_back({runtime::to_string(k.step), k.problem});
  }
  if (model && backend == "host")
    for (const runtime::DenseKernel& k : runtime::dense_step_kernels(*model, std::max<int64_t>(1, t / model->seq_len)))
      targets.push_back({k.name(), k.problem});
  return targets;
}

int run_tune(const TuneFlags& f) {
  std::string shape = f.shape;
  std::optional<ModelConfig> config;
  if (!f.model.empty()) {  // a model config (models/configs/): its MoE layer's shape, and its dense kernels
    config = find_model_config(f.model);
    if (config->is_moe())
      shape = std::to_string(config->d_model) + "," + std::to_string(config->moe->d_expert) + "," +
              std::to_string(config->moe->experts) + "," + std::to_string(config->moe->top_k);
  }
  if (shape.empty() && !config) throw Error("give --shape d_model,d_expert,E,topk or --model NAME");
  Problem base = shape.empty() ? Problem{} : parse_shape(shape, f.dtype.empty() ? "f32" : f.dtype);
  const std::string backend_name = f.backend.empty() ? default_backend_name() : f.backend;
  if (config && !config->is_moe() && backend_name != "host")
    throw Error("model '" + f.model + "' has no MoE layer to tune on " + backend_name +
                ", and dense kernels are tuned on the host backend only: use --backend host or an MoE config "
                "(moejit plan --list)");
  std::unique_ptr<Backend> backend = open_backend(backend_name);
  if (f.dtype.empty()) base.dtype = runtime::default_layer_dtype(backend->name());
  const std::vector<int64_t> tokens = parse_tokens(f.tokens);

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
  if (options.isolation == Isolation::fork && backend->name() == "host")
    throw Error(
        "--isolate fork cannot run host kernels (their worker threads do not survive fork()): use spawn or none");
  if (options.isolation == Isolation::spawn)
    options.worker_command = {std::filesystem::read_symlink("/proc/self/exe").string(), "tune-worker", "--backend",
                              backend->name()};

  std::cout << "tuning on " << backend->device().name << " (" << backend->device().arch << ", " << backend->name()
            << " backend), isolation " << to_string(options.isolation) << "\n";
  const auto start = std::chrono::steady_clock::now();
  int decisions = 0, untuned = 0;
  bool out_of_time = false;
  std::map<std::string, std::unique_ptr<Workload>> workloads;
  for (int64_t t : tokens) {
    // The step's own kernel lists, so that the runtime later looks up exactly these problems.
    for (const TuneTarget& k : tune_targets(config, base, t, backend->name())) {
      const Problem& p = k.problem;
      if (!f.families.empty() && std::find(f.families.begin(), f.families.end(), p.family) == f.families.end())
        continue;
      const KernelSpec& spec = find_spec(p.family);
      // One workload per family for the whole run: a workload may keep what it generated for one
      // bucket for the next (the grouped GEMMs' inputs depend only on seed and index).
      auto& workload = workloads[p.family];
      if (!workload) workload = make_workload(p.family);
      if (!workload) {
        std::cout << "  " << k.label << " (" << p.family
                  << "): skipped (no workload registered in autotune/workloads.cpp)\n";
        ++untuned;
        continue;
      }
      const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      if (f.max_seconds > 0 && elapsed >= f.max_seconds) {
        std::cout << "  time budget spent: " << p.to_string() << " and later not tuned\n";
        out_of_time = true;
        break;
      }
      if (f.max_seconds > 0) options.max_seconds = f.max_seconds - elapsed;
      TuneResult r = tune(*backend, spec, *workload, p, options);
      std::cout << "  " << k.label << ": " << r.summary() << "\n";
      if (r.decision) ++decisions;
    }
    if (out_of_time) break;
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::cout << decisions << " decision(s) written to " << TuningStore::default_dir().string() << " in " << seconds
            << " s" << (untuned ? " (" + std::to_string(untuned) + " kernel(s) without a workload)" : "") << "\n";
  if (decisions == 0) throw Error("no decision was made: see the candidate results above");
  return kOk;
}

struct WorkerFlags {
  std::string backend, family, dtype = "bf16", config;
  int64_t experts = 0, topk = 0, d_model = 0, d_expert = 0, tokens = 0;
  TimingOptions timing;
};

void run_worker(const WorkerFlags& f) {
  CandidateResult result;
  result.config = f.config;
  try {
    std::unique_ptr<Backend> backend = open_backend(f.backend);
    const KernelSpec& spec = find_spec(f.family);
    auto workload = make_workload(f.family);
    if (!workload) throw Error("no workload for family " + f.family);
    Problem p;
    p.family = f.family;
    p.dtype = parse_dtype(f.dtype);
    p.num_experts = f.experts, p.top_k = f.topk, p.d_model = f.d_model, p.d_expert = f.d_expert, p.tokens = f.tokens;
    result = measure_candidate(*backend, spec, *workload, p, Config::parse(f.config), f.timing);
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
  worker->add_option("--family", w->family)->required();
  worker->add_option("--dtype", w->dtype);
  worker->add_option("--experts", w->experts);
  worker->add_option("--topk", w->topk);
  worker->add_option("--d-model", w->d_model);
  worker->add_option("--d-expert", w->d_expert);
  worker->add_option("--tokens", w->tokens);
  worker->add_option("--config", w->config)->required();
  worker->add_option("--warmup", w->timing.warmup);
  worker->add_option("--repeats", w->timing.repeats);
  worker->add_option("--min-sample-ms", w->timing.min_sample_ms);
  worker->add_flag("--cold", w->timing.cold);
  worker->add_option("--abandon-above-ms", w->timing.abandon_above_ms);
  worker->callback([w] { run_worker(*w); });
}

}  // namespace moejit::cli
