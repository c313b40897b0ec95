// The host backend's attention core (HostDenseOps::attention_fwd + attention_bwd) alone, on the
// shapes of tiny-moe-r20 (B 8, S 256, C 128, H 2) and tiny-dense (C 256, H 4): milliseconds per
// forward + backward, the time of each part (the products, with the softmax in the scores
// products' epilogue) and each product's rate, against the rate of the model's QKV projection (a dense
// matmul of the same tokens) in the same run. Configs come from the tuning cache as in the
// training step ($MOEJIT_CACHE_DIR/tuning; heuristics where it has none).
// Rates count the causal products' useful FLOPs (the lower triangle: 2 S (S + 1) / 2 hd per group
// and product) and, in brackets, M_train's convention (the full square, 2 S^2 hd).
// With a baseline template directory (a checkout's templates/ before a change to the kernels, with
// the same launch arguments) both builds run interleaved in one process: their times and ratio.
// Usage: bench_attention_host [reps=20] [threads=2] [baseline templates dir]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <random>

#include "attention/attention_softmax.h"
#include "bench_util.hpp"
#include "host/grouped_gemm_spec.hpp"
#include "host_dense_ops.hpp"
#include "thread_pool.hpp"

using namespace moejit;
using namespace moejit::runtime;

namespace {

struct AttnShape {
  const char* name;
  int64_t B, S, C, H;
};

std::vector<float> random_floats(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1, 1);
  std::vector<float> v(n);
  for (float& x : v) x = u(rng);
  return v;
}

// The process's CPU seconds (every thread; idle pool workers sleep): on a shared machine, whether
// a slower run ran slower or was only descheduled.
double cpu_seconds() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// One build of the attention core: the kernels JIT-compiled from `templates` (empty: the source
// tree's), so that a template change and its baseline run interleaved in one process.
struct Variant {
  std::string label;
  std::unique_ptr<HostKernelCache> kernels;
  std::unique_ptr<HostDenseOps> ops;
  Profiler prof;
  std::vector<double> core, cpu;  // wall and process CPU seconds per forward + backward
};

std::unique_ptr<Variant> make_variant(const std::string& label, const std::string& templates, unsigned threads) {
  // The host compiler takes its include path from MOEJIT_TEMPLATE_DIR when it is constructed.
  const char* old = std::getenv("MOEJIT_TEMPLATE_DIR");
  const std::string saved = old ? old : "";
  if (!templates.empty()) setenv("MOEJIT_TEMPLATE_DIR", templates.c_str(), 1);
  auto v = std::make_unique<Variant>();
  v->label = label;
  v->kernels = std::make_unique<HostKernelCache>(HostKernelCache::Options{threads, {}});
  v->ops = std::make_unique<HostDenseOps>(*v->kernels);
  if (old)
    setenv("MOEJIT_TEMPLATE_DIR", saved.c_str(), 1);
  else
    unsetenv("MOEJIT_TEMPLATE_DIR");
  return v;
}

void print_parts(const AttnShape& s, int reps, Variant& v, nlohmann::json& j) {
  const int64_t hd = s.C / s.H, G = s.B * s.H;
  const double useful = 2.0 * G * (s.S * (s.S + 1) / 2) * hd, full = 2.0 * G * s.S * s.S * hd;
  std::printf("%s [%s]: attention fwd+bwd %.3f ms (median of %d), CPU %.3f ms\n", s.name, v.label.c_str(),
              bench::median(v.core) * 1e3, reps, bench::median(v.cpu) * 1e3);
  std::printf("%-24s %9s %7s %22s\n", "part", "ms/iter", "share", "GFLOP/s useful [full]");
  double total = 0;
  for (const auto& [k, e] : v.prof.entries()) total += e.seconds;
  for (const auto& [k, e] : v.prof.entries()) {
    const double ms = e.seconds / reps * 1e3;
    const bool product = !k.ends_with(".softmax");
    std::printf("%-24s %9.3f %6.1f%%", k.c_str(), ms, 100.0 * e.seconds / total);
    if (product) std::printf(" %10.1f [%6.1f]", useful / (ms * 1e-3) * 1e-9, full / (ms * 1e-3) * 1e-9);
    std::printf("\n");
    j["parts_ms"][k] = ms;
  }
  j["core_ms"] = bench::median(v.core) * 1e3;
  j["core_cpu_ms"] = bench::median(v.cpu) * 1e3;
}

