#include "tune_layer.hpp"

#include <algorithm>
#include <chrono>
#include <map>

namespace moejit {

std::vector<LayerKernel> layer_calls(const LayerShape& shape, const std::vector<int64_t>& tokens,
                                     const std::vector<Family>& only, std::string_view backend) {
  std::vector<LayerKernel> calls;
  for (int64_t t : tokens)
    for (LayerKernel& k : moe_layer_kernels(shape, t))
      if ((only.empty() || std::find(only.begin(), only.end(), k.problem.family) != only.end()) &&
          (backend.empty() || step_runs_on(k.step, backend)))
        calls.push_back(std::move(k));
  return calls;
}

std::vector<StepCall> step_calls(const std::vector<LayerKernel>& calls) {
  std::vector<StepCall> named;
  for (const LayerKernel& k : calls) named.push_back({std::string(to_string(k.step)), k.problem});
  return named;
}

int LayerTuneReport::decisions() const {
  return static_cast<int>(std::count_if(tuned.begin(), tuned.end(), [](const auto& t) { return t.result.decision; }));
}

LayerTuneReport tune_layer(Backend& backend, const std::vector<StepCall>& calls, const LayerTuneOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  const auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(); };
  LayerTuneReport report;
  std::map<Family, std::unique_ptr<Workload>> workloads;
  for (size_t i = 0; i < calls.size(); ++i) {
    const StepCall& call = calls[i];
    TuneOptions per_call = options.tune;
    if (options.max_seconds > 0) {
      if (elapsed() >= options.max_seconds) {
        report.not_started.assign(calls.begin() + static_cast<std::ptrdiff_t>(i), calls.end());
        break;
      }
      per_call.max_seconds = options.max_seconds - elapsed();
    }
    const Family family = call.problem.family;
    auto& workload = workloads[family];
    if (!workload) workload = make_workload(family, backend.name());
    LayerTuneResult r{call, tune(backend, spec_for(family, backend.name()), *workload, call.problem, per_call)};
    if (options.on_result) options.on_result(r);
    report.tuned.push_back(std::move(r));
  }
  report.seconds = elapsed();
  return report;
}

}  // namespace moejit
