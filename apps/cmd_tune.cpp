// `moejit tune`: tunes every kernel call of the MoE layer (autotune/tune_layer.hpp: the same
// Problems the runtime looks up) for the given shape and token counts and writes the winners to the
// tuning cache; with --model on the host backend, also the step's dense kernels
// (runtime/dense_step_kernels.hpp), so that a training step finds every kernel tuned. `moejit tune-worker` (hidden)
// measures one candidate in a separate process for spawn isolation (CUDA) and prints its result as one JSON line.
#include <algorithm>
#include <filesystem>
#include <iostream>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>

#include "cli_checks.hpp"
#include "commands.hpp"
#include "dense_step_kernels.hpp"
#include "files.hpp"
#include "model_config.hpp"
#include "moejit/error.hpp"
#include "moejit/kernel_spec.hpp"
#include "thread_pool.hpp"
#include "tune_layer.hpp"
#include "tune_ranks.hpp"
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
  std::string isolate;
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

// Whether the training step on `backend` runs a dense kernel through the tuning cache: every one on
// the host; on cuda the SwiGLU family only (its products are cuBLASLt's).
// The calls to tune: the MoE layer's (--shape, or the MoE layer of --model) and, for --model, every
// dense kernel of its training step that the backend looks up in the tuning cache, for micro-batches
// of each token count.
std::vector<StepCall> tune_calls(const TuneFlags& f, const std::string& backend) {
  const LayerFlags& l = f.layer;
  std::optional<ModelConfig> model;
  if (!l.model.empty()) model = find_model_config(l.model);
  // Without a model's dense kernels, the MoE layer's selection must not be empty (selected_calls says so).
  if (!model) return step_calls(selected_calls(l, backend));
  const std::vector<int64_t> tokens = parse_tokens(l.tokens);
  const std::vector<Family> only = parse_families(l.families);
  std::vector<StepCall> calls;
  if (model->is_moe())
    calls = step_calls(layer_calls(layer_shape_of(l.model, l.shape, l.dtype, backend), tokens, only, backend));
  for (int64_t t : tokens)
    for (const runtime::DenseKernel& k : runtime::dense_step_kernels(*model, std::max<int64_t>(1, t / model->seq_len)))
      if (runtime::dense_kernel_runs_on(k, backend) &&
          (only.empty() || std::find(only.begin(), only.end(), k.problem.family) != only.end()))
        calls.push_back({k.name(), k.problem});
  if (calls.empty())
    throw Error("--families selects none of the kernel families " + l.model + "'s training step looks up on " +
                backend +
                (backend == "cuda" ? " (its dense products run on cuBLASLt there; its tuned dense kernels are "
                                     "swiglu_fwd and swiglu_bwd)"
                                   : ""));
  return calls;
}

// Under mpirun the ranks split the calls (tune_ranks.hpp); rank 0 prints the header and the summary,
// every rank its own results.
int run_tune(const TuneFlags& f, runtime::Communicator& comm) {
  // Every flag is checked before a backend opens: a bad shape is reported as such, GPU or not.
  const std::string backend_name = f.layer.backend.empty() ? default_backend_name() : f.layer.backend;
  const std::vector<StepCall> calls = tune_calls(f, backend_name);
  // Before any measuring: a run whose decisions and journal cannot be written is time lost.
  const std::filesystem::path store_dir = TuningStore::default_dir();
  if (const std::string why = directory_write_problem(store_dir); !why.empty())
    throw Error("the tuning cache directory " + store_dir.string() + " is not writable (" + why +
                "): tune would have nowhere to keep its journal and decisions; set MOEJIT_CACHE_DIR to a writable "
                "directory");
  std::unique_ptr<Backend> backend = open_backend(backend_name);
  const bool ranks = comm.size() > 1;
  // A kernel pool's thread spinning for its next launch would take a core another rank measures on.
  if (backend->name() == "host")
    stop_spinning_if_oversubscribed(comm.ranks_on_this_node(), std::max(1, backend->device().compute_units));
  const std::string device =
      backend->device().name + " (" + backend->device().arch + ", " + backend->name() + " backend)";
  if (ranks) check_same_device(comm, device);
  LayerTuneOptions options;
  options.tune = tune_options(f, *backend);
  options.tune.record = !ranks;  // under mpirun the decisions are merged at the end
  options.max_seconds = f.max_seconds;
  const std::string rank = ranks ? "rank " + std::to_string(comm.rank()) + ": " : "";
  options.on_result = [&](const LayerTuneResult& r) {
    std::cout << "  " << rank << r.call.name << ": " << r.result.summary() << "\n" << std::flush;
  };
  if (comm.root())
    std::cout << "tuning on " << device << ", isolation " << to_string(options.tune.isolation)
              << (ranks ? ", " + std::to_string(calls.size()) + " calls split over " + std::to_string(comm.size()) +
                              " ranks"
                        : std::string())
              << "\n"
              << std::flush;
  const std::string since = Provenance::here().date;
  const LayerTuneReport report = tune_layer(*backend, share_of_calls(calls, comm.rank(), comm.size()), options);
  if (!report.not_started.empty())
    std::cout << "  " << rank << "time budget spent: " << report.not_started.front().problem.to_string() << " and "
              << report.not_started.size() - 1 << " later call(s) not tuned\n";
  std::vector<Decision> mine;
  for (const LayerTuneResult& t : report.tuned)
    if (t.result.decision) mine.push_back(*t.result.decision);
  TuningStore store(store_dir);
  const int decisions = ranks ? merge_over_ranks(comm, store, mine, since) : report.decisions();
  double tuned = double(report.tuned.size()), seconds = report.seconds;
  if (ranks) {
    double sums[2] = {tuned, 0};
    comm.allreduce_sum(std::span<double>(sums, 1));
    tuned = sums[0];
  }
  if (comm.root())
    std::cout << decisions << " decision(s) written to " << store_dir.string() << " in " << seconds << " s"
              << (ranks ? " (rank 0; every rank holds them)" : "") << "\n";
  if (tuned == 0) throw Error("no kernel was tuned: --max-seconds was spent before the first one");
  if (decisions == 0)
    throw Error("no decision was made: no candidate passed for any of the " + std::to_string(int64_t(tuned)) +
                " kernel(s) tuned (their results are above)");
  return kOk;
}

// Under mpirun an error on one rank ends every rank (the others would wait in a collective forever).
void run_tune(const TuneFlags& f) {
  runtime::Communicator& comm = runtime::process_communicator();
  if (comm.size() == 1) {
    run_tune(f, comm);
    return;
  }
  try {
    run_tune(f, comm);
  } catch (const std::exception& e) {
    comm.abort(e.what(), kError);
  }
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
  f->layer.add_to(cmd,
                  "Model config name or path: its MoE layer and the dense kernels of its training step that the "
                  "backend looks up (on the host every one, on cuda the SwiGLU), for micro-batches of --tokens "
                  "tokens");
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
  cmd->add_option("--warmup", f->warmup, "Warm-up samples (re-timing: and at least 20 ms of them)")
      ->capture_default_str()
      ->transform(integer_in(0, 1000000));
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
