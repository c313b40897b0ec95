// Routing through the host JIT (RoutingSpec render -> Clang -> ORC, launched with the launch
// helpers) for T tokens x d_model x top-8, E 64 and 128, bf16: every step with the heuristic config
// (all worker threads) and with one thread, against a plain C++ loop of the same step (one thread,
// g++-compiled here) and a memcpy of the step's bytes (reads + writes, copied as bytes / 2).
// Ratios: reference / JIT (speed-up) and JIT bandwidth / memcpy bandwidth.
// Usage: routing_host_bench [--tokens N] [--d-model N] [--threads N] [--reps N]
// Writes routing_host_bench.json to $MOEJIT_BENCH_OUT (or bench/results/ with MOEJIT_BENCH_SAVE=1).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <functional>
#include <iostream>
#include <random>
#include <string>

#include "bench_util.hpp"
#include "host_backend.hpp"
#include "moejit/kernel_spec.hpp"
#include "routing/routing_spec.hpp"

namespace moejit {
namespace {

constexpr int kK = 8;
using Act = bf16;

struct Options {
  int64_t tokens = 4096, d_model = 1024;
  unsigned threads = 0;
  int reps = 7;
};

// Best of `reps` after a warm-up: the machine is shared, the minimum is the least disturbed run.
double best_ms(const std::function<void()>& work, int reps) {
  work();
  double best = 1e300;
  for (int i = 0; i < reps; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    work();
    best = std::min(best, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

struct Loaded {
  Config config;
  std::vector<std::unique_ptr<Kernel>> kernels;
};

Loaded load(HostBackend& host, Family family, Problem p, int64_t threads) {
  p.family = family;
  const KernelSpec& spec = spec_for(family, "host");
  Loaded l{spec.heuristic(p, host.device()), {}};
  l.config.set("threads", threads);
  const Source source = spec.render(p, l.config, host.device());
  auto binary = host.build(source);
  for (const auto& e : source.entries) l.kernels.push_back(host.load(binary, e));
  return l;
}

struct Row {
  std::string step;
  double bytes = 0, jit_ms = 0, jit1_ms = 0, reference_ms = 0, memcpy_ms = 0;
};

std::vector<Row> bench_shape(HostBackend& host, const Options& o, int E, std::mt19937& rng) {
  const int64_t T = o.tokens, D = o.d_model;
  const Problem p(Family::route_gate_fwd, DType::bf16, RoutingShape{E, kK, D}, T);
  const int64_t threads = host.threads();
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> logits(T * E), probs(T * E), lse(T), weight(T * kK), d_weight(T * kK), d_logits(T * E);
  for (auto& x : logits) x = normal(rng);
  std::vector<int> index(T * kK), slot(T * kK), counts(E), dropped(E), offsets(E + 1), row_source(T * kK);
  std::vector<float> aux_scale(E), losses(2);
  std::vector<Act> x(T * D), out(T * D), permuted(T * kK * D), d_y(T * kK * D);
  for (auto& v : x) v = from_float<Act>(normal(rng));
  for (auto& v : permuted) v = from_float<Act>(normal(rng));
  std::vector<char> scratch((T + 2 * T * kK) * D * sizeof(Act) + 64);  // twice the largest memcpy
  std::vector<Row> rows;
  auto add = [&](const std::string& step, double bytes, const std::function<void(Loaded&)>& jit, Loaded& all,
                 Loaded& one, const std::function<void()>& reference) {
    Row r{step, bytes};
    r.jit_ms = best_ms([&] { jit(all); }, o.reps);
    r.jit1_ms = best_ms([&] { jit(one); }, o.reps);
    r.reference_ms = best_ms(reference, o.reps);
    const size_t half = static_cast<size_t>(bytes / 2);
    r.memcpy_ms = best_ms([&] { std::memcpy(scratch.data(), scratch.data() + scratch.size() / 2, half); }, o.reps);
    rows.push_back(r);
  };
  const double row = static_cast<double>(D * sizeof(Act)), tk = static_cast<double>(T * kK);

  // Gating forward (softmax, renormalised top-8, probs and lse for the losses).
  Loaded gate = load(host, Family::route_gate_fwd, p, threads), gate1 = load(host, Family::route_gate_fwd, p, 1);
  GateForwardArgs ga;
  ga.logits = logits.data(), ga.params.renormalize = 1, ga.index = index.data(), ga.weight = weight.data();
  ga.probs = probs.data(), ga.lse = lse.data();
  add(
      "gate fwd", T * (2 * E * 4.0 + kK * 8.0 + 4),
      [&](Loaded& l) { launch_route_gate_fwd(*l.kernels[0], p, l.config, ga); }, gate, gate1,
      [&] {
        std::vector<std::pair<float, int>> s(E);  // softmax, then a full sort per token
        for (int64_t t = 0; t < T; ++t) {
          const float* l = &logits[t * E];
          float m = *std::max_element(l, l + E), sum = 0;
          for (int e = 0; e < E; ++e) sum += std::exp(l[e] - m);
          for (int e = 0; e < E; ++e) s[e] = {-std::exp(l[e] - m) / sum, e}, probs[t * E + e] = -s[e].first;
          lse[t] = m + std::log(sum);
          std::sort(s.begin(), s.end());
          float top = 0;
          for (int r = 0; r < kK; ++r) top -= s[r].first;
          for (int r = 0; r < kK; ++r) index[t * kK + r] = s[r].second, weight[t * kK + r] = -s[r].first / top;
        }
      });
  launch_route_gate_fwd(*gate.kernels[0], p, gate.config, ga);  // the plan and rows use the JIT's choices

  // Plan: counts, offsets, slots, losses.
  Loaded plan = load(host, Family::route_plan, p, threads), plan1 = load(host, Family::route_plan, p, 1);
  std::vector<char> ws(route_plan_workspace_bytes(p, Config{{"warps", 1}}));
  PlanArgs pa;
  pa.index = index.data(), pa.probs = probs.data(), pa.lse = lse.data(), pa.loss = {0.01f, 0.001f};
  pa.workspace = ws.data(), pa.counts = counts.data(), pa.dropped = dropped.data(), pa.offsets = offsets.data();
  pa.slot = slot.data(), pa.row_source = row_source.data(), pa.aux_scale = aux_scale.data();
  pa.losses = losses.data();
  add(
      "plan", T * (3 * kK * 4.0 + E * 4 + 4) + tk * 4,
      [&](Loaded& l) { launch_route_plan(*l.kernels[0], *l.kernels[1], *l.kernels[2], p, l.config, pa); }, plan, plan1,
      [&] {  // a stable sort of choice ids by expert
        std::vector<int> order(T * kK);
        for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int>(i);
        std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return index[a] < index[b]; });
        for (size_t r = 0; r < order.size(); ++r) slot[order[r]] = static_cast<int>(r), row_source[r] = order[r];
      });
  launch_route_plan(*plan.kernels[0], *plan.kernels[1], *plan.kernels[2], p, plan.config, pa);

  Loaded pf = load(host, Family::route_permute_fwd, p, threads), pf1 = load(host, Family::route_permute_fwd, p, 1);
  ScatterArgs sa;
  sa.src = x.data(), sa.slot = slot.data(), sa.dst = permuted.data();
  add(
      "permute fwd", T * row + tk * row, [&](Loaded& l) { launch_route_scatter(*l.kernels[0], p, l.config, sa); }, pf,
      pf1,
      [&] {
        for (int64_t r = 0; r < T * kK; ++r)
          for (int64_t d = 0; d < D; ++d) permuted[r * D + d] = x[(row_source[r] / kK) * D + d];
      });

  Loaded cf = load(host, Family::route_combine_fwd, p, threads), cf1 = load(host, Family::route_combine_fwd, p, 1);
  GatherArgs gc;
  gc.rows = permuted.data(), gc.slot = slot.data(), gc.weight = weight.data(), gc.out = out.data();
  add(
      "combine fwd", tk * row + T * row, [&](Loaded& l) { launch_route_gather(*l.kernels[0], p, l.config, gc); }, cf,
      cf1,
      [&] {
        for (int64_t t = 0; t < T; ++t)
          for (int64_t d = 0; d < D; ++d) {
            float acc = 0;
            for (int r = 0; r < kK; ++r) acc += weight[t * kK + r] * to_float(permuted[slot[t * kK + r] * D + d]);
            out[t * D + d] = from_float<Act>(acc);
          }
      });

  Loaded pb = load(host, Family::route_permute_bwd, p, threads), pb1 = load(host, Family::route_permute_bwd, p, 1);
  GatherArgs gp;
  gp.rows = permuted.data(), gp.slot = slot.data(), gp.out = out.data();
  add(
      "permute bwd", tk * row + T * row, [&](Loaded& l) { launch_route_gather(*l.kernels[0], p, l.config, gp); }, pb,
      pb1,
      [&] {
        for (int64_t t = 0; t < T; ++t)
          for (int64_t d = 0; d < D; ++d) {
            float acc = 0;
            for (int r = 0; r < kK; ++r) acc += to_float(permuted[slot[t * kK + r] * D + d]);
            out[t * D + d] = from_float<Act>(acc);
          }
      });

  Loaded cb = load(host, Family::route_combine_bwd, p, threads), cb1 = load(host, Family::route_combine_bwd, p, 1);
  ScatterArgs sb;
  sb.src = x.data(), sb.slot = slot.data(), sb.weight = weight.data(), sb.y = permuted.data(), sb.dst = d_y.data();
  sb.d_weight = d_weight.data();
  add(
      "combine bwd (d_y + d_weight)", T * row + 2 * tk * row,
      [&](Loaded& l) { launch_route_scatter(*l.kernels[0], p, l.config, sb); }, cb, cb1,
      [&] {
        for (int64_t t = 0; t < T; ++t)
          for (int r = 0; r < kK; ++r) {
            const int64_t s = slot[t * kK + r];
            float dot = 0;
            for (int64_t d = 0; d < D; ++d) {
              const float g = to_float(x[t * D + d]);
              dot += g * to_float(permuted[s * D + d]);
              d_y[s * D + d] = from_float<Act>(weight[t * kK + r] * g);
            }
            d_weight[t * kK + r] = dot;
          }
      });

  Loaded gb = load(host, Family::route_gate_bwd, p, threads), gb1 = load(host, Family::route_gate_bwd, p, 1);
  GateBackwardArgs ba;
  ba.logits = logits.data(), ba.index = index.data(), ba.d_weight = d_weight.data(), ba.aux_scale = aux_scale.data();
  ba.params = ga.params, ba.grad.z_scale = route_z_scale(0.001f, T), ba.d_logits = d_logits.data();
  add(
      "gate bwd (+aux, z)", T * (2 * E * 4.0 + kK * 8.0),
      [&](Loaded& l) { launch_route_gate_bwd(*l.kernels[0], p, l.config, ba); }, gb, gb1,
      [&] {
        std::vector<float> s(E), g(E);  // softmax; dL/ds; back through the renormalisation and softmax
        for (int64_t t = 0; t < T; ++t) {
          const float* l = &logits[t * E];
          float m = *std::max_element(l, l + E), sum = 0;
          for (int e = 0; e < E; ++e) sum += (s[e] = std::exp(l[e] - m));
          for (int e = 0; e < E; ++e) s[e] /= sum, g[e] = aux_scale[e];
          float top = 0, dot = 0;
          for (int r = 0; r < kK; ++r) top += s[index[t * kK + r]], dot += d_weight[t * kK + r] * s[index[t * kK + r]];
          for (int r = 0; r < kK; ++r) g[index[t * kK + r]] += d_weight[t * kK + r] / top - dot / (top * top);
          float gs = 0;
          for (int e = 0; e < E; ++e) gs += g[e] * s[e];
          const float lse_t = m + std::log(sum);
          for (int e = 0; e < E; ++e) d_logits[t * E + e] = s[e] * (g[e] - gs) + ba.grad.z_scale * lse_t * s[e];
        }
      });
  return rows;
}

int run(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--tokens" && i + 1 < argc)
      o.tokens = std::atoll(argv[++i]);
    else if (a == "--d-model" && i + 1 < argc)
      o.d_model = std::atoll(argv[++i]);
    else if (a == "--threads" && i + 1 < argc)
      o.threads = static_cast<unsigned>(std::atoi(argv[++i]));
    else if (a == "--reps" && i + 1 < argc)
      o.reps = std::atoi(argv[++i]);
    else {
      std::cerr << "usage: routing_host_bench [--tokens N] [--d-model N] [--threads N] [--reps N]\n";
      return 2;
    }
  }
  HostBackend host(nullptr, o.threads);
  std::mt19937 rng(5);
  nlohmann::json result;
  result["shape"] = {{"tokens", o.tokens}, {"d_model", o.d_model}, {"top_k", kK}, {"dtype", "bf16"}};
  result["threads"] = host.threads();
  std::printf("device: %s (%s), %u threads; T=%lld, d_model=%lld, top-%d, bf16; best of %d\n",
              host.device().name.c_str(), host.device().arch.c_str(), host.threads(), static_cast<long long>(o.tokens),
              static_cast<long long>(o.d_model), kK, o.reps);
  for (int E : {64, 128}) {
    const auto rows = bench_shape(host, o, E, rng);
    std::printf(
        "\nE=%d\n| step | JIT ms (%u thr) | JIT ms (1 thr) | plain loop ms | memcpy ms | loop / JIT | loop / "
        "JIT 1 thr | JIT GB/s / memcpy GB/s |\n|---|---:|---:|---:|---:|---:|---:|---:|\n",
        E, host.threads());
    for (const auto& r : rows) {
      std::printf("| %s | %.3f | %.3f | %.3f | %.3f | %.2f | %.2f | %.2f |\n", r.step.c_str(), r.jit_ms, r.jit1_ms,
                  r.reference_ms, r.memcpy_ms, r.reference_ms / r.jit_ms, r.reference_ms / r.jit1_ms,
                  r.memcpy_ms / r.jit_ms);
      result["rows"].push_back({{"experts", E},
                                {"step", r.step},
                                {"bytes", r.bytes},
                                {"jit_ms", r.jit_ms},
                                {"jit_one_thread_ms", r.jit1_ms},
                                {"reference_ms", r.reference_ms},
                                {"memcpy_ms", r.memcpy_ms}});
    }
  }
  bench::save("routing_host_bench", result, host.device().name);
  return 0;
}

}  // namespace
}  // namespace moejit

int main(int argc, char** argv) {
  try {
    return moejit::run(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "routing_host_bench: " << e.what() << "\n";
    return 1;
  }
}
