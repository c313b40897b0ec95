// Training throughput over runtime backends, in one run on the same data and threads: tiny-dense and
// the default small MoE (tiny-moe-r20) on the reference backend (plain loops) and on the host backend
// (JIT kernels, configs from the tuning cache; where it lacks them, the heuristics, as the printed
// summary says). Reports per run: tokens/s, the achieved training GFLOP/s (M_train = 6 N_a + 12 L D_m
// S per token) and its fraction of OpenBLAS sgemm on a 2048^3 product measured in the same run, and
// the time per kernel family; across runs: host / reference tokens/s (goal >= 3) and MoE / dense per
// active FLOP (goal >= 0.9). The runs' steps are interleaved.
// Usage: bench_train_host [steps=8] [threads=2] [moe config=tiny-moe-r20] [backends=every available,
//        comma-separated: `host` alone profiles the host step without the slow reference runs]
//        [dense config=tiny-dense]
// On a GPU: `bench_train_host 10 16 moe-7b-stack4 cuda dense-7b-stack4`, the MoE layers of the paper's
// moe-7b shape against their dense counterpart of equal active FLOPs (issue 15).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>

#include "bench_util.hpp"
#include "cuda_backend.hpp"
#include "model_config.hpp"
#include "trainer.hpp"
#ifdef MOEJIT_BENCH_OPENBLAS
#include "openblas_core.hpp"
#endif

using namespace moejit;
using namespace moejit::runtime;

struct Result {
  std::string label, config, backend;
  double tokens_per_s = 0, flops_per_token = 0;
  std::map<std::string, Profiler::Entry> families;
  double total_s = 0;
  double families_total_s = 0;  // the steps `families` were timed over (eager ones on cuda)
  std::string tuning;
  double gflops() const { return tokens_per_s * flops_per_token * 1e-9; }
};

struct Run {
  std::unique_ptr<Trainer> trainer;
  Result result;
  std::vector<double> rates;
};

static Run start(const std::string& config, const std::string& backend, int steps, unsigned threads) {
  TrainOptions o;
  o.config = find_model_config(config);
  o.threads = threads;
  o.backend = backend;
  o.tokens = int64_t(steps + 2) * o.batch * o.config.seq_len;
  Run r{std::make_unique<Trainer>(o), Result{config + " (" + backend + ")", config, backend}, {}};
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
  r.result.families_total_s = r.result.total_s;
  r.result.tuning = summarize_tuning(t.backend().kernel_choices());
  return r.result;
}

// OpenBLAS sgemm on a 2048^3 product (GFLOP/s), one timing per call; 0 without OpenBLAS.
// A cuda step is replayed as one CUDA graph, which has no per-family times: those come from eager
// steps of a second trainer (MOEJIT_NO_GRAPH=1), each family timed on the GPU with CUDA events
// (profile.hpp), as shares of the eager step. The throughput stays the graph run's.
static void profile_eager_steps(Result& r, int steps, unsigned threads) {
  const char* before = std::getenv("MOEJIT_NO_GRAPH");
  const std::string saved = before ? before : "";
  setenv("MOEJIT_NO_GRAPH", "1", 1);
  Run eager = start(r.config, r.backend, steps, threads);
  for (int i = 0; i < steps; ++i) step(eager);
  if (before)
    setenv("MOEJIT_NO_GRAPH", saved.c_str(), 1);
  else
    unsetenv("MOEJIT_NO_GRAPH");
  r.families = eager.trainer->profiler().entries();
  r.families_total_s = eager.result.total_s;
}

static double sgemm_gflops(unsigned threads) {
#ifdef MOEJIT_BENCH_OPENBLAS
  const int n = 2048;
  static std::vector<float> a(size_t(n) * n, 0.5f), b(size_t(n) * n, 0.25f), c(size_t(n) * n);
  openblas_set_num_threads(int(threads));
  auto t0 = std::chrono::steady_clock::now();
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f, c.data(), n);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return 2.0 * n * n * double(n) / s * 1e-9;
#else
  (void)threads;
  return 0;
#endif
}

static std::string openblas_core() {
#ifdef MOEJIT_BENCH_OPENBLAS
  return std::string(openblas_get_config()) + ", core " + openblas_get_corename();
#else
  return "not built (OpenBLAS missing)";
#endif
}

static const Result* find(const std::vector<Result>& v, const std::string& config, const std::string& backend) {
  for (const Result& r : v)
    if (r.config == config && r.backend == backend) return &r;
  return nullptr;
}

static void print_families(const std::vector<Result>& results, int steps) {
  std::printf("\nseconds per step by kernel family (share of the step)\n%-20s", "family");
  for (const Result& r : results) std::printf(" %24s", r.label.c_str());
  std::printf("\n");
  std::map<std::string, int> names;
  for (const Result& r : results)
    for (const auto& [k, e] : r.families) names[k] = 1;
  for (const auto& [k, _] : names) {
    std::printf("%-20s", k.c_str());
    for (const Result& r : results) {
      auto it = r.families.find(k);
      const double s = it == r.families.end() ? 0.0 : it->second.seconds;
      std::printf(" %15.4f (%5.1f%%)", s / steps, 100.0 * s / r.families_total_s);
    }
    std::printf("\n");
  }
}

