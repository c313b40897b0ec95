// `moejit compile`: renders and compiles the GPU kernels of an MoE layer's calls (every config that
// survives pruning, or the heuristic's choice) for the local GPU's arch or the named ones, on all cores.
#include <chrono>
#include <iomanip>
#include <iostream>

#include "arch_limits.hpp"
#include "binary_cache.hpp"
#include "commands.hpp"
#include "compile_pool.hpp"
#include "cuda_backend.hpp"
#include "moejit/error.hpp"
#include "moejit/kernel_spec.hpp"
#include "nvrtc_compiler.hpp"
#include "tune_layer.hpp"
#include "tuning_common.hpp"

namespace moejit::cli {
namespace {

struct CompileOptions {
  std::vector<std::string> archs;
  std::vector<std::string> families;
  std::string shape = "1408,320,92,7";  // paper moe-2b: d_model, d_expert, E, top-k
  std::string dtype = "bf16";
  int64_t tokens = 4096;
  bool heuristic_only = false;
  unsigned threads = 0;
};

int run(const CompileOptions& o) {
  std::vector<std::string> archs = o.archs;
  if (archs.empty()) {
    auto devices = list_cuda_devices();
    archs.push_back(devices.empty() ? "sm_90a" : devices[0].arch);
  }
  // The layer's kernel calls: each family at the shape it runs in the layer.
  const std::vector<LayerKernel> calls =
      layer_calls(parse_shape(o.shape, parse_dtype(o.dtype)), {o.tokens}, parse_families(o.families));
  ThreadPool pool(o.threads);
  int failures = 0;
  for (const auto& arch : archs) {
    NvrtcCompiler compiler(arch);
    DeviceDescription device = arch_limits(arch);
    for (const LayerKernel& call : calls) {
      const Problem& problem = call.problem;
      const KernelSpec* spec = &spec_for(problem.family, "cuda");
      std::vector<Source> sources;
      size_t pruned = 0;
      if (o.heuristic_only) {
        sources.push_back(spec->render(problem, spec->heuristic(problem, device), device));
      } else {
        for (const auto& config : spec->space(problem, device)) {
          if (!spec->prune_reason(problem, config, device).empty()) {
            ++pruned;
            continue;
          }
          sources.push_back(spec->render(problem, config, device));
        }
      }
      auto start = std::chrono::steady_clock::now();
      auto futures = compile_all(pool, BinaryCache::global(), compiler, sources);
      int max_regs = 0, spills = 0, failed = 0;
      for (auto& f : futures) {
        try {
          auto binary = f.get();
          for (const auto& r : binary->resources) {
            max_regs = std::max(max_regs, r.registers);
            spills += r.has_spills();
          }
        } catch (const CompileError& e) {
          ++failed;
          std::cerr << e.what() << '\n';
        }
      }
      double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      failures += failed;
      std::cout << std::left << std::setw(12) << to_string(call.step) << std::setw(24) << to_string(problem.family)
                << std::setw(8) << arch << std::right << std::setw(4) << sources.size() << " configs (" << pruned
                << " pruned), " << std::fixed << std::setprecision(2) << seconds << " s, max " << max_regs
                << " registers, " << spills << " with spills"
                << (failed ? ", " + std::to_string(failed) + " FAILED" : "") << '\n';
    }
  }
  auto stats = BinaryCache::global().stats();
  std::cout << "compiled " << stats.compiles << ", from disk cache " << stats.disk_hits << "\n";
  return failures ? kError : kOk;
}

}  // namespace

void add_compile_command(CLI::App& app) {
  auto opts = std::make_shared<CompileOptions>();
  auto* cmd = app.add_subcommand("compile", "Compile the built-in kernel templates into the kernel cache");
  cmd->add_option("--arch", opts->archs, "Target archs (default: the local GPU's, else sm_90a)");
  cmd->add_option("--family", opts->families, "Only these kernel families");
  cmd->add_option("--shape", opts->shape, "d_model,d_expert,E,topk the configs are pruned for")->capture_default_str();
  cmd->add_option("--dtype", opts->dtype, "bf16 or f32")->capture_default_str();
  cmd->add_option("--tokens", opts->tokens, "Tokens per call")->capture_default_str();
  cmd->add_flag("--heuristic-only", opts->heuristic_only, "Only the heuristic's config per family");
  cmd->add_option("-j,--jobs", opts->threads, "Compiler threads (default: all cores)");
  cmd->callback([opts] {
    int rc = run(*opts);
    if (rc != kOk) throw CLI::RuntimeError(rc);
  });
}

}  // namespace moejit::cli
