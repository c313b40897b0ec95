// `moejit tune`: tunes every kernel call of the MoE layer (runtime/moe_layer_kernels.hpp: the same
// Problems the runtime looks up) for the given shape and token counts and writes the winners to the
// tuning cache. `moejit tune-worker` (hidden) measures one candidate
// in a separate process for spawn isolation (CUDA) and prints its result as one JSON line.
#include <chrono>
#include <filesystem>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "autotuner.hpp"
#include "cli_checks.hpp"
#include "commands.hpp"
#include "files.hpp"
#include "model_config.hpp"
#include "moe_layer_kernels.hpp"
#include "moejit/error.hpp"
#include "moejit/kernel_spec.hpp"
#include "tuning_common.hpp"
#include "tuning_store.hpp"

namespace moejit::cli {
namespace {

// --race: 0 turns racing off; a factor below 1 would abandon candidates faster than the best so far.
CLI::Validator race_factor() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        if (real_in(0, 0)(text).empty()) return {};
        const std::string why = real_in(1)(text);
        return why.empty() ? why : why + " (or 0: racing off)";
      },
      "0 or >= 1", "race_factor");
}

struct TuneFlags {
  LayerFlags layer;
  std::string model, isolate;
  double max_seconds = 0, timeout = 60, race = 1.5;
  int max_candidates = 0, repeats = 15, warmup = 3;
  size_t exhaustive_limit = 64;
  bool cold = false;
};

int run_tune(const TuneFlags& f) {
  std::string shape = f.layer.shape;
  if (!f.model.empty()) {  // the MoE layer's shape of a model config (models/configs/)
    const ModelConfig config = find_model_config(f.model);
    if (!config.is_moe())
      throw Error("model '" + f.model + "' has no MoE layer to tune: pick an MoE config (moejit plan --list)");
    shape = std::to_string(config.d_model) + "," + std::to_string(config.moe->d_expert) + "," +
            std::to_string(config.moe->experts) + "," + std::to_string(config.moe->top_k);
  }
  if (shape.empty()) throw Error("give --shape d_model,d_expert,E,topk or --model NAME");
  // Before any measuring: a run whose decisions and journal cannot be written is time lost.
  const std::filesystem::path store_dir = TuningStore::default_dir();
  if (const std::string why = directory_write_problem(store_dir); !why.empty())
    throw Error("the tuning cache directory " + store_dir.string() + " is not writable (" + why +
                "): tune would have nowhere to keep its journal and decisions; set MOEJIT_CACHE_DIR to a writable "
                "directory");
  std::unique_ptr<Backend> backend = open_backend(f.layer.backend);
  const runtime::LayerShape layer = layer_shape(shape, f.layer.dtype, *backend);
  const std::vector<int64_t> tokens = parse_tokens(f.layer.tokens);

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
  int decisions = 0, untuned = 0, attempted = 0;
  bool out_of_time = false;
  std::map<std::string, std::unique_ptr<Workload>> workloads;
  std::set<std::string> layer_families, tuned_families;
  for (int64_t t : tokens) {
    // The layer's own kernel list, so that the runtime later looks up exactly these problems.
    for (const runtime::LayerKernel& k : runtime::moe_layer_kernels(layer, t, backend->name())) {
      const Problem& p = k.problem;
      layer_families.insert(p.family);
      if (!selected(f.layer.families, p.family)) continue;
      tuned_families.insert(p.family);
      const KernelSpec& spec = find_spec(p.family);
      // One workload per family for the whole run: a workload may keep what it generated for one
      // bucket for the next (the grouped GEMMs' inputs depend only on seed and index).
      auto& workload = workloads[p.family];
      if (!workload) workload = make_workload(p.family);
      if (!workload) {
        std::cout << "  " << runtime::to_string(k.step) << " (" << p.family
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
      ++attempted;
      TuneResult r = tune(*backend, spec, *workload, p, options);
      std::cout << "  " << runtime::to_string(k.step) << ": " << r.summary() << "\n";
      if (r.decision) ++decisions;
    }
    if (out_of_time) break;
  }
  check_some_selected(tuned_families, layer_families, backend->name());
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::cout << decisions << " decision(s) written to " << TuningStore::default_dir().string() << " in " << seconds
            << " s" << (untuned ? " (" + std::to_string(untuned) + " kernel(s) without a workload)" : "") << "\n";
  if (attempted == 0)
    throw Error("no kernel was tuned: " + std::string(out_of_time ? "--max-seconds was spent before the first one"
                                                                  : "none of them has a workload"));
  if (decisions == 0)
    throw Error("no decision was made: no candidate passed for any of the " + std::to_string(attempted) +
                " kernel(s) tuned (their results are above)");
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
  auto* model = cmd->add_option("--model,--config", f->model, "Model config name or path (its MoE layer's shape)");
  auto* positional = cmd->add_option("config", f->model, "The same as --model")->excludes(model);
  f->layer.add_to(cmd)->excludes(model)->excludes(positional);
  cmd->add_option("--max-seconds", f->max_seconds, "Stop starting new candidates after this many seconds (0: no limit)")
      ->check(real_in(0));
  cmd->add_option("--max-candidates", f->max_candidates, "Measure at most this many candidates per problem (0: all)")
      ->transform(integer_in(0, std::numeric_limits<int>::max()));
  cmd->add_option("--isolate", f->isolate, "spawn (default), none, or fork (toy backends only)")
      ->check(one_of({"spawn", "none", "fork"}, "isolation"));
  cmd->add_option("--timeout", f->timeout, "Seconds a candidate may take before it is killed")
      ->capture_default_str()
      ->check(real_in(0, kMaxReal, true));
  cmd->add_option("--exhaustive-limit", f->exhaustive_limit, "Larger spaces use local search")
      ->capture_default_str()
      ->transform(integer_in(0));
  cmd->add_option("--warmup", f->warmup, "Warm-up samples")->capture_default_str()->transform(integer_in(0, 1000000));
  cmd->add_option("--repeats", f->repeats, "Timed samples (median)")
      ->capture_default_str()
      ->transform(integer_in(1, 1000000));
  cmd->add_option("--race", f->race,
                  "Stop timing a candidate whose first samples are all this many times the best so far (0: off)")
      ->capture_default_str()
      ->check(race_factor());
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
