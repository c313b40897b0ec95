// Tuning a whole MoE layer: every kernel call of its training step (templates/moe_layer_steps.hpp)
// at every token count asked for, one after the other, under one time budget. `moejit tune`,
// `moejit bench` and bench/bench_tune all go through here, so they tune and time the very problems
// the runtime looks up. The calls are named problems, so a training step's other kernels (the host
// backend's dense ones, runtime/dense_step_kernels.hpp) are tuned the same way.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "autotuner.hpp"
#include "moe_layer_steps.hpp"

namespace moejit {

// The layer's kernel calls for each token count, in step order, narrowed to `only` (empty: all) and,
// given a backend, to the steps it runs as kernels of their own (step_runs_on).
std::vector<LayerKernel> layer_calls(const LayerShape& shape, const std::vector<int64_t>& tokens,
                                     const std::vector<Family>& only = {}, std::string_view backend = {});

// One kernel call of a training step: its name in reports ("up_swiglu", "matmul_fwd 256x768") and
// the Problem it is tuned under and looked up by.
struct StepCall {
  std::string name;
  Problem problem;
};
// The layer's calls named by their steps.
std::vector<StepCall> step_calls(const std::vector<LayerKernel>& calls);

struct LayerTuneResult {
  StepCall call;
  TuneResult result;
};

struct LayerTuneReport {
  std::vector<LayerTuneResult> tuned;
  std::vector<StepCall> not_started;  // the time budget ran out before these
  double seconds = 0;
  int decisions() const;
};

struct LayerTuneOptions {
  TuneOptions tune;
  double max_seconds = 0;  // 0: no limit; otherwise the budget of the whole layer, not of each call
  std::function<void(const LayerTuneResult&)> on_result;  // after each call, e.g. to print it
};

// Tunes `calls` in order on `backend`, one workload per family for the whole run (a workload keeps
// what it generated for one bucket for the next).
LayerTuneReport tune_layer(Backend& backend, const std::vector<StepCall>& calls, const LayerTuneOptions& options);
inline LayerTuneReport tune_layer(Backend& backend, const std::vector<LayerKernel>& calls,
                                  const LayerTuneOptions& options) {
  return tune_layer(backend, step_calls(calls), options);
}

}  // namespace moejit
