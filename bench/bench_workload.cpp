// The autotuner's CPU-side cost per problem: Workload::prepare (inputs, offsets, reference) and
// Workload::check (one run, download, compare), which every candidate pays once. At the large
// token buckets they are most of a GPU tuning run (bench_tune: 147 s for moe-7b on an H100 with
// kernels of < 1 ms). Every family with a workload on the backend (CUDA when a GPU is usable, else
// the host), its heuristic config checked, with the workloads' threads limited to 1 and then
// unlimited, in the same run.
//   bench_workload [--shape d_model,d_expert,E,topk] [--tokens N]
#include <chrono>
#include <cstring>
#include <iomanip>

#include "autotuner.hpp"
#include "bench_util.hpp"
#include "cuda_backend.hpp"
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
  Problem base;
  std::sscanf(shape.c_str(), "%lld,%lld,%lld,%lld", reinterpret_cast<long long*>(&base.d_model),
              reinterpret_cast<long long*>(&base.d_expert), reinterpret_cast<long long*>(&base.num_experts),
              reinterpret_cast<long long*>(&base.top_k));
  base.tokens = tokens;
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
  for (const auto& spec_ptr : builtin_specs()) {
    const KernelSpec& spec = *spec_ptr;
    const std::string family = spec.family();
    if (!make_workload(family) || !spec.supports_backend(backend.name())) continue;
    Problem p = base;
    p.family = family;
    p.dtype = family.rfind("host_", 0) == 0 || backend.name() == "host" ? DType::f32 : DType::bf16;
    double prepare_ms[2] = {0, 0}, check_ms[2] = {-1, -1};
    for (int pass = 0; pass < 2; ++pass) {
      auto cpu = std::make_shared<ThreadPool>(pass == 0 ? 1 : 0);
      auto workload = make_workload(family);
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