// Forward + backward of every variant in turn, reps times (after two warm-up rounds: JIT builds or
// cache loads, first touch), then the QKV projection's rate on each variant's kernels.
void run_shape(const AttnShape& s, int reps, std::vector<std::unique_ptr<Variant>>& variants, nlohmann::json& out) {
  const int64_t N = s.B * s.S, G = s.B * s.H;
  const auto qkv = random_floats(N * 3 * s.C, 1), d_out = random_floats(N * s.C, 2),
             w = random_floats(3 * s.C * s.C, 3);
  std::vector<float> att(G * s.S * s.S), o(N * s.C), d_qkv(N * 3 * s.C), proj(N * 3 * s.C);
  for (auto& v : variants) v->prof.clear(), v->core.clear(), v->cpu.clear();
  for (int i = 0; i < reps + 2; ++i)
    for (auto& v : variants) {
      if (i == 2) v->prof.clear();
      v->ops->set_profiler(&v->prof);
      const auto t0 = std::chrono::steady_clock::now();
      const double c0 = cpu_seconds();
      v->ops->attention_fwd(o.data(), att.data(), qkv.data(), s.B, s.S, s.C, s.H, /*alibi=*/true);
      v->ops->attention_bwd(d_qkv.data(), d_out.data(), qkv.data(), att.data(), s.B, s.S, s.C, s.H);
      if (i >= 2) v->core.push_back(seconds_since(t0)), v->cpu.push_back(cpu_seconds() - c0);
      v->ops->set_profiler(nullptr);
    }
  // The QKV projection (a non-causal GEMM of the same tokens) on each build, interleaved.
  std::vector<std::vector<double>> matmul(variants.size());
  for (int i = 0; i < reps + 2; ++i)
    for (size_t v = 0; v < variants.size(); ++v) {
      const auto t0 = std::chrono::steady_clock::now();
      variants[v]->ops->matmul_fwd(proj.data(), o.data(), w.data(), N, s.C, 3 * s.C);
      if (i >= 2) matmul[v].push_back(seconds_since(t0));
    }
  std::printf("\n");
  for (auto& v : variants) print_parts(s, reps, *v, out[s.name][v->label]);
  if (variants.size() == 2)
    std::printf("%s: %s / %s time %.3f\n", s.name, variants[1]->label.c_str(), variants[0]->label.c_str(),
                bench::median(variants[1]->core) / bench::median(variants[0]->core));
  for (size_t v = 0; v < variants.size(); ++v) {
    const double qkv_rate = 2.0 * N * s.C * 3 * s.C / bench::median(matmul[v]) * 1e-9;
    std::printf("QKV projection (%lld x %lld x %lld) [%s]: %.1f GFLOP/s\n", (long long)N, (long long)s.C,
                (long long)(3 * s.C), variants[v]->label.c_str(), qkv_rate);
    out[s.name][variants[v]->label]["qkv_gflops"] = qkv_rate;
  }
}

