// One candidate's outcome and how it is measured: correctness gate first, then warm-up, repeated
// samples and the median. Shared by the in-process, forked and spawned (worker) paths.
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "moejit/backend.hpp"
#include "workload.hpp"

namespace moejit {

enum class CandidateStatus { ok, wrong, crashed, timeout, compile_error, failed };
const char* to_string(CandidateStatus status);
CandidateStatus parse_candidate_status(const std::string& text);  // throws Error on unknown text

struct CandidateResult {
  std::string config;  // canonical Config text
  CandidateStatus status = CandidateStatus::failed;
  double time_ms = 0;    // median per call (ok only)
  double max_error = 0;  // wrong: the largest error seen
  std::string detail;    // why it is not ok, in words
  bool operator==(const CandidateResult&) const = default;
};

nlohmann::json to_json(const CandidateResult& result);
CandidateResult candidate_result_from_json(const nlohmann::json& j);  // throws Error on bad fields

struct TimingOptions {
  int warmup = 3;
  // The re-timing of the finalists (in the tuning process, whose pool's helpers have slept since
  // the last launch) warms each run up for at least this long, in the samples' own time: a host
  // candidate on more than one thread runs at one thread's speed until the scheduler has moved a
  // woken helper off the caller's CPU, which took whole runs of a few samples (tiny-moe-r20's gate
  // backward re-timed at its 1-thread time in 1 of 6 tunes; bench/results/2026-12-08-host-emr). The
  // search's candidates start fresh threads in fresh workers and keep the counted warm-up.
  double min_warmup_ms = 20;
  int repeats = 15;
  // Cold cache: rotate through enough input/output sets to exceed the device's last-level cache
  // (twice its size), so every sample reads from memory as a large training step would.
  bool cold = false;
  // Very short kernels are timed in batches of calls so each sample lasts at least this long.
  double min_sample_ms = 0.05;
  // Racing: once kRaceSamples timed samples are all above this (ms per call), stop sampling: the
  // candidate cannot win. The autotuner sets it per candidate to the best time so far times
  // TuneOptions::abandon_factor; 0 (the default, e.g. for benchmarks) times every repeat.
  double abandon_above_ms = 0;
};
constexpr int kRaceSamples = 3;

// How many input/output sets the workload should prepare for these options on this device.
int rotation_copies(const TimingOptions& timing, const DeviceDescription& device, size_t bytes_per_copy);

// Median time per call of `candidate` (samples of `batch` calls, rotating through `copies` sets).
struct Timer {
  Backend& backend;
  Workload& workload;
  int copies = 1;
  int next_copy = 0;
  int batch = 1;
  void calibrate(LoadedCandidate& candidate, const TimingOptions& timing);
  double sample(LoadedCandidate& candidate);  // ms per call
  // At least `samples` samples, and at least `min_ms` of them (in the samples' own time).
  void warm_up(LoadedCandidate& candidate, int samples, double min_ms);
};

// Correctness gate, then timing: the whole measurement of one loaded candidate.
CandidateResult evaluate_loaded(Backend& backend, Workload& workload, LoadedCandidate& candidate,
                                const TimingOptions& timing, int copies);

double median(std::vector<double> values);

}  // namespace moejit
