// SwiGLU bandwidth on a GPU as a fraction of a device-to-device copy measured in the same run:
// every config per shape (best, heuristic, worst), forward and backward, bf16.
#include <iomanip>
#include <random>

#include "bench_util.hpp"
#include "cuda_backend.hpp"
#include "swiglu/swiglu.h"
#include "swiglu/swiglu_spec.hpp"

using namespace moejit;

namespace {

struct BenchShape {
  const char* name;
  int64_t tokens, top_k, width;
};

DeviceBuffer random_bf16(Backend& backend, size_t n, std::mt19937& rng) {
  std::uniform_real_distribution<float> dist(-4, 4);
  std::vector<bf16> host(n);
  for (auto& x : host) x = from_float<bf16>(dist(rng));
  return DeviceBuffer::from(backend, host);
}

}  // namespace

int main() {
  std::string why;
  if (!CudaDriver::available(&why)) {
    std::cout << "bench_swiglu skipped: no GPU (" << why << ")\n";
    return 0;
  }
  CudaBackend backend;
  const auto& dev = backend.device();
  std::mt19937 rng(1234);

  // Copy baseline: bytes read + bytes written per second, 1 GiB buffers (far beyond L2).
  const size_t copy_bytes = size_t{1} << 30;
  DeviceBuffer src(backend, copy_bytes), dst(backend, copy_bytes);
  src.fill(0x3c);
  double copy_ms = bench::median_ms(
      [&] { return backend.time_ms([&] { backend.copy_device_to_device(dst.get(), src.get(), copy_bytes); }); });
  const double copy_gbs = 2.0 * copy_bytes / (copy_ms * 1e6);
  std::cout << "device: " << dev.name << "  D2D copy " << std::fixed << std::setprecision(0) << copy_gbs << " GB/s\n";

  const BenchShape shapes[] = {{"qwen3-30b-a3b", 16384, 8, 768},
                               {"paper-moe-2b", 16384, 7, 320},
                               {"paper-moe-7b", 16384, 6, 512},
                               {"mixtral-8x7b", 8192, 2, 14336}};
  nlohmann::json results = nlohmann::json::array();
  std::cout << std::left << std::setw(16) << "shape" << std::setw(5) << "dir" << std::setw(20) << "best config"
            << std::right << std::setw(10) << "best GB/s" << std::setw(8) << "/copy" << std::setw(12) << "heur GB/s"
            << std::setw(12) << "worst GB/s" << '\n';
  for (const BenchShape& s : shapes) {
    for (bool backward : {false, true}) {
      SwigluSpec spec(backward);
      const Problem p(spec.family(), DType::bf16, RowsShape{s.top_k, s.width}, s.tokens);
      const int64_t rows = p.rows();
      DeviceBuffer gu = random_bf16(backend, rows * 2 * s.width, rng), dh = random_bf16(backend, rows * s.width, rng);
      DeviceBuffer out(backend, rows * 2 * s.width * sizeof(bf16));
      const double bytes = double(rows) * s.width * sizeof(bf16) * (backward ? 5 : 3);
      const Config heuristic = spec.heuristic(p, dev);
      double best = 0, worst = 1e30, heur = 0;
      std::string best_config;
      for (const auto& config : spec.space(p, dev)) {
        if (!spec.prune_reason(p, config, dev).empty()) continue;
        Source source = spec.render(p, config, dev);
        auto kernel = backend.load(backend.build(source), source.entries[0]);
        double ms = bench::median_ms([&] {
          return backend.time_ms([&] {
            if (backward)
              launch_swiglu_bwd(*kernel, p, config, dev, gu.get(), dh.get(), out.get());
            else
              launch_swiglu_fwd(*kernel, p, config, dev, gu.get(), out.get());
          });
        });
        double gbs = bytes / (ms * 1e6);
        if (gbs > best) best = gbs, best_config = config.to_string();
        worst = std::min(worst, gbs);
        if (config == heuristic) heur = gbs;
      }
      std::cout << std::left << std::setw(16) << s.name << std::setw(5) << (backward ? "bwd" : "fwd") << std::setw(20)
                << best_config << std::right << std::setprecision(0) << std::setw(10) << best << std::setprecision(2)
                << std::setw(8) << best / copy_gbs << std::setprecision(0) << std::setw(12) << heur << std::setw(12)
                << worst << '\n';
      results.push_back({{"shape", s.name},
                         {"direction", backward ? "bwd" : "fwd"},
                         {"rows", rows},
                         {"width", s.width},
                         {"best_config", best_config},
                         {"best_gbs", best},
                         {"heuristic_gbs", heur},
                         {"worst_gbs", worst},
                         {"fraction_of_copy", best / copy_gbs}});
    }
  }
  bench::save("bench_swiglu", {{"copy_gbs", copy_gbs}, {"results", results}}, dev.name);
  return 0;
}