// The lever of the fused softmax alone: attention_scores with its softmax epilogue against the
// same product without it followed by the separate row pass the runtime ran before (g++-built,
// one row per call), forward and backward, interleaved so that load from other processes hits
// both alike.
void fused_vs_separate(const AttnShape& s, int reps, HostKernelCache& kernels, ThreadPool& par, nlohmann::json& out) {
  const int64_t hd = s.C / s.H, G = s.B * s.H, S = s.S;
  const float scale = 1.0f / std::sqrt(float(hd));
  const DenseKernel dk = attention_kernel(DenseOp::attn_scores, s.B, S, s.H, hd);
  const KernelCache::Entry entry = kernels.resolve(dk.problem);
  const auto q = random_floats(G * S * hd, 4), k = random_floats(G * S * hd, 5);
  std::vector<int64_t> off;
  for (int64_t g = 0; g <= G; ++g) off.push_back(g * S);
  std::vector<float> att(G * S * S), d_att(G * S * S);
  auto gemm = [&](float* y, HostScoresEpilogue e) {
    launch_host_gemm_dgrad(entry.kernel(), dk.problem, entry.config(), q.data(), k.data(), y, off.data(),
                           {.scores = e});
  };
  using Mode = HostScoresEpilogue::Mode;
  std::vector<double> t[4];
  for (int i = 0; i < reps + 2; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    gemm(att.data(), {Mode::none, 1.0f, 0, nullptr});
    par.for_range(G * S, 64, [&](int64_t first, int64_t last) {
      for (int64_t r = first; r < last; ++r)
        alibi_softmax_row(SingleLane{}, &att[r * S], &att[r * S], r % S, S, scale,
                          alibi_slope_f32(int((r / S) % s.H), int(s.H)));
    });
    const double sep_fwd = seconds_since(t0);
    t0 = std::chrono::steady_clock::now();
    gemm(att.data(), {Mode::softmax, scale, s.H, nullptr});
    const double fused_fwd = seconds_since(t0);
    t0 = std::chrono::steady_clock::now();
    gemm(d_att.data(), {Mode::none, 1.0f, 0, nullptr});
    par.for_range(G * S, 64, [&](int64_t first, int64_t last) {
      for (int64_t r = first; r < last; ++r)
        alibi_softmax_row_bwd(SingleLane{}, &att[r * S], &d_att[r * S], &d_att[r * S], r % S, S, scale);
    });
    const double sep_bwd = seconds_since(t0);
    t0 = std::chrono::steady_clock::now();
    gemm(d_att.data(), {Mode::softmax_bwd, scale, 0, att.data()});
    const double fused_bwd = seconds_since(t0);
    if (i < 2) continue;
    t[0].push_back(sep_fwd), t[1].push_back(fused_fwd), t[2].push_back(sep_bwd), t[3].push_back(fused_bwd);
  }
  const char* names[4] = {"separate_fwd", "fused_fwd", "separate_bwd", "fused_bwd"};
  std::printf("scores + softmax, %s: ", s.name);
  for (int i = 0; i < 4; ++i) {
    std::printf("%s %.3f ms%s", names[i], bench::median(t[i]) * 1e3, i < 3 ? ", " : "\n");
    out[s.name]["softmax_lever_ms"][names[i]] = bench::median(t[i]) * 1e3;
  }
}

}  // namespace

int main(int argc, char** argv) {
  const int reps = argc > 1 ? std::atoi(argv[1]) : 20;
  const unsigned threads = argc > 2 ? unsigned(std::atoi(argv[2])) : 2;
  const std::string baseline = argc > 3 ? argv[3] : "";
  ThreadPool par(threads);
  std::vector<std::unique_ptr<Variant>> variants;
  if (!baseline.empty()) variants.push_back(make_variant("baseline", baseline, threads));
  variants.push_back(make_variant("source", "", threads));
  const std::string device = bench::cpu_model() + " (" + std::to_string(threads) + " threads)";
  std::printf("bench_attention_host on %s, fp32\n", device.c_str());
  nlohmann::json j;
  const AttnShape shapes[] = {{"tiny-moe-r20", 8, 256, 128, 2}, {"tiny-dense", 8, 256, 256, 4}};
  for (const AttnShape& s : shapes) run_shape(s, reps, variants, j);
  if (baseline.empty())
    for (const AttnShape& s : shapes) fused_vs_separate(s, reps, *variants[0]->kernels, par, j);
  for (const KernelChoice& c : variants.back()->ops->choices())
    std::printf("kernel %-22s %-10s %s\n", c.kernel.c_str(), rung_name(c.rung), c.config.c_str());
  j["reps"] = reps;
  bench::save("bench_attention_host", j, device);
  return 0;
}
