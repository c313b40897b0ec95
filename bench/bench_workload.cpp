// The autotuner's CPU-side cost per problem: Workload::prepare (inputs, offsets, reference) and
// Workload::check (one run, download, compare), which every candidate pays once. At the large
// token buckets they are most of a GPU tuning run (bench_tune: 147 s for moe-7b on an H100 with
// kernels of < 1 ms). Every family with a workload on the backend (CUDA when a GPU is usable, else
// the host), its heuristic config checked, with the workloads' threads limited to 1 and then
// unlimited, in the same run.
//   bench_workload [--shape d_model,d_expert,E,topk] [--tokens N]
#include <algorithm>
#include <chrono>
#include <cstring>
#include <iomanip>

#include "autotuner.hpp"
#include "bench_util.hpp"
#include "cuda_backend.hpp"
#include "moe_layer_steps.hpp"
#include "moejit/kernel_spec.hpp"
#include "thread_pool.hpp"
#if MOEJIT_WITH_LLVM
#include "host_backend.hpp"
#endif

using namespace moejit;

int main(int argc, char** argv) {
  std::string shape = "2048,512,78,6";  // paper moe-7b
  long long tokens = 16384;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--shape")) shape = argv[i + 1];
    if (!std::strcmp(argv[i], "--tokens")) tokens = std::stoll(argv[i + 1]);
  }
  std::unique_ptr<Backend> owned;
  std::string why;
  if (CudaDriver::available(&why)) {
    owned = std::make_unique<CudaBackend>();
  } else {
#if MOEJIT_WITH_LLVM
    owned = std::make_unique<HostBackend>();
#else
    std::cout << "bench_workload skipped: no GPU (" << why << ") and no host backend (built without LLVM)\n";
    return 0;
#endif
  }
  Backend& backend = *owned;
  LayerShape layer;
  layer.dtype = default_layer_dtype(backend.name());
  std::sscanf(shape.c_str(), "%lld,%lld,%lld,%lld", reinterpret_cast<long long*>(&layer.d_model),
              reinterpret_cast<long long*>(&layer.d_expert), reinterpret_cast<long long*>(&layer.experts),
              reinterpret_cast<long long*>(&layer.top_k));
  auto ms_since = [](auto start) {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  };
  std::cout << "device: " << backend.device().name << " (" << backend.name() << " backend; CPU "
            << std::thread::hardware_concurrency() << " hardware threads), shape " << shape << ", tokens " << tokens
            << "\n"
            << std::left << std::setw(24) << "family" << std::right << std::setw(14) << "prepare 1t ms" << std::setw(14)
            << "prepare ms" << std::setw(12) << "check 1t ms" << std::setw(12) << "check ms"
            << "\n";
  nlohmann::json rows = nlohmann::json::array();
  std::vector<Family> seen;  // each family once, at its first call's shape in the layer
  for (const LayerKernel& call : moe_layer_kernels(layer, tokens)) {
    const Problem& p = call.problem;
    if (std::find(seen.begin(), seen.end(), p.family) != seen.end()) continue;
    seen.push_back(p.family);
    const KernelSpec& spec = spec_for(p.family, backend.name());
    const std::string family(to_string(p.family));
    double prepare_ms[2] = {0, 0}, check_ms[2] = {-1, -1};
    for (int pass = 0; pass < 2; ++pass) {
      auto cpu = std::make_shared<ThreadPool>(pass == 0 ? 1 : 0);
      auto workload = make_workload(p.family, backend.name());
      auto start = std::chrono::steady_clock::now();
      workload->prepare(backend, p, 1, cpu);
      prepare_ms[pass] = ms_since(start);
      const Config config = spec.heuristic(p, backend.device());
      const Source source = spec.render(p, config, backend.device());
      LoadedCandidate c;
      c.config = config;
      for (const auto& entry : source.entries) c.kernels.push_back(backend.load(backend.build(source), entry));
      start = std::chrono::steady_clock::now();
      const CheckResult check = workload->check(c);
      check_ms[pass] = ms_since(start);
      if (!check.ok) std::cout << "  " << family << ": check failed: " << check.detail << "\n";
    }
    std::cout << std::left << std::setw(24) << family << std::right << std::fixed << std::setprecision(1)
              << std::setw(14) << prepare_ms[0] << std::setw(14) << prepare_ms[1] << std::setw(12) << check_ms[0]
              << std::setw(12) << check_ms[1] << "\n";
    rows.push_back({{"family", family},
                    {"prepare_ms_1_thread", prepare_ms[0]},
                    {"prepare_ms", prepare_ms[1]},
                    {"check_ms_1_thread", check_ms[0]},
                    {"check_ms", check_ms[1]}});
  }
  bench::save("bench_workload", {{"shape", shape}, {"tokens", tokens}, {"backend", backend.name()}, {"rows", rows}},
              backend.device().name);
  return 0;
}
