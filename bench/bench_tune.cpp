// Tuning cost and benefit: tunes the kernel calls of one MoE layer shape (autotune/tune_layer.hpp:
// routing, grouped GEMMs, SwiGLU backward; --families narrows it) for every token bucket, from an empty tuning cache,
// and reports the wall time (goal for moe-7b on an H100: <= 120 s for all buckets) and, per bucket, the tuned config's
// time against the built-in heuristic's, measured in the same process.
//   bench_tune [--backend cuda|host] [--shape d_model,d_expert,E,topk] [--tokens all|1,2,...]
//              [--isolate none|spawn] [--families a,b] [--dtype bf16|f32] [--race F] [--compare-race]
//              [--tag NAME]
// --race F: TuneOptions::abandon_factor (0: off); --race 0 --compare-race is the noise control
// (two identical passes: how often do winners differ without racing?).
// --compare-race: tunes everything twice in this process, racing off (abandon_factor 0) then on, binaries precompiled
// first so neither pass pays for compiles; reports both wall times, their ratio and whether the winners agree
// (differing winners re-timed side by side).
#include <chrono>
#include <cstring>
#include <filesystem>
#include <iomanip>
#include <map>
#include <sstream>

#include "autotuner.hpp"
#include "bench_util.hpp"
#include "cuda_backend.hpp"
#include "moejit/kernel_spec.hpp"
#include "tune_layer.hpp"
#if MOEJIT_WITH_LLVM
#include "host_backend.hpp"
#endif

using namespace moejit;

namespace {

std::vector<std::string> split(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string part; std::getline(in, part, ',');) out.push_back(part);
  return out;
}

struct Pass {
  double seconds = 0;
  int candidates = 0, raced = 0;
  std::vector<std::tuple<const KernelSpec*, Problem, Decision>> tuned;
};

Pass tune_all(Backend& backend, const std::vector<LayerKernel>& calls, TuneOptions options) {
  Pass pass;
  options.tuning_dir = std::filesystem::temp_directory_path() / ("moejit-bench-tune-" + std::to_string(::getpid()));
  std::filesystem::remove_all(options.tuning_dir);
  LayerTuneOptions layer;
  layer.tune = options;
  const LayerTuneReport report = tune_layer(backend, calls, layer);
  for (const LayerTuneResult& r : report.tuned) {
    pass.candidates += static_cast<int>(r.result.results.size());
    for (const auto& c : r.result.results) pass.raced += c.detail.rfind("raced out", 0) == 0;
    if (r.result.decision)
      pass.tuned.emplace_back(&spec_for(r.call.problem.family, backend.name()), r.result.problem, *r.result.decision);
  }
  pass.seconds = report.seconds;
  std::filesystem::remove_all(options.tuning_dir);
  return pass;
}

