// Host training throughput, in one run on the same data and threads: the small dense config
// (tiny-dense), and the default small MoE (tiny-moe-r20, equal N) on the reference MoE kernels and on
// the JIT host kernels
// (configs from the tuning cache; where it lacks them, the heuristics, as the printed summary says).
// Reports tokens/s, throughput per active training FLOP, M_train = 6 N_a + 12 L D_m S, vs dense (goal:
// MoE >= 0.8 of dense) and the time per
// kernel family. The runs' steps are interleaved. Usage: bench_train_host [steps=8] [threads=2] [moe
// config=tiny-moe-r20]
#include <cstdio>
#include <cstdlib>
#include <iostream>

#include "bench_util.hpp"
#include "model_config.hpp"
#include "trainer.hpp"

using namespace moejit;
using namespace moejit::runtime;

struct Result {
  std::string label;
  double tokens_per_s = 0, flops_per_token = 0;
  std::map<std::string, Profiler::Entry> families;
  double total_s = 0;
  std::string tuning;
};

struct Run {
  std::unique_ptr<Trainer> trainer;
  Result result;
  std::vector<double> rates;
};

static Run start(const std::string& config, const std::string& kernels, int steps, unsigned threads) {
  TrainOptions o;
  o.config = find_model_config(config);
  o.threads = threads;
  o.kernels = kernels;
  o.tokens = int64_t(steps + 2) * o.batch * o.config.seq_len;
  Run r{std::make_unique<Trainer>(o), Result{!o.config.is_moe() ? config : config + " (" + kernels + ")"}, {}};
  r.trainer->train_step();  // warm-up: first-touch allocations, JIT builds (or binary-cache loads)
  r.trainer->train_step();
  r.trainer->profiler().clear();
  return r;
}

static void step(Run& r) {
  StepStats s = r.trainer->train_step();
  r.rates.push_back(double(s.tokens) / s.seconds);
  r.result.total_s += s.seconds;
}

static Result finish(Run& r) {
  Trainer& t = *r.trainer;
  r.result.tokens_per_s = bench::median(r.rates);
  r.result.flops_per_token = train_flops_per_token(t.model().config());
  r.result.families = t.profiler().entries();
  r.result.tuning =
      !t.model().config().is_moe() ? "no MoE kernels" : summarize_tuning(t.model().kernels().kernel_choices());
  return r.result;
}

int main(int argc, char** argv) {
  int steps = argc > 1 ? std::atoi(argv[1]) : 8;
  unsigned threads = argc > 2 ? unsigned(std::atoi(argv[2])) : 2;
  std::string moe_config = argc > 3 ? argv[3] : std::string(kDefaultSmallConfig);
  std::string device = bench::cpu_model() + " (" + std::to_string(threads) + " threads)";
  std::cout << "bench_train_host on " << device << ", " << steps << " steps per run, fp32\n";
  std::vector<Result> results;
  try {
    std::vector<Run> runs;
    runs.push_back(start("tiny-dense", "reference", steps, threads));
    runs.push_back(start(moe_config, "reference", steps, threads));
    if (jit_kernels_available()) runs.push_back(start(moe_config, "jit", steps, threads));
    // Steps interleaved round-robin, so that load from other processes on a shared machine hits every
    // run alike; each run's throughput is the median over its steps.
    for (int i = 0; i < steps; ++i)
      for (Run& r : runs) step(r);
    for (Run& r : runs) results.push_back(finish(r));
  } catch (const std::exception& e) {
    std::cout << "skipped: " << e.what() << "\n";
    return 0;
  }
  const Result& dense = results[0];
  nlohmann::json j;
  std::printf("%-20s %10s %12s %9s %16s\n", "run", "tokens/s", "FLOPs/token", "GFLOP/s", "vs dense per FLOP");
  for (const Result& r : results) {
    const double ratio = (r.tokens_per_s * r.flops_per_token) / (dense.tokens_per_s * dense.flops_per_token);
    std::printf("%-20s %10.0f %12.3e %9.2f %16.3f\n", r.label.c_str(), r.tokens_per_s, r.flops_per_token,
                r.tokens_per_s * r.flops_per_token * 1e-9, ratio);
    nlohmann::json fam;
    for (const auto& [k, e] : r.families) fam[k] = {{"seconds", e.seconds}, {"calls", e.calls}};
    j["runs"][r.label] = {{"tokens_per_s", r.tokens_per_s},
                          {"train_flops_per_token", r.flops_per_token},
                          {"per_active_flop_vs_dense", ratio},
                          {"families", fam},
                          {"tuning", r.tuning}};
  }
  std::printf("goal: MoE >= 0.8 of dense per active FLOP\n");
  if (results.size() == 3) {
    const double speedup = results[2].tokens_per_s / results[1].tokens_per_s;
    std::printf("MoE JIT / reference kernels tokens/s: %.3f\n", speedup);
    j["moe_jit_over_reference"] = speedup;
  }
  std::printf("\nseconds per step by kernel family (share of the step)\n%-20s", "family");
  for (const Result& r : results) std::printf(" %22s", r.label.c_str());
  std::printf("\n");
  std::map<std::string, int> names;
  for (const Result& r : results)
    for (const auto& [k, e] : r.families) names[k] = 1;
  for (const auto& [k, _] : names) {
    std::printf("%-20s", k.c_str());
    for (const Result& r : results) {
      auto it = r.families.find(k);
      const double s = it == r.families.end() ? 0.0 : it->second.seconds;
      std::printf(" %13.4f (%5.1f%%)", s / steps, 100.0 * s / r.total_s);
    }
    std::printf("\n");
  }
  for (const Result& r : results)
    if (r.tuning != "no MoE kernels") std::printf("MoE kernels, %s: %s\n", r.label.c_str(), r.tuning.c_str());
  j["steps"] = steps;
  j["threads"] = threads;
  bench::save("bench_train_host", j, device);
  return 0;
}
