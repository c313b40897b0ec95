// `moejit info`: versions, GPUs with their attributes, backends, kernel templates, cache directory.
#include <iostream>

#include "binary_cache.hpp"
#include "commands.hpp"
#include "cuda_backend.hpp"
#include "cuda_driver.hpp"
#include "files.hpp"
#include "kernel_dirs.hpp"
#include "moejit/version.hpp"
#include "nvrtc_compiler.hpp"

namespace moejit::cli {

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
#else
    std::cout << "backend host: not built (configure with -DMOEJIT_WITH_LLVM=ON)\n";
#endif
    // Where the JIT reads kernel sources: an installed tree finds its own (base/install_dirs.hpp).
    const auto templates = template_dir();
    std::cout << "templates " << templates.string()
              << (std::filesystem::is_directory(templates) ? "" : " (missing: set MOEJIT_TEMPLATE_DIR)") << "\n";
    auto& cache = BinaryCache::global();
    auto entries = cache.list();
    uint64_t bytes = 0;
    for (const auto& e : entries) bytes += e.bytes;
    std::cout << "cache dir " << cache_root().string() << ": " << entries.size() << " kernel(s), " << bytes / 1024
              << " KiB\n";
  });
}

}  // namespace moejit::cli
