// Host training throughput: the default small MoE (tiny-moe-r20) vs the small dense config (tiny-dense,
// equal N), in the same run on the same data and threads. Reports tokens/s, throughput per active
// training FLOP, M_train = 6 N_a + 12 L D_m S (goal: MoE >= 0.8 of dense) and the time per kernel family. Usage:
// bench_train_host [steps=8] [threads=2]
#include <cstdio>
#include <cstdlib>
#include <iostream>

#include "bench_util.hpp"
#include "model_config.hpp"
#include "trainer.hpp"

using namespace moejit;
using namespace moejit::runtime;

struct Result {
  std::string config;
  double tokens_per_s = 0, flops_per_token = 0;
  std::map<std::string, Profiler::Entry> families;
  double total_s = 0;
  std::string tuning;
};

static Result run(const std::string& name, int steps, unsigned threads) {
  TrainOptions o;
  o.config = find_model_config(name);
  o.threads = threads;
  o.tokens = int64_t(steps + 2) * o.batch * o.config.seq_len;
  Trainer t(o);
  t.train_step();  // warm-up: first-touch allocations
  t.train_step();
  t.profiler().clear();
  std::vector<double> rates;
  Result r{name};
  for (int i = 0; i < steps; ++i) {
    StepStats s = t.train_step();
    rates.push_back(double(s.tokens) / s.seconds);
    r.total_s += s.seconds;
  }
  r.tokens_per_s = bench::median(rates);
  r.flops_per_token = train_flops_per_token(t.model().config());
  r.families = t.profiler().entries();
  r.tuning = !t.model().config().is_moe() ? "no MoE kernels" : summarize_tuning(t.model().kernels().kernel_choices());
  return r;
}

int main(int argc, char** argv) {
  int steps = argc > 1 ? std::atoi(argv[1]) : 8;
  unsigned threads = argc > 2 ? unsigned(std::atoi(argv[2])) : 2;
  std::string device = bench::cpu_model() + " (" + std::to_string(threads) + " threads)";
  std::cout << "bench_train_host on " << device << ", " << steps << " steps per config, fp32, reference MoE kernels\n";
  Result dense, moe;
  try {
    dense = run("tiny-dense", steps, threads);
    moe = run(std::string(kDefaultSmallConfig), steps, threads);
  } catch (const std::exception& e) {
    std::cout << "skipped: " << e.what() << "\n";
    return 0;
  }
  double ratio = (moe.tokens_per_s * moe.flops_per_token) / (dense.tokens_per_s * dense.flops_per_token);
  nlohmann::json j;
  std::printf("%-11s %12s %14s %12s\n", "config", "tokens/s", "FLOPs/token", "GFLOP/s");
  for (const Result* r : {&dense, &moe}) {
    std::printf("%-11s %12.0f %14.3e %12.2f\n", r->config.c_str(), r->tokens_per_s, r->flops_per_token,
                r->tokens_per_s * r->flops_per_token * 1e-9);
    nlohmann::json fam;
    for (const auto& [k, e] : r->families) fam[k] = {{"seconds", e.seconds}, {"calls", e.calls}};
    j[r->config] = {{"tokens_per_s", r->tokens_per_s},
                    {"train_flops_per_token", r->flops_per_token},
                    {"families", fam},
                    {"tuning", r->tuning}};
  }
  std::printf("MoE / dense throughput per active FLOP: %.3f (goal >= 0.8)\n", ratio);
  std::printf("\ntime per kernel family (share of measured step time)\n%-24s %10s %10s\n", "family", "dense", "moe");
  std::map<std::string, int> names;
  for (const Result* r : {&dense, &moe})
    for (const auto& [k, e] : r->families) names[k] = 1;
  for (const auto& [k, _] : names) {
    auto share = [&](const Result& r) {
      auto it = r.families.find(k);
      return it == r.families.end() ? 0.0 : 100.0 * it->second.seconds / r.total_s;
    };
    std::printf("%-24s %9.1f%% %9.1f%%\n", k.c_str(), share(dense), share(moe));
  }
  std::printf("MoE kernels: %s\n", moe.tuning.c_str());
  j["moe_over_dense_per_active_flop"] = ratio;
  j["steps"] = steps;
  j["threads"] = threads;
  bench::save("bench_train_host", j, device);
  return 0;
}
