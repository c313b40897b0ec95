// Routing benchmark. GPU: gating (tokens/s), plan, permute / combine forward and backward for
// T tokens x d_model x top-k with E experts (default 16384 x 2048 x 8, E 128, bf16), each as a
// fraction of a device-to-device copy's bandwidth measured in the same run (goal >= 0.80).
// Host: the same steps through the host loops (g++-compiled here; the host JIT compiles the same
// headers) against plain reference loops, as a speed ratio.
// Writes $MOEJIT_BENCH_OUT/routing_bench.json (if set) and a table on stdout.
//   routing_bench [--tokens N] [--host-tokens N] [--gpu-only] [--host-only]
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>

#include "bench_util.hpp"
#include "cuda_backend.hpp"
#include "cuda_driver.hpp"
#include "files.hpp"
#include "moejit/kernel_spec.hpp"
#include "routing/routing_host.h"
#include "routing/routing_spec.hpp"

namespace moejit {
namespace {

constexpr int kE = 128, kK = 8, kD = 2048;
using Act = bf16;

struct Row {
  std::string step;
  double ms = 0;
  double bytes = 0;          // bytes the step must move (reads + writes of activations)
  double copy_fraction = 0;  // (bytes / ms) / (copy bandwidth)
  double tokens_per_s = 0;
  std::string config;
};

void random_logits(std::vector<float>& logits, int64_t tokens, std::mt19937& rng) {
  std::normal_distribution<float> n(0.0f, 1.0f);
  logits.resize(tokens * kE);
  for (auto& x : logits) x = n(rng);
}

// Median of `reps` timed calls of `work`.
double median_ms(CudaBackend& gpu, const std::function<void()>& work, int reps = 15) {
  for (int i = 0; i < 3; ++i) work();
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) t.push_back(gpu.time_ms(work));
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

std::vector<std::unique_ptr<Kernel>> load(CudaBackend& gpu, Family family, Problem p, Config* config) {
  p.family = family;
  const auto& spec = spec_for(family, "cuda");
  *config = spec.heuristic(p, gpu.device());
  const std::string env_name = "MOEJIT_BENCH_CONFIG_" + std::string(to_string(family));
  if (const char* env = std::getenv(env_name.c_str())) *config = Config::parse(env);
  const Source source = spec.render(p, *config, gpu.device());
  auto binary = gpu.build(source);
  std::vector<std::unique_ptr<Kernel>> kernels;
  for (const auto& e : source.entries) kernels.push_back(gpu.load(binary, e));
  return kernels;
}

std::vector<Row> bench_gpu(int64_t tokens, std::string* device_name) {
  CudaBackend gpu;
  *device_name = gpu.device().name;
  Problem p(Family::route_gate_fwd, DType::bf16, RoutingShape{kE, kK, kD}, tokens);
  std::mt19937 rng(1);
  std::vector<float> logits;
  random_logits(logits, tokens, rng);
  const int pad_to = 128;
  const int64_t max_rows = route_max_rows(p, -1, pad_to);
  const size_t act = sizeof(Act);

  DeviceBuffer d_logits = DeviceBuffer::from(gpu, logits);
  DeviceBuffer index(gpu, tokens * kK * 4), weight(gpu, tokens * kK * 4), probs(gpu, tokens * kE * 4),
      lse(gpu, tokens * 4);
  DeviceBuffer counts(gpu, kE * 4), dropped(gpu, kE * 4), offsets(gpu, (kE + 1) * 4), slot(gpu, tokens * kK * 4);
  DeviceBuffer row_source(gpu, max_rows * 4), aux_scale(gpu, kE * 4), losses(gpu, 8),
      d_logits_out(gpu, tokens * kE * 4);
  DeviceBuffer x(gpu, tokens * kD * act), out(gpu, tokens * kD * act), permuted(gpu, max_rows * kD * act);
  DeviceBuffer y(gpu, max_rows * kD * act), d_y(gpu, max_rows * kD * act), d_weight(gpu, tokens * kK * 4);
  x.fill(0x3c), y.fill(0x3c), out.fill(0);

  std::vector<Row> rows;
  Config cg, cgb, cp, cs, cc;
  auto gate = load(gpu, Family::route_gate_fwd, p, &cg);
  auto gate_bwd = load(gpu, Family::route_gate_bwd, p, &cgb);
  auto plan = load(gpu, Family::route_plan, p, &cp);
  auto scatter = load(gpu, Family::route_permute_fwd, p, &cs);
  auto gather = load(gpu, Family::route_combine_fwd, p, &cc);
  DeviceBuffer workspace(gpu, route_plan_workspace_bytes(p, cp));

  GateForwardArgs ga;
  ga.logits = static_cast<const float*>(d_logits.get());
  ga.params.renormalize = 1;
  ga.index = static_cast<int*>(index.get()), ga.weight = static_cast<float*>(weight.get());
  GateForwardArgs ga_loss = ga;
  ga_loss.probs = static_cast<float*>(probs.get()), ga_loss.lse = static_cast<float*>(lse.get());
  PlanArgs pa;
  pa.index = ga.index, pa.probs = ga_loss.probs, pa.lse = ga_loss.lse, pa.pad_to = pad_to, pa.loss = {0.01f, 0.001f};
  pa.workspace = workspace.get(), pa.counts = static_cast<int*>(counts.get());
  pa.dropped = static_cast<int*>(dropped.get()), pa.offsets = static_cast<int*>(offsets.get());
  pa.slot = static_cast<int*>(slot.get()), pa.row_source = static_cast<int*>(row_source.get());
  pa.aux_scale = static_cast<float*>(aux_scale.get()), pa.losses = static_cast<float*>(losses.get());
  launch_route_gate_fwd(*gate[0], p, cg, ga_loss);
  launch_route_plan(*plan[0], *plan[1], *plan[2], p, cp, pa);
  gpu.synchronize();

  // Copy baseline: the permuted tensor's size, device to device (reads + writes = 2x its bytes).
  const double copy_bytes = static_cast<double>(tokens * kK * kD * act);
  const double copy_ms = median_ms(gpu, [&] { gpu.copy_device_to_device(d_y.get(), permuted.get(), copy_bytes); });
  const double copy_bw = 2 * copy_bytes / copy_ms;
  rows.push_back({"d2d copy (baseline)", copy_ms, 2 * copy_bytes, 1.0, 0, "cuMemcpyDtoD"});

  auto add = [&](const std::string& step, double bytes, const Config& config, const std::function<void()>& work) {
    Row r;
    r.step = step;
    r.ms = median_ms(gpu, work);
    r.bytes = bytes;
    r.copy_fraction = bytes > 0 ? (bytes / r.ms) / copy_bw : 0;
    r.tokens_per_s = tokens / (r.ms * 1e-3);
    r.config = config.to_string();
    rows.push_back(r);
  };
  const double row_bytes = kD * act, tk = static_cast<double>(tokens * kK);
  add("gate fwd (softmax, top-8)", tokens * (kE * 4.0 + kK * 8.0), cg,
      [&] { launch_route_gate_fwd(*gate[0], p, cg, ga); });
  add("gate fwd + probs/lse (losses)", tokens * (2 * kE * 4.0 + kK * 8.0 + 4), cg,
      [&] { launch_route_gate_fwd(*gate[0], p, cg, ga_loss); });
  add("plan (counts, offsets, slots, losses)", 0, cp,
      [&] { launch_route_plan(*plan[0], *plan[1], *plan[2], p, cp, pa); });
  ScatterArgs sa;
  sa.src = x.get(), sa.slot = pa.slot, sa.dst = permuted.get(), sa.offsets = pa.offsets, sa.row_source = pa.row_source;
  add("permute fwd", tokens * row_bytes + tk * row_bytes, cs, [&] { launch_route_scatter(*scatter[0], p, cs, sa); });
  GatherArgs gc;
  gc.rows = y.get(), gc.slot = pa.slot, gc.weight = ga.weight, gc.out = out.get();
  add("combine fwd", tk * row_bytes + tokens * row_bytes, cc, [&] { launch_route_gather(*gather[0], p, cc, gc); });
  GatherArgs pb;
  pb.rows = y.get(), pb.slot = pa.slot, pb.out = out.get();
  add("permute bwd", tk * row_bytes + tokens * row_bytes, cc, [&] { launch_route_gather(*gather[0], p, cc, pb); });
  ScatterArgs cb;
  cb.src = x.get(), cb.slot = pa.slot, cb.weight = ga.weight, cb.y = y.get(), cb.dst = d_y.get();
  cb.d_weight = static_cast<float*>(d_weight.get()), cb.offsets = pa.offsets, cb.row_source = pa.row_source;
  add("combine bwd (d_y + d_weight)", tokens * row_bytes + 2 * tk * row_bytes, cs,
      [&] { launch_route_scatter(*scatter[0], p, cs, cb); });
  GateBackwardArgs gb;
  gb.logits = ga.logits, gb.index = ga.index, gb.d_weight = cb.d_weight, gb.aux_scale = pa.aux_scale;
  gb.params = ga.params, gb.grad.z_scale = route_z_scale(0.001f, tokens),
  gb.d_logits = static_cast<float*>(d_logits_out.get());
  add("gate bwd (+aux, z)", tokens * (2 * kE * 4.0 + kK * 8.0), cgb,
      [&] { launch_route_gate_bwd(*gate_bwd[0], p, cgb, gb); });
  return rows;
}

// ---- host: the host loops against plain reference loops (same math, written naively) ----
double host_ms(const std::function<void()>& work, int reps = 3) {
  work();
  double best = 1e30;
  for (int i = 0; i < reps; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    work();
    best = std::min(best, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

struct HostRow {
  std::string step;
  double ms = 0, reference_ms = 0;
};

std::vector<HostRow> bench_host(int64_t tokens) {
  Problem p(Family::route_gate_fwd, DType::bf16, RoutingShape{kE, kK, kD}, tokens);
  std::mt19937 rng(2);
  std::vector<float> logits;
  random_logits(logits, tokens, rng);
  std::vector<int> index(tokens * kK), slot(tokens * kK), counts(kE), dropped(kE), offsets(kE + 1);
  std::vector<float> weight(tokens * kK), d_weight(tokens * kK);
  std::vector<int> row_source(route_max_rows(p, -1, 1));
  std::vector<Act> x(tokens * kD, from_float<Act>(0.5f)), out(tokens * kD), permuted(tokens * kK * kD),
      d_y(tokens * kK * kD);
  std::vector<HostRow> rows;

  struct Fn final : Kernel {
    void (*fn)(void**, const HostLaunch*);
    std::string n = "host";
    explicit Fn(void (*f)(void**, const HostLaunch*)) : fn(f) {}
    void launch(const LaunchDims&, void** a) override { fn(a, nullptr); }
    const std::string& name() const override { return n; }
  };
  const Config gate_cfg{{"lanes", 1}, {"tokens", 1}}, plan_cfg{{"warps", 8}},
      rows_cfg{{"vec", 8}, {"lanes", 1}, {"rows", 1}};
  Fn gate(&route_gate_fwd_host<kE, kK>), count(&route_count_host<kE, kK, 256>), offs(&route_offsets_host<kE, kK>),
      slots(&route_slots_host<kE, kK, 256>), scatter(&route_scatter_host<Act, 8, kK, kD>),
      gather(&route_gather_host<Act, 8, kK, kD>);
  GateForwardArgs ga;
  ga.logits = logits.data(), ga.index = index.data(), ga.weight = weight.data();
  HostRow g{"gate fwd"};
  g.ms = host_ms([&] { launch_route_gate_fwd(gate, p, gate_cfg, ga); });
  g.reference_ms = host_ms([&] {  // reference: softmax, then a full sort per token
    std::vector<std::pair<float, int>> s(kE);
    for (int64_t t = 0; t < tokens; ++t) {
      const float* l = &logits[t * kE];
      float m = *std::max_element(l, l + kE), sum = 0;
      for (int e = 0; e < kE; ++e) sum += std::exp(l[e] - m);
      for (int e = 0; e < kE; ++e) s[e] = {-std::exp(l[e] - m) / sum, e};
      std::sort(s.begin(), s.end());
      for (int r = 0; r < kK; ++r) index[t * kK + r] = s[r].second, weight[t * kK + r] = -s[r].first;
    }
  });
  rows.push_back(g);
  std::vector<char> ws(route_plan_workspace_bytes(p, plan_cfg));
  PlanArgs pa;
  pa.index = index.data(), pa.workspace = ws.data(), pa.counts = counts.data(), pa.dropped = dropped.data();
  pa.offsets = offsets.data(), pa.slot = slot.data(), pa.row_source = row_source.data();
  HostRow pl{"plan"};
  pl.ms = host_ms([&] { launch_route_plan(count, offs, slots, p, plan_cfg, pa); });
  pl.reference_ms = host_ms([&] {  // reference: stable sort of choice ids by expert
    std::vector<int> order(tokens * kK);
    for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int>(i);
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return index[a] < index[b]; });
    for (size_t r = 0; r < order.size(); ++r) slot[order[r]] = static_cast<int>(r), row_source[r] = order[r];
  });
  rows.push_back(pl);
  ScatterArgs sa;
  sa.src = x.data(), sa.slot = slot.data(), sa.dst = permuted.data();
  HostRow pf{"permute fwd"};
  pf.ms = host_ms([&] { launch_route_scatter(scatter, p, rows_cfg, sa); });
  pf.reference_ms = host_ms([&] {
    for (size_t r = 0; r < permuted.size() / kD; ++r)
      for (int d = 0; d < kD; ++d) permuted[r * kD + d] = x[(row_source[r] / kK) * kD + d];
  });
  rows.push_back(pf);
  GatherArgs gc;
  gc.rows = permuted.data(), gc.slot = slot.data(), gc.weight = weight.data(), gc.out = out.data();
  HostRow cf{"combine fwd"};
  cf.ms = host_ms([&] { launch_route_gather(gather, p, rows_cfg, gc); });
  cf.reference_ms = host_ms([&] {
    for (int64_t t = 0; t < tokens; ++t)
      for (int d = 0; d < kD; ++d) {
        double acc = 0;
        for (int r = 0; r < kK; ++r) acc += weight[t * kK + r] * to_float(permuted[slot[t * kK + r] * int64_t{kD} + d]);
        out[t * kD + d] = from_float<Act>(static_cast<float>(acc));
      }
  });
  rows.push_back(cf);
  ScatterArgs cb;
  cb.src = x.data(), cb.slot = slot.data(), cb.weight = weight.data(), cb.y = permuted.data(), cb.dst = d_y.data();
  cb.d_weight = d_weight.data();
  HostRow bw{"combine bwd"};
  bw.ms = host_ms([&] { launch_route_scatter(scatter, p, rows_cfg, cb); });
  bw.reference_ms = host_ms([&] {
    for (int64_t t = 0; t < tokens; ++t)
      for (int r = 0; r < kK; ++r) {
        const int64_t s = slot[t * kK + r];
        double dot = 0;
        for (int d = 0; d < kD; ++d) {
          const float grad = to_float(x[t * kD + d]);
          dot += grad * to_float(permuted[s * kD + d]);
          d_y[s * kD + d] = from_float<Act>(weight[t * kK + r] * grad);
        }
        d_weight[t * kK + r] = static_cast<float>(dot);
      }
  });
  rows.push_back(bw);
  return rows;
}

int run(int argc, char** argv) {
  int64_t tokens = 16384, host_tokens = 2048;
  bool gpu_only = false, host_only = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--tokens" && i + 1 < argc)
      tokens = std::atoll(argv[++i]);
    else if (a == "--host-tokens" && i + 1 < argc)
      host_tokens = std::atoll(argv[++i]);
    else if (a == "--gpu-only")
      gpu_only = true;
    else if (a == "--host-only")
      host_only = true;
    else {
      std::cerr << "usage: routing_bench [--tokens N] [--host-tokens N] [--gpu-only] [--host-only]\n";
      return 2;
    }
  }
  nlohmann::json result;
  std::string device = "none";
  result["shape"] = {{"tokens", tokens}, {"d_model", kD}, {"top_k", kK}, {"experts", kE}, {"dtype", "bf16"}};

  if (!host_only) {
    std::string why;
    if (!CudaDriver::available(&why)) {
      std::cout << "GPU part skipped: no GPU (" << why << ")\n";
      result["gpu"] = "skipped: no GPU";
    } else {
      const auto rows = bench_gpu(tokens, &device);
      std::printf("device: %s  (T=%lld, d_model=%d, top-%d, E=%d, bf16; copy fraction goal >= 0.80)\n", device.c_str(),
                  static_cast<long long>(tokens), kD, kK, kE);
      std::printf(
          "| step | ms | GB/s moved | fraction of d2d copy | Mtokens/s | config |\n|---|---|---|---|---|---|\n");
      for (const auto& r : rows) {
        std::printf("| %s | %.4f | %.0f | %.2f | %.1f | %s |\n", r.step.c_str(), r.ms, r.bytes / r.ms * 1e-6,
                    r.copy_fraction, r.tokens_per_s * 1e-6, r.config.c_str());
        result["gpu_rows"].push_back({{"step", r.step},
                                      {"ms", r.ms},
                                      {"bytes", r.bytes},
                                      {"copy_fraction", r.copy_fraction},
                                      {"tokens_per_s", r.tokens_per_s},
                                      {"config", r.config}});
      }
    }
  }
  if (!gpu_only) {
    const auto rows = bench_host(host_tokens);
    std::printf("\nhost loops (g++-compiled routing_host.h, one thread) vs plain reference loops, T=%lld:\n",
                static_cast<long long>(host_tokens));
    std::printf("| step | host loop ms | reference ms | speed-up |\n|---|---|---|---|\n");
    for (const auto& r : rows) {
      std::printf("| %s | %.2f | %.2f | %.2fx |\n", r.step.c_str(), r.ms, r.reference_ms, r.reference_ms / r.ms);
      result["host_rows"].push_back({{"step", r.step}, {"ms", r.ms}, {"reference_ms", r.reference_ms}});
    }
  }
  bench::save("routing_bench", result, device);
  return 0;
}

}  // namespace
}  // namespace moejit

int main(int argc, char** argv) {
  try {
    return moejit::run(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "routing_bench: " << e.what() << "\n";
    return 1;
  }
}
