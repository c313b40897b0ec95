// `moejit bench`: for each kernel call of the MoE layer (templates/moe_layer_steps.hpp) and each token count, times the
// tuned config (tuning-cache lookup, rung shown) against the built-in heuristic and a baseline (the first config of the
// spec's space that survives pruning: no tuning, no heuristic), in one process on one device, with the correctness gate
// applied to each.
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "autotuner.hpp"
#include "commands.hpp"
#include "files.hpp"
#include "lookup.hpp"
#include "moejit/error.hpp"
#include "moejit/kernel_spec.hpp"
#include "tune_layer.hpp"
#include "tuning_common.hpp"

namespace moejit::cli {
namespace {

struct BenchFlags {
  std::string model, shape, tokens = "4096", dtype, backend, json;
  std::vector<std::string> families;
  int repeats = 20;
};

void run_bench(const BenchFlags& f) {
  const std::string backend_name = f.backend.empty() ? default_backend_name() : f.backend;
  const LayerShape layer = layer_shape_of(f.model, f.shape, f.dtype, backend_name);
  const std::vector<LayerKernel> calls = layer_calls(layer, parse_tokens(f.tokens), parse_families(f.families));
  std::unique_ptr<Backend> backend = open_backend(backend_name);
  TimingOptions timing;
  timing.repeats = f.repeats;
  TuningLookup lookup;
  nlohmann::json rows = nlohmann::json::array();
  std::printf("device: %s (%s)\n%-24s %7s  %-11s %-46s %10s %10s %-7s %8s\n", backend->device().name.c_str(),
              backend->device().arch.c_str(), "step", "tokens", "which", "config", "ms", "throughput", "unit",
              "vs base");
  // The MoE layer's own kernel calls, each at the Problem `moejit tune` tuned and the runtime looks up.
  for (const LayerKernel& k : calls) {
    const Problem& p = k.problem;
    const int64_t t = p.tokens;
    auto workload = make_workload(p.family, backend->name());
    const KernelSpec* spec = &spec_for(p.family, backend->name());
    PruneReport pruned = enumerate_and_prune(*spec, p, backend->device());
    if (pruned.survivors.empty()) continue;
    LookupResult tuned = lookup.lookup(*spec, p, *backend);
    const std::pair<std::string, Config> runs[] = {{"baseline", pruned.survivors.front()},
                                                   {"heuristic", spec->heuristic(p, backend->device())},
                                                   {std::string("tuned:") + to_string(tuned.rung), tuned.config}};
    double baseline_ms = 0;
    for (const auto& [which, config] : runs) {
      CandidateResult r = measure_candidate(*backend, *spec, *workload, p, config, timing);
      const bool ok = r.status == CandidateStatus::ok;
      if (which == "baseline") baseline_ms = ok ? r.time_ms : 0;
      const Throughput tp = workload->throughput(p, ok ? r.time_ms : 0);  // GB/s or TFLOP/s by family
      const double value = ok ? tp.value : 0;
      const double ratio = ok && baseline_ms > 0 ? baseline_ms / r.time_ms : 0;
      std::printf("%-24s %7lld  %-11s %-46s %10.4f %10.3f %-7s %7.2fx%s\n", std::string(to_string(k.step)).c_str(),
                  static_cast<long long>(t), which.c_str(), config.to_string().c_str(), r.time_ms, value,
                  tp.unit.c_str(), ratio,
                  ok ? "" : ("  " + std::string(to_string(r.status)) + ": " + r.detail).c_str());
      rows.push_back({{"step", to_string(k.step)},
                      {"family", to_string(p.family)},
                      {"problem", p.to_string()},
                      {"tokens", t},
                      {"which", which},
                      {"config", config.to_string()},
                      {"status", to_string(r.status)},
                      {"time_ms", r.time_ms},
                      {"throughput", value},
                      {"throughput_unit", tp.unit},
                      {"speedup_vs_baseline", ratio}});
    }
  }
  if (!f.json.empty()) {
    nlohmann::json doc = {{"device", backend->device().name},
                          {"arch", backend->device().arch},
                          {"backend", backend->name()},
                          {"shape", f.model.empty() ? f.shape : f.model},
                          {"rows", rows}};
    write_file_atomic(f.json, doc.dump(2) + "\n");
  }
}

}  // namespace

void add_bench_command(CLI::App& app) {
  auto f = std::make_shared<BenchFlags>();
  auto* cmd = app.add_subcommand("bench", "Time tuned vs heuristic vs baseline configs of the MoE layer's kernels");
  auto* model = cmd->add_option("--model", f->model, "Model config name or path (its MoE layer's shape)");
  cmd->add_option("--shape", f->shape, "d_model,d_expert,E,topk")->excludes(model);
  cmd->add_option("--tokens", f->tokens, "Token counts, comma separated, or 'all'")->capture_default_str();
  cmd->add_option("--dtype", f->dtype, "bf16 or f32 (default: f32 on the host backend, bf16 on cuda)");
  cmd->add_option("--backend", f->backend, "host or cuda (default: cuda if a GPU is usable)");
  cmd->add_option("--families", f->families, "Only these kernel families")->delimiter(',');
  cmd->add_option("--repeats", f->repeats, "Timed samples (median)")->capture_default_str();
  cmd->add_option("--json", f->json, "Also write the results as JSON here");
  cmd->callback([f] { run_bench(*f); });
}

}  // namespace moejit::cli