// Fills the binary cache with every surviving config of every problem, so timed passes compare
// tuning, not compiling.
void precompile(Backend& backend, const std::vector<LayerKernel>& calls) {
  for (const LayerKernel& call : calls) {
    const KernelSpec& spec = spec_for(call.problem.family, backend.name());
    Problem p = call.problem;
    p.tokens = token_bucket(p.tokens);
    for (const Config& c : enumerate_and_prune(spec, p, backend.device()).survivors)
      backend.build(spec.render(p, c, backend.device()));
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string shape = "2048,512,78,6", tokens = "all", isolate = "spawn", backend_name = "cuda", families, dtype;
  std::string tag;  // appended to the result's name, so several runs can share $MOEJIT_BENCH_OUT
  bool compare_race = false;
  double race = TuneOptions{}.abandon_factor;
  for (int i = 1; i < argc; ++i) {
    const bool has_value = i + 1 < argc;
    if (!std::strcmp(argv[i], "--compare-race")) compare_race = true;
    if (!has_value) continue;
    if (!std::strcmp(argv[i], "--shape")) shape = argv[i + 1];
    if (!std::strcmp(argv[i], "--tokens")) tokens = argv[i + 1];
    if (!std::strcmp(argv[i], "--isolate")) isolate = argv[i + 1];
    if (!std::strcmp(argv[i], "--backend")) backend_name = argv[i + 1];
    if (!std::strcmp(argv[i], "--families")) families = argv[i + 1];
    if (!std::strcmp(argv[i], "--dtype")) dtype = argv[i + 1];
    if (!std::strcmp(argv[i], "--race")) race = std::stod(argv[i + 1]);
    if (!std::strcmp(argv[i], "--tag")) tag = argv[i + 1];
  }
  std::unique_ptr<Backend> backend;
  if (backend_name == "host") {
#if MOEJIT_WITH_LLVM
    backend = std::make_unique<HostBackend>();
#else
    std::cout << "bench_tune skipped: built without LLVM (no host backend)\n";
    return 0;
#endif
  } else {
    std::string why;
    if (!CudaDriver::available(&why)) {
      std::cout << "bench_tune skipped: no GPU (" << why << ")\n";
      return 0;
    }
    backend = std::make_unique<CudaBackend>();
  }
  LayerShape layer;
  layer.dtype = dtype.empty() ? default_layer_dtype(backend->name()) : parse_dtype(dtype);
  std::sscanf(shape.c_str(), "%lld,%lld,%lld,%lld", reinterpret_cast<long long*>(&layer.d_model),
              reinterpret_cast<long long*>(&layer.d_expert), reinterpret_cast<long long*>(&layer.experts),
              reinterpret_cast<long long*>(&layer.top_k));
  std::vector<int64_t> counts;
  if (tokens == "all") {
    for (int64_t t = 1; t <= kMaxTokenBucket; t *= 2) counts.push_back(t);
  } else {
    for (const std::string& t : split(tokens)) counts.push_back(std::stoll(t));
  }
  // The MoE layer's own kernel calls (templates/moe_layer_steps.hpp), as `moejit tune` tunes them.
  std::vector<Family> only;
  for (const std::string& name : split(families)) only.push_back(parse_family(name));
  std::vector<LayerKernel> problems;
  for (LayerKernel& k : layer_calls(layer, counts, only))
    if (!enumerate_and_prune(spec_for(k.problem.family, backend->name()), k.problem, backend->device())
             .survivors.empty())
      problems.push_back(std::move(k));
  TuneOptions options;
  options.progress = stderr;  // per-candidate lines: a run stopped at its time limit shows how far it got
  options.abandon_factor = race;
  options.isolation = parse_isolation(isolate);
  options.worker_command = {MOEJIT_CLI, "tune-worker", "--backend", backend->name()};
  std::cout << "device: " << backend->device().name << "  shape " << shape << "  isolation " << isolate << "\n";

  Pass off;
  if (compare_race) {
    precompile(*backend, problems);
    TuneOptions no_race = options;
    no_race.abandon_factor = 0;
    off = tune_all(*backend, problems, no_race);
  }
  const Pass on = tune_all(*backend, problems, options);

  std::cout << std::left << std::setw(26) << "family" << std::right << std::setw(7) << "tokens" << std::setw(48)
            << "tuned" << std::setw(11) << "ms" << std::setw(48) << "heuristic" << std::setw(11) << "ms" << std::setw(9)
            << "speedup"
            << "\n";
  nlohmann::json rows = nlohmann::json::array();
  double geo = 0;
  int agree = 0;
  for (size_t i = 0; i < on.tuned.size(); ++i) {
    const auto& [spec, p, d] = on.tuned[i];
    auto workload = make_workload(spec->family(), backend->name());
    const Config heuristic = spec->heuristic(p, backend->device());
    CandidateResult h = measure_candidate(*backend, *spec, *workload, p, heuristic, options.timing);
    CandidateResult w = measure_candidate(*backend, *spec, *workload, p, d.config, options.timing);
    const double speedup = w.time_ms > 0 ? h.time_ms / w.time_ms : 0;
    geo += std::log(std::max(speedup, 1e-9));
    std::cout << std::left << std::setw(26) << to_string(p.family) << std::right << std::setw(7) << p.tokens
              << std::setw(48) << d.config.to_string() << std::setw(11) << std::setprecision(4) << w.time_ms
              << std::setw(48) << heuristic.to_string() << std::setw(11) << h.time_ms << std::setw(8) << speedup
              << "x\n";
    nlohmann::json row = {{"family", to_string(p.family)},
                          {"tokens", p.tokens},
                          {"tuned", d.config.to_string()},
                          {"tuned_ms", w.time_ms},
                          {"heuristic", heuristic.to_string()},
                          {"heuristic_ms", h.time_ms},
                          {"speedup", speedup}};
    if (compare_race && i < off.tuned.size()) {
      const Config& other = std::get<2>(off.tuned[i]).config;
      row["winner_without_racing"] = other.to_string();
      if (other == d.config) {
        ++agree;
      } else {  // a different winner: is it as fast? (timing noise between near-ties)
        CandidateResult o = measure_candidate(*backend, *spec, *workload, p, other, options.timing);
        row["winner_without_racing_ms"] = o.time_ms;
        std::cout << "    winner without racing: " << other.to_string() << " " << o.time_ms << " ms\n";
      }
    }
    rows.push_back(row);
  }
  geo = on.tuned.empty() ? 0 : std::exp(geo / static_cast<double>(on.tuned.size()));
  std::cout << "tuning wall time " << std::setprecision(3) << on.seconds << " s for " << on.tuned.size()
            << " problems, " << on.candidates << " candidates (" << on.raced
            << " raced out; goal for moe-7b on an H100 <= 120 s); tuned vs heuristic geomean " << geo << "x\n";
  nlohmann::json result = {{"shape", shape},
                           {"backend", backend->name()},
                           {"isolation", isolate},
                           {"tune_seconds", on.seconds},
                           {"candidates", on.candidates},
                           {"raced_out", on.raced},
                           {"geomean_speedup_vs_heuristic", geo},
                           {"rows", rows}};
  if (compare_race) {
    std::cout << "racing off: " << off.seconds << " s, on: " << on.seconds << " s, on/off " << on.seconds / off.seconds
              << "; winners agree on " << agree << " of " << on.tuned.size() << " problems\n";
    result["tune_seconds_without_racing"] = off.seconds;
    result["racing_time_ratio"] = on.seconds / off.seconds;
    result["winners_agree"] = agree;
  }
  bench::save("bench_tune" + std::string(backend_name == "host" ? "_host" : "") +
                  (isolate == "spawn" ? "" : "_" + isolate) + (compare_race ? "_race" : "") +
                  (tag.empty() ? "" : "_" + tag),
              result, backend->device().name);
  return 0;
}
