// JIT costs: cold NVRTC compile per kernel (serial and with the pool), warm start (find and load
// 100 cached kernels from disk, CPU side; target <= 50 ms) and the memory-cache lookup.
#include <iomanip>

#include "arch_limits.hpp"
#include "bench_util.hpp"
#include "binary_cache.hpp"
#include "compile_pool.hpp"
#include "cuda_backend.hpp"
#include "moejit/kernel_spec.hpp"
#include "nvrtc_compiler.hpp"

using namespace moejit;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// Every SwiGLU kernel (both directions, both dtypes, every surviving config) for one arch.
std::vector<Source> swiglu_sources(const std::string& arch) {
  auto device = arch_limits(arch);
  std::vector<Source> sources;
  for (Family family : {Family::swiglu_fwd, Family::swiglu_bwd}) {
    const auto& spec = spec_for(family, "cuda");
    for (DType dtype : {DType::bf16, DType::f32}) {
      const Problem p(family, dtype, RowsShape{8, 1408}, 4096);
      for (const auto& c : spec.space(p, device))
        if (spec.prune_reason(p, c, device).empty()) sources.push_back(spec.render(p, c, device));
    }
  }
  return sources;
}

struct TempCache {
  std::filesystem::path dir;
  TempCache() {
    std::string pattern = (std::filesystem::temp_directory_path() / "moejit-bench-XXXXXX").string();
    dir = mkdtemp(pattern.data());
  }
  ~TempCache() { std::filesystem::remove_all(dir); }
};

}  // namespace

int main() {
  const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  std::vector<Source> sm80 = swiglu_sources("sm_80"), sm90 = swiglu_sources("sm_90a");
  NvrtcCompiler c80("sm_80"), c90("sm_90a");
  const size_t cold_n = 16;
  std::vector<Source> cold(sm90.begin(), sm90.begin() + cold_n);

  TempCache serial_dir, pool_dir, warm_dir;
  auto t = Clock::now();
  {
    BinaryCache cache(serial_dir.dir);
    for (const auto& s : cold) cache.get_or_compile(c90, s);
  }
  double serial_s = seconds_since(t);
  t = Clock::now();
  {
    BinaryCache cache(pool_dir.dir);
    ThreadPool pool;
    for (auto& f : compile_all(pool, cache, c90, cold)) f.get();
  }
  double pool_s = seconds_since(t);

  // Warm start: fill a cache with 100 kernels, then time a fresh cache object finding them all.
  std::vector<std::pair<const Compiler*, Source>> warm;
  for (const auto& s : sm80) warm.emplace_back(&c80, s);
  for (const auto& s : sm90) warm.emplace_back(&c90, s);
  warm.resize(std::min<size_t>(100, warm.size()));
  {
    BinaryCache cache(warm_dir.dir);
    ThreadPool pool;
    std::vector<std::future<std::shared_ptr<const Binary>>> futures;
    for (auto& [compiler, source] : warm)
      futures.push_back(pool.submit([&, compiler = compiler] { return cache.get_or_compile(*compiler, source); }));
    for (auto& f : futures) f.get();
  }
  std::vector<double> warm_ms;
  for (int rep = 0; rep < 5; ++rep) {
    BinaryCache cache(warm_dir.dir);
    t = Clock::now();
    for (auto& [compiler, source] : warm) cache.get_or_compile(*compiler, source);
    warm_ms.push_back(seconds_since(t) * 1e3);
    if (cache.stats().compiles != 0) std::cerr << "warm start compiled something: cache broken\n";
  }
  double warm_start_ms = bench::median(warm_ms);

  BinaryCache cache(warm_dir.dir);
  for (auto& [compiler, source] : warm) cache.get_or_compile(*compiler, source);
  const int lookups = 20000;
  t = Clock::now();
  for (int i = 0; i < lookups; ++i) cache.get_or_compile(*warm[i % warm.size()].first, warm[i % warm.size()].second);
  double lookup_us = seconds_since(t) * 1e6 / lookups;

  // With a GPU: also load the 100 cubins of this device's arch into the driver.
  std::string device = "cpu only (" + bench::cpu_model() + ")";
  double load_ms = -1;
  if (CudaDriver::available()) {
    CudaBackend backend;
    device = backend.device().name;
    auto sources = swiglu_sources(backend.device().arch);
    for (const auto& s : sources) backend.build(s);
    t = Clock::now();
    for (const auto& s : sources) backend.load(backend.build(s), s.entries[0]);
    load_ms = seconds_since(t) * 1e3;
  }

  std::cout << std::fixed << std::setprecision(3) << "device: " << device << ", " << cores << " cores\n"
            << "cold compile (NVRTC, sm_90a, " << cold_n << " SwiGLU kernels): serial " << serial_s / cold_n * 1e3
            << " ms/kernel, pool " << pool_s / cold_n * 1e3 << " ms/kernel (" << serial_s / pool_s << "x)\n"
            << "warm start: " << warm.size() << " cached kernels found and verified from disk in " << warm_start_ms
            << " ms (target <= 50 ms)\n"
            << "memory-cache lookup (key hash + map): " << lookup_us << " us\n";
  if (load_ms >= 0)
    std::cout << "driver load of " << swiglu_sources("sm_80").size() << " cubins: " << load_ms << " ms\n";
  bench::save("bench_jit",
              {{"cores", cores},
               {"cold_kernels", cold_n},
               {"cold_serial_ms_per_kernel", serial_s / cold_n * 1e3},
               {"cold_pool_ms_per_kernel", pool_s / cold_n * 1e3},
               {"pool_speedup", serial_s / pool_s},
               {"warm_start_kernels", warm.size()},
               {"warm_start_ms", warm_start_ms},
               {"memory_lookup_us", lookup_us},
               {"driver_load_ms", load_ms}},
              device);
  return 0;
}