int main(int argc, char** argv) {
#ifdef MOEJIT_BENCH_OPENBLAS
  bench::use_best_openblas_core(argv);
#endif
  int steps = argc > 1 ? std::atoi(argv[1]) : 8;
  unsigned threads = argc > 2 ? unsigned(std::atoi(argv[2])) : 2;
  std::string moe_config = argc > 3 ? argv[3] : std::string(kDefaultSmallConfig);
  const std::string dense_config = argc > 5 ? argv[5] : std::string("tiny-dense");
  std::vector<std::string> backends = available_backends();
  if (argc > 4) {
    backends.clear();
    for (std::string_view list = argv[4]; !list.empty();) {
      const size_t comma = list.find(',');
      backends.emplace_back(list.substr(0, comma));
      list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
    }
  }
  std::string device = bench::cpu_model() + " (" + std::to_string(threads) + " threads)";
  const bool on_gpu = std::find(backends.begin(), backends.end(), "cuda") != backends.end();
  if (on_gpu && CudaDriver::available()) device += ", GPU " + CudaBackend().device().name;
  std::cout << "bench_train_host on " << device << ", " << steps
            << " steps per run, fp32\nopenblas: " << openblas_core() << "\n";
  std::vector<Result> results;
  std::vector<double> sgemm;
  try {
    std::vector<Run> runs;
    for (const std::string& config : {dense_config, moe_config})
      for (const std::string& backend : backends) runs.push_back(start(config, backend, steps, threads));
    // Steps interleaved round-robin with the sgemm baseline, so that load from other processes on a
    // shared machine hits every run alike; each throughput is the median over its steps.
    for (int i = 0; i < steps; ++i) {
      for (Run& r : runs) step(r);
      sgemm.push_back(sgemm_gflops(threads));
    }
    for (Run& r : runs) results.push_back(finish(r));
    runs.clear();  // one model on the GPU at a time
    for (Result& r : results)
      if (r.backend == "cuda") profile_eager_steps(r, steps, threads);
  } catch (const std::exception& e) {
    std::cout << "skipped: " << e.what() << "\n";
    return 0;
  }
  const double blas = bench::median(sgemm);
  nlohmann::json j;
  std::printf("%-28s %10s %12s %9s %12s\n", "run", "tokens/s", "FLOPs/token", "GFLOP/s", "of sgemm");
  for (const Result& r : results) {
    std::printf("%-28s %10.0f %12.3e %9.2f %12.3f\n", r.label.c_str(), r.tokens_per_s, r.flops_per_token, r.gflops(),
                blas > 0 ? r.gflops() / blas : 0.0);
    nlohmann::json fam;
    for (const auto& [k, e] : r.families) fam[k] = {{"seconds", e.seconds}, {"calls", e.calls}};
    j["runs"][r.label] = {{"tokens_per_s", r.tokens_per_s},
                          {"families_seconds", r.families_total_s},
                          {"train_flops_per_token", r.flops_per_token},
                          {"gflops", r.gflops()},
                          {"of_sgemm", blas > 0 ? r.gflops() / blas : 0.0},
                          {"families", fam},
                          {"tuning", r.tuning}};
  }
  std::printf("OpenBLAS sgemm 2048^3: %.2f GFLOP/s (median of %zu, interleaved)\n", blas, sgemm.size());
  j["sgemm_2048_gflops"] = blas;
  j["openblas"] = openblas_core();
  for (const std::string& config : {dense_config, moe_config})
    if (const Result* h = find(results, config, "host"), *r = find(results, config, "reference"); h && r) {
      std::printf("%s: host / reference tokens/s %.3f (goal >= 3)\n", config.c_str(),
                  h->tokens_per_s / r->tokens_per_s);
      j["host_over_reference"][config] = h->tokens_per_s / r->tokens_per_s;
    }
  for (const std::string& backend : backends)
    if (const Result* m = find(results, moe_config, backend), *d = find(results, dense_config, backend); m && d) {
      std::printf("%s: MoE / dense per active FLOP %.3f (goal >= 0.9)\n", backend.c_str(), m->gflops() / d->gflops());
      j["moe_over_dense_per_flop"][backend] = m->gflops() / d->gflops();
    }
  if (on_gpu)
    std::printf(
        "note: the cuda columns below are GPU time (CUDA events) of eager steps, as shares of an eager "
        "step; tokens/s above are the graph-replayed steps'\n");
  print_families(results, steps);
  for (const Result& r : results) std::printf("kernels, %s: %s\n", r.label.c_str(), r.tuning.c_str());
  j["steps"] = steps;
  j["threads"] = threads;
  bench::save("bench_train_host", j, device);
  return 0;
}
