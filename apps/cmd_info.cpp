// `moejit info`: versions, GPUs with their attributes, backends, kernel templates, cache directory.
#include <algorithm>
#include <iostream>
#include <thread>
#include <utility>

#include "binary_cache.hpp"
#include "commands.hpp"
#include "cuda_backend.hpp"
#include "cuda_driver.hpp"
#include "files.hpp"
#ifdef MOEJIT_WITH_LLVM
#include "host_backend.hpp"
#endif
#include "kernel_dirs.hpp"
#include "moejit/version.hpp"
#include "nvrtc_compiler.hpp"
#include "shipped.hpp"

namespace moejit::cli {
namespace {

#ifdef MOEJIT_WITH_LLVM
// The CPU the host backend compiles and tunes for, and the vector ISAs its kernels can use.
void print_host_cpu() {
  const HostTarget target = HostTarget::native();
  const DeviceDescription d = describe_host(target, std::max(1u, std::thread::hardware_concurrency()));
  std::cout << "host CPU: " << d.name << " (LLVM cpu " << target.cpu << ", " << d.compute_units
            << " hardware threads)\n  ISA the host kernels are compiled and tuned for:";
  const std::pair<const char*, const char*> isas[] = {
      {"AVX2", "avx2"}, {"AVX-512", "avx512f"}, {"AVX-512-BF16", "avx512bf16"}, {"AMX-BF16", "amx-bf16"}};
  const char* sep = " ";
  for (const auto& [label, feature] : isas) {
    std::cout << sep << label << (target.has(feature) ? " yes" : " no");
    sep = ", ";
  }
  std::cout << "\n";
}
#endif

}  // namespace

void add_info_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("info", "Versions, GPUs and their attributes, backends, cache directory");
  cmd->callback([] {
    std::cout << "moejit " << kVersion << "\n";
    std::cout << "NVRTC " << NvrtcCompiler::version() << " (archs:";
    for (const auto& a : NvrtcCompiler::supported_archs()) std::cout << ' ' << a;
    std::cout << ")\n";
    std::string why;
    if (CudaDriver::available(&why)) {
      auto devices = list_cuda_devices();
      std::cout << "CUDA driver " << (devices.empty() ? "?" : devices[0].driver) << ", " << devices.size()
                << " GPU(s)\n";
      for (size_t i = 0; i < devices.size(); ++i) {
        const auto& d = devices[i];
        std::cout << "  [" << i << "] " << d.name << "  " << d.arch << ", " << d.compute_units << " SMs, "
                  << (d.memory_bytes >> 20) << " MiB, L2 " << (d.l2_bytes >> 10) << " KiB, smem/block opt-in "
                  << (d.shared_per_block_optin >> 10) << " KiB, smem/SM " << (d.shared_per_sm >> 10) << " KiB, regs/SM "
                  << d.registers_per_sm << ", clock " << d.clock_khz / 1000 << " MHz\n";
      }
      std::cout << "backend cuda: available\n";
    } else {
      std::cout << "no CUDA driver: GPU backend unavailable; host backend available (" << why << ")\n";
      std::cout << "backend cuda: unavailable (kernels still compile for any arch with NVRTC)\n";
    }
#ifdef MOEJIT_WITH_LLVM
    std::cout << "backend host: available (Clang/LLVM ORC)\n";
    print_host_cpu();
#else
    std::cout << "backend host: not built (configure with -DMOEJIT_WITH_LLVM=ON)\n";
#endif
    // Where the JIT reads kernel sources: an installed tree finds its own (base/install_dirs.hpp).
    const auto templates = template_dir();
    std::cout << "templates " << templates.string()
              << (std::filesystem::is_directory(templates) ? "" : " (missing: set MOEJIT_TEMPLATE_DIR)") << "\n";
    const ShippedDecisions shipped = load_shipped(shipped_bundle_dir());
    size_t shipped_decisions = 0;
    for (const auto& [family, decisions] : shipped.by_family) shipped_decisions += decisions.size();
    std::cout << "shipped tuning bundles " << shipped_bundle_dir().string() << ": " << shipped.bundles.size()
              << " bundle(s), " << shipped_decisions << " decision(s)"
              << (shipped.rejected.empty() ? "" : ", " + std::to_string(shipped.rejected.size()) + " unreadable")
              << "\n";
    auto& cache = BinaryCache::global();
    auto entries = cache.list();
    uint64_t bytes = 0;
    for (const auto& e : entries) bytes += e.bytes;
    std::cout << "cache dir " << cache_root().string() << ": " << entries.size() << " kernel(s), " << bytes / 1024
              << " KiB\n";
  });
}

}  // namespace moejit::cli
