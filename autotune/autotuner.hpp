// The autotuner: for one KernelSpec and Problem on one Backend, find the fastest correct config.
//   enumerate + prune (reasons counted) -> search strategy picks batches -> parallel precompile on a
//   ThreadPool (base/), overlapped with measuring the candidates already built -> correctness gate ->
//   warm-up/repeats/median timing (optionally cold-cache) -> each result appended to the journal
//   -> the top few re-timed interleaved -> deterministic tie-break -> Decision (stored).
// Risky execution is isolated (see isolation.hpp); budgets stop the search early (partial).
#pragma once
#include <cstdio>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "candidate.hpp"
#include "decision.hpp"
#include "isolation.hpp"
#include "moejit/kernel_spec.hpp"
#include "progress.hpp"
#include "prune.hpp"
#include "workload.hpp"

namespace moejit {

struct TuneOptions {
  TimingOptions timing;
  Isolation isolation = Isolation::fork;
  // spawn: the worker's argv up to its per-candidate flags, e.g. {"/usr/bin/moejit", "tune-worker",
  // "--backend", "cuda"}; worker_arguments() supplies the rest.
  std::vector<std::string> worker_command;
  double candidate_timeout_s = 60;
  double max_seconds = 0;  // 0: no limit. Stops starting new candidates once exceeded.
  int max_candidates = 0;  // 0: no limit. Counts every measured candidate, journal included.
  size_t exhaustive_limit = 64;
  int retime_top = 3;
  double tie_tolerance = 0.01;  // configs within 1% of the best are ties
  // Racing: a candidate whose first kRaceSamples timed samples are all slower than the best time so
  // far times this factor stops sampling (its time is the median of what it took). The margin
  // keeps the winner: the finalists are re-timed in full anyway. 0: time every candidate fully.
  double abandon_factor = 1.5;
  unsigned compile_threads = 0;      // 0: one per hardware thread
  unsigned cpu_threads = 0;          // the workloads' inputs, references and checks; 0: every hardware thread
  std::filesystem::path tuning_dir;  // journal + store; empty: TuningStore::default_dir()
  bool record = true;                // store the decision in tuning_dir
  std::FILE* progress = stderr;      // nullptr: silent
};

struct TuneResult {
  Problem problem;  // tokens = the token bucket tuned
  PruneReport prune;
  std::string strategy;
  std::vector<CandidateResult> results;  // journal entries first, then this run's, in order
  int resumed = 0;                       // results taken from the journal
  int measured = 0;                      // results measured by this run
  bool partial = false;
  double seconds = 0;          // the whole tune, wall time
  double prepare_seconds = 0;  // of which the workload's inputs and reference (Workload::prepare)
  std::vector<std::pair<std::string, double>> retimed;  // top few after interleaved re-timing
  std::optional<Decision> decision;                     // empty when no candidate passed the gate
  int count(CandidateStatus status) const;
  std::string summary() const;
};

TuneResult tune(Backend& backend, const KernelSpec& spec, Workload& workload, const Problem& problem,
                const TuneOptions& options);

// Spawn isolation protocol: the flags describing one candidate, and the worker side that measures it.
std::vector<std::string> worker_arguments(const Problem& problem, const Config& config, const TimingOptions& timing);
// cpu_threads: for the workload, as TuneOptions::cpu_threads.
CandidateResult measure_candidate(Backend& backend, const KernelSpec& spec, Workload& workload, const Problem& problem,
                                  const Config& config, const TimingOptions& timing, unsigned cpu_threads = 0);

}  // namespace moejit
