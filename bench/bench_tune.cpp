// Tuning cost and benefit: tunes every family with a workload (today SwiGLU fwd/bwd) of one paper
// shape for every token bucket on a GPU, from an empty tuning cache, and reports the wall time
// (goal for moe-7b: <= 120 s for all buckets) and, per bucket, the tuned config's time against
// the built-in heuristic's, measured in the same process.
//   bench_tune [--shape d_model,d_expert,E,topk] [--tokens all|1,2,...] [--isolate none|spawn]
#include <chrono>
#include <cstring>
#include <filesystem>
#include <iomanip>
#include <sstream>

#include "autotuner.hpp"
#include "bench_util.hpp"
#include "cuda_backend.hpp"
#include "moejit/kernel_spec.hpp"

using namespace moejit;

int main(int argc, char** argv) {
  std::string shape = "2048,512,78,6", tokens = "all", isolate = "spawn";  // paper moe-7b
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--shape")) shape = argv[i + 1];
    if (!std::strcmp(argv[i], "--tokens")) tokens = argv[i + 1];
    if (!std::strcmp(argv[i], "--isolate")) isolate = argv[i + 1];
  }
  std::string why;
  if (!CudaDriver::available(&why)) {
    std::cout << "bench_tune skipped: no GPU (" << why << ")\n";
    return 0;
  }
  CudaBackend backend;
  Problem base;
  std::sscanf(shape.c_str(), "%lld,%lld,%lld,%lld", reinterpret_cast<long long*>(&base.d_model),
              reinterpret_cast<long long*>(&base.d_expert), reinterpret_cast<long long*>(&base.num_experts),
              reinterpret_cast<long long*>(&base.top_k));
  std::vector<int64_t> counts;
  if (tokens == "all") {
    for (int64_t t = 1; t <= kMaxTokenBucket; t *= 2) counts.push_back(t);
  } else {
    std::istringstream in(tokens);
    for (std::string part; std::getline(in, part, ',');) counts.push_back(std::stoll(part));
  }
  const auto dir = std::filesystem::temp_directory_path() / ("moejit-bench-tune-" + std::to_string(::getpid()));
  TuneOptions options;
  options.tuning_dir = dir;
  options.progress = nullptr;
  options.isolation = parse_isolation(isolate);
  options.worker_command = {MOEJIT_CLI, "tune-worker", "--backend", "cuda"};
  std::cout << "device: " << backend.device().name << "  shape " << shape << "  isolation " << isolate << "\n"
            << std::left << std::setw(12) << "family" << std::right << std::setw(7) << "tokens" << std::setw(26)
            << "tuned" << std::setw(11) << "ms" << std::setw(24) << "heuristic" << std::setw(11) << "ms" << std::setw(9)
            << "speedup"
            << "\n";
  nlohmann::json rows = nlohmann::json::array();
  const auto start = std::chrono::steady_clock::now();
  int candidates = 0;
  std::vector<std::tuple<const KernelSpec*, Problem, Decision>> tuned;
  for (const auto& spec : builtin_specs()) {
    auto workload = make_workload(spec->family());
    if (!workload || !spec->supports_backend("cuda")) continue;
    for (int64_t t : counts) {
      Problem p = base;
      p.family = spec->family();
      p.tokens = t;
      TuneResult r = tune(backend, *spec, *workload, p, options);
      candidates += static_cast<int>(r.results.size());
      if (r.decision) tuned.emplace_back(spec.get(), r.problem, *r.decision);
    }
  }
  const double tune_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  double geo = 0;
  for (const auto& [spec, p, d] : tuned) {
    auto workload = make_workload(spec->family());
    const Config heuristic = spec->heuristic(p, backend.device());
    CandidateResult h = measure_candidate(backend, *spec, *workload, p, heuristic, options.timing);
    CandidateResult w = measure_candidate(backend, *spec, *workload, p, d.config, options.timing);
    const double speedup = w.time_ms > 0 ? h.time_ms / w.time_ms : 0;
    geo += std::log(std::max(speedup, 1e-9));
    std::cout << std::left << std::setw(12) << p.family << std::right << std::setw(7) << p.tokens << std::setw(26)
              << d.config.to_string() << std::setw(11) << std::setprecision(4) << w.time_ms << std::setw(24)
              << heuristic.to_string() << std::setw(11) << h.time_ms << std::setw(8) << speedup << "x\n";
    rows.push_back({{"family", p.family},
                    {"tokens", p.tokens},
                    {"tuned", d.config.to_string()},
                    {"tuned_ms", w.time_ms},
                    {"heuristic", heuristic.to_string()},
                    {"heuristic_ms", h.time_ms},
                    {"speedup", speedup}});
  }
  geo = tuned.empty() ? 0 : std::exp(geo / static_cast<double>(tuned.size()));
  std::cout << "tuning wall time " << std::setprecision(3) << tune_seconds << " s for " << tuned.size() << " problems, "
            << candidates << " candidates (goal <= 120 s); tuned vs heuristic geomean " << geo << "x\n";
  bench::save("bench_tune" + std::string(isolate == "spawn" ? "" : "_" + isolate),
              {{"shape", shape},
               {"isolation", isolate},
               {"tune_seconds", tune_seconds},
               {"candidates", candidates},
               {"geomean_speedup_vs_heuristic", geo},
               {"rows", rows}},
              backend.device().name);
  std::filesystem::remove_all(dir);
  return 0;
}
