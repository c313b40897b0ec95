// Host grouped GEMM families vs a plain double-precision reference, on random ragged expert loads
// (experts with 0 and 1 rows, sizes that are multiples of no tile), every config of the space.
// Tolerance: |got - ref| <= 1e-4 + 1e-4 * |ref| (fp32 accumulation over at most a few hundred terms
// of values in [-1, 1]).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <map>
#include <random>

#include "binary_cache.hpp"
#include "compile_pool.hpp"
#include "host/grouped_gemm_spec.hpp"
#include "host_backend.hpp"
#include "moejit/error.hpp"

using namespace moejit;

namespace {

HostBackend& backend() {
  static HostBackend b(nullptr, 2);
  return b;
}

Kernel& kernel_for(const Source& source) {
  static std::map<std::string, std::unique_ptr<Kernel>> kernels;  // by binary key
  auto binary = backend().build(source);
  auto& k = kernels[binary->key];
  if (!k) k = backend().load(binary, HostGroupedGemmSpec::kEntry);
  return *k;
}

// Row counts per expert summing to tokens * top_k: skewed, expert 0 empty, expert 1 one row.
std::vector<int64_t> make_offsets(int64_t experts, int64_t rows, std::mt19937& rng) {
  std::vector<int64_t> counts(experts, 0);
  int64_t left = rows;
  if (experts > 2 && left > 0) counts[1] = 1, --left;
  std::uniform_real_distribution<double> u(0, 1);
  for (int64_t r = 0; r < left; ++r) {
    int64_t e = static_cast<int64_t>(std::pow(u(rng), 2.0) * experts);  // skewed towards low ids
    if (experts > 1 && e == 0) e = experts - 1;                         // keeps expert 0 empty
    ++counts[std::min(e, experts - 1)];
  }
  std::vector<int64_t> offsets{0};
  for (auto c : counts) offsets.push_back(offsets.back() + c);
  return offsets;
}

std::vector<float> random_floats(size_t n, std::mt19937& rng) {
  std::uniform_real_distribution<float> dist(-1, 1);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

struct Data {
  Problem problem;
  std::vector<int64_t> offsets;
  std::vector<float> x, w, dy;  // (rows, K), (E, K, Ncols), (rows, N)
  int64_t rows, k, n, ncols;
};

Data make_data(Family kind, Problem p, uint32_t seed) {
  std::mt19937 rng(seed);
  Data d;
  d.problem = p;
  d.rows = p.rows();
  d.k = p.gemm().k;
  d.n = p.gemm().n;
  d.ncols = kind == Family::grouped_gemm_up_swiglu ? 2 * d.n : d.n;
  d.offsets = make_offsets(p.gemm().experts, d.rows, rng);
  d.x = random_floats(d.rows * d.k, rng);
  d.w = random_floats(p.gemm().experts * d.k * d.ncols, rng);
  d.dy = random_floats(d.rows * d.n, rng);
  return d;
}

// The expected outputs, in double. swiglu returns {gate_up, h}; others one tensor.
std::vector<std::vector<double>> reference(Family kind, const Data& d) {
  const int64_t E = d.problem.gemm().experts, K = d.k, N = d.n, NC = d.ncols;
  std::vector<std::vector<double>> out;
  if (kind == Family::grouped_gemm_fwd || kind == Family::grouped_gemm_up_swiglu) {
    std::vector<double> y(d.rows * NC, 0.0);
    for (int64_t e = 0; e < E; ++e)
      for (int64_t r = d.offsets[e]; r < d.offsets[e + 1]; ++r)
        for (int64_t j = 0; j < NC; ++j) {
          double s = 0;
          for (int64_t k = 0; k < K; ++k) s += double(d.x[r * K + k]) * d.w[(e * K + k) * NC + j];
          y[r * NC + j] = s;
        }
    out.push_back(y);
    if (kind == Family::grouped_gemm_up_swiglu) {
      std::vector<double> h(d.rows * N);
      for (int64_t r = 0; r < d.rows; ++r)
        for (int64_t j = 0; j < N; ++j) {
          double g = y[r * NC + j], u = y[r * NC + N + j];
          h[r * N + j] = g / (1 + std::exp(-g)) * u;
        }
      out.push_back(h);
    }
  } else if (kind == Family::grouped_gemm_dgrad) {
    std::vector<double> dx(d.rows * K, 0.0);
    for (int64_t e = 0; e < E; ++e)
      for (int64_t r = d.offsets[e]; r < d.offsets[e + 1]; ++r)
        for (int64_t k = 0; k < K; ++k) {
          double s = 0;
          for (int64_t j = 0; j < N; ++j) s += double(d.dy[r * N + j]) * d.w[(e * K + k) * N + j];
          dx[r * K + k] = s;
        }
    out.push_back(dx);
  } else {
    std::vector<double> dw(E * K * N, 0.0);
    for (int64_t e = 0; e < E; ++e)
      for (int64_t r = d.offsets[e]; r < d.offsets[e + 1]; ++r)
        for (int64_t k = 0; k < K; ++k)
          for (int64_t j = 0; j < N; ++j) dw[(e * K + k) * N + j] += double(d.x[r * K + k]) * d.dy[r * N + j];
    out.push_back(dw);
  }
  return out;
}

// The attention families are the causal fwd, dgrad and wgrad views (host/grouped_gemm_families.h).
Family gemm_view(Family kind) {
  return host_gemm_view(kind).gemm;
}

// Runs the kernel on poisoned (NaN) outputs and returns them; with `start`, on a copy of it with
// accumulate (C += the product; fwd, dgrad and wgrad only).
std::vector<std::vector<float>> run(Family kind, const Data& d, const Config& config,
                                    const std::vector<float>* start = nullptr) {
  const HostGroupedGemmSpec spec(kind);
  Kernel& kernel = kernel_for(spec.render(d.problem, config, backend().device()));
  const float nan = std::nanf("");
  const int64_t E = d.problem.gemm().experts;
  const bool into = start != nullptr;
  auto output = [&](int64_t n) { return into ? *start : std::vector<float>(n, nan); };
  switch (gemm_view(kind)) {
    case Family::grouped_gemm_fwd: {
      std::vector<float> y = output(d.rows * d.n);
      launch_host_gemm_fwd(kernel, d.problem, config, d.x.data(), d.w.data(), y.data(), d.offsets.data(),
                           {.accumulate = into});
      return {y};
    }
    case Family::grouped_gemm_up_swiglu: {
      std::vector<float> gu(d.rows * 2 * d.n, nan), h(d.rows * d.n, nan);
      launch_host_gemm_swiglu(kernel, d.problem, config, d.x.data(), d.w.data(), gu.data(), h.data(), d.offsets.data());
      return {gu, h};
    }
    case Family::grouped_gemm_dgrad: {
      std::vector<float> dx = output(d.rows * d.k);
      launch_host_gemm_dgrad(kernel, d.problem, config, d.dy.data(), d.w.data(), dx.data(), d.offsets.data(),
                             {.accumulate = into});
      return {dx};
    }
    case Family::grouped_gemm_wgrad: {
      std::vector<float> dw = output(E * d.k * d.n);
      launch_host_gemm_wgrad(kernel, d.problem, config, d.x.data(), d.dy.data(), dw.data(), d.offsets.data(),
                             {.accumulate = into});
      return {dw};
    }
    default:
      return {};
  }
}

void expect_close(const std::vector<std::vector<float>>& got, const std::vector<std::vector<double>>& want,
                  const std::string& what) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t t = 0; t < got.size(); ++t) {
    ASSERT_EQ(got[t].size(), want[t].size()) << what;
    for (size_t i = 0; i < got[t].size(); ++i) {
      const double tol = 1e-4 + 1e-4 * std::abs(want[t][i]);
      ASSERT_TRUE(std::abs(got[t][i] - want[t][i]) <= tol)  // NaN (unwritten) fails too
          << what << " output " << t << " element " << i << ": got " << got[t][i] << ", want " << want[t][i];
    }
  }
}

Problem problem_for(Family kind, int64_t experts, int64_t top_k, int64_t tokens, int64_t d_model, int64_t d_expert) {
  return Problem(kind, DType::f32, GemmShape{experts, top_k, d_model, d_expert}, tokens);
}

class HostGroupedGemm : public ::testing::TestWithParam<Family> {};

// Every config of the space: ~10 distinct binaries per family (blocks and threads are launch
// arguments), compiled on two threads through the binary cache, then each config checked.
TEST_P(HostGroupedGemm, EveryConfigInTheSpaceAgreesWithTheReference) {
  const Family kind = GetParam();
  const HostGroupedGemmSpec spec(kind);
  // rows 123 > every mc tried at mr 6; K 150 > kc 128 (one panel of 150: the buffers hold 1.5 kc);
  // N 137 > nc 128; none a multiple of a tile.
  const Problem p = problem_for(kind, 6, 3, 41, 150, 137);
  const auto configs = spec.space(p, backend().device());
  ASSERT_FALSE(configs.empty());
  std::vector<Source> sources;
  for (const auto& c : configs) {
    ASSERT_EQ(spec.prune_reason(p, c, backend().device()), "") << c.to_string();
    sources.push_back(spec.render(p, c, backend().device()));
  }
  ThreadPool pool(2);
  for (auto& f : compile_all(pool, BinaryCache::global(), backend().compiler(), sources)) f.get();

  const Data d = make_data(kind, p, 11);
  const auto want = reference(kind, d);
  for (const auto& c : configs)
    expect_close(run(kind, d, c), want, std::string(to_string(spec.family())) + " " + c.to_string());
}

// The heuristic config over expert counts 1..256 and top-k up to 8, including decode-sized calls.
TEST_P(HostGroupedGemm, HeuristicHandlesRaggedShapes) {
  const Family kind = GetParam();
  const HostGroupedGemmSpec spec(kind);
  struct Case {
    int64_t experts, top_k, tokens, d_model, d_expert;
  };
  for (Case s : {Case{1, 1, 5, 16, 24}, Case{1, 1, 0, 8, 8}, Case{3, 2, 1, 33, 17}, Case{92, 7, 40, 71, 45},
                 Case{256, 8, 64, 40, 35}}) {
    const Problem p = problem_for(kind, s.experts, s.top_k, s.tokens, s.d_model, s.d_expert);
    const Config c = spec.heuristic(p, backend().device());
    ASSERT_EQ(spec.prune_reason(p, c, backend().device()), "") << p.to_string();
    const Data d = make_data(kind, p, 5 + static_cast<uint32_t>(s.experts));
    expect_close(run(kind, d, c), reference(kind, d), p.to_string() + " " + c.to_string());
  }
}

// accumulate: the output is added to, for every view that can accumulate, with an expert left empty
// (its rows add nothing to the weight gradient) and with a config whose blocks split the reduction.
TEST(HostGroupedGemmAccumulate, AddsTheProductToTheOutput) {
  for (Family kind : {Family::grouped_gemm_fwd, Family::grouped_gemm_dgrad, Family::grouped_gemm_wgrad}) {
    const HostGroupedGemmSpec spec(kind);
    const Problem p = problem_for(kind, 5, 2, 23, 40, 24);  // 46 rows; make_offsets leaves expert 0 empty
    const Data d = make_data(kind, p, 21);
    auto want = reference(kind, d);
    const size_t n = want[0].size();
    std::vector<float> start(n);
    std::mt19937 rng(22);
    std::uniform_real_distribution<float> u(-1, 1);
    for (float& v : start) v = u(rng);
    for (size_t i = 0; i < n; ++i) want[0][i] += start[i];
    Config small = spec.heuristic(p, backend().device());
    small.set("kc", 8);  // several panels: the first must add too
    for (const Config& c : {spec.heuristic(p, backend().device()), small})
      expect_close(run(kind, d, c, &start), want, std::string(to_string(kind)) + " += " + c.to_string());
  }
}

// The SwiGLU backward epilogue: the product is d_h and the kernel writes d_gate_up (rows, 2 x its
// columns) against a forward's gate_up, on the fwd view (the dense FFN's dgrad) and the dgrad view
// (the experts' dgrad), with blocks that split the reduction and the columns; the views that cannot
// take it refuse it before running.
TEST(HostGroupedGemmSwigluEpilogue, WritesTheGateAndUpGradientsOfTheProduct) {
  std::mt19937 rng(32);
  std::uniform_real_distribution<float> u(-3, 3);
  for (Family kind : {Family::grouped_gemm_fwd, Family::grouped_gemm_dgrad}) {
    const HostGroupedGemmSpec spec(kind);
    const Problem p = problem_for(kind, 5, 2, 23, 40, 24);
    const Data d = make_data(kind, p, 31);
    const std::vector<double> dh = reference(kind, d)[0];
    const int64_t f = kind == Family::grouped_gemm_fwd ? d.n : d.k;  // the product's columns
    std::vector<float> gate_up(d.rows * 2 * f);
    for (float& v : gate_up) v = u(rng);
    std::vector<double> want(d.rows * 2 * f);
    for (int64_t r = 0; r < d.rows; ++r)
      for (int64_t j = 0; j < f; ++j) {
        const double g = gate_up[r * 2 * f + j], up = gate_up[r * 2 * f + f + j], s = 1 / (1 + std::exp(-g));
        want[r * 2 * f + j] = dh[r * f + j] * up * s * (1 + g * (1 - s));
        want[r * 2 * f + f + j] = dh[r * f + j] * g * s;
      }
    Config small = spec.heuristic(p, backend().device());
    small.set("kc", 8);
    small.set("nc", small.get("nr"));
    for (const Config& c : {spec.heuristic(p, backend().device()), small}) {
      Kernel& kernel = kernel_for(spec.render(p, c, backend().device()));
      std::vector<float> d_gate_up(d.rows * 2 * f, std::nanf(""));
      const HostGemmOptions epilogue{.swiglu_gate_up = gate_up.data()};
      if (kind == Family::grouped_gemm_fwd)
        launch_host_gemm_fwd(kernel, p, c, d.x.data(), d.w.data(), d_gate_up.data(), d.offsets.data(), epilogue);
      else
        launch_host_gemm_dgrad(kernel, p, c, d.dy.data(), d.w.data(), d_gate_up.data(), d.offsets.data(), epilogue);
      expect_close({d_gate_up}, {want}, std::string(to_string(kind)) + " + swiglu_bwd " + c.to_string());
      HostGemmOptions accumulating = epilogue;
      accumulating.accumulate = true;
      EXPECT_THROW(
          launch_host_gemm_fwd(kernel, p, c, d.x.data(), d.w.data(), d_gate_up.data(), d.offsets.data(), accumulating),
          Error);
    }
  }
  const Problem wgrad = problem_for(Family::grouped_gemm_wgrad, 5, 2, 23, 40, 24);
  const HostGroupedGemmSpec spec(Family::grouped_gemm_wgrad);
  Kernel& kernel = kernel_for(spec.render(wgrad, spec.heuristic(wgrad, backend().device()), backend().device()));
  const Data d = make_data(Family::grouped_gemm_wgrad, wgrad, 33);
  std::vector<float> dw(5 * d.k * d.n), gate_up(d.rows * 2 * d.n);
  EXPECT_THROW(launch_host_gemm_wgrad(kernel, wgrad, spec.heuristic(wgrad, backend().device()), d.x.data(), d.dy.data(),
                                      dw.data(), d.offsets.data(), {.swiglu_gate_up = gate_up.data()}),
               Error);
}

// stream: wgrad's output written with non-temporal stores agrees with the reference, on a 64-byte
// aligned output (the streamed path), one float off it (every tile falls back to plain stores),
// over one panel and over several (only the last streams), writing and accumulating.
TEST(HostGroupedGemmStream, StreamedWgradAgreesWithTheReferenceAlignedOrNot) {
  const Family kind = Family::grouped_gemm_wgrad;
  const HostGroupedGemmSpec spec(kind);
  const Problem p = problem_for(kind, 3, 2, 61, 48, 64);  // N 64: every row of dW starts a vector
  const Data d = make_data(kind, p, 31);
  const auto want = reference(kind, d)[0];
  Config streamed = spec.heuristic(p, backend().device());
  streamed.set("stream", 1);
  Config panels = streamed;
  panels.set("kc", 8);
  Kernel& kernel = kernel_for(spec.render(p, streamed, backend().device()));
  const size_t n = want.size();
  float* buffer = static_cast<float*>(std::aligned_alloc(64, sizeof(float) * (n + 16)));
  std::mt19937 rng(32);
  std::uniform_real_distribution<float> u(-1, 1);
  for (const Config& c : {streamed, panels})
    for (int64_t shift : {0, 1})
      for (bool into : {false, true}) {
        float* dw = buffer + shift;
        std::vector<float> start(n);
        for (size_t i = 0; i < n; ++i) dw[i] = start[i] = into ? u(rng) : std::nanf("");
        launch_host_gemm_wgrad(kernel, p, c, d.x.data(), d.dy.data(), dw, d.offsets.data(), {.accumulate = into});
        for (size_t i = 0; i < n; ++i) {
          const double expect = want[i] + (into ? start[i] : 0.0);
          ASSERT_NEAR(dw[i], expect, 1e-4 + 1e-4 * std::abs(expect))
              << c.to_string() << " shift " << shift << (into ? " +=" : "") << " element " << i;
        }
      }
  std::free(buffer);
}

// The space and the heuristic stream wgrad's output exactly where it outgrows the last-level cache;
// the other views never stream, and refuse a config that asks them to.
TEST(HostGroupedGemmStream, OnlyWgradOutputsPastTheLastLevelCacheStream) {
  DeviceDescription device;
  device.backend = "host";
  device.features = "avx2,fma,avx512f";
  device.compute_units = 2;
  device.l2_bytes = 260 << 20;
  const Problem qwen3(Family::grouped_gemm_wgrad, DType::f32, GemmShape{128, 8, 2048, 768}, 4096);  // 805 MB
  const Problem moe2b(Family::grouped_gemm_wgrad, DType::f32, GemmShape{92, 7, 1408, 320}, 4096);   // 166 MB
  EXPECT_TRUE(host_gemm_streams(qwen3, device));
  EXPECT_FALSE(host_gemm_streams(moe2b, device));
  const HostGroupedGemmSpec wgrad(Family::grouped_gemm_wgrad);
  EXPECT_EQ(wgrad.heuristic(qwen3, device).get_or("stream", 0), 1);
  EXPECT_FALSE(wgrad.heuristic(moe2b, device).has("stream"));  // its configs and stored decisions as before
  for (const Config& c : wgrad.space(qwen3, device)) EXPECT_EQ(c.get_or("stream", 0), 1) << c.to_string();
  for (Family other : {Family::grouped_gemm_fwd, Family::grouped_gemm_dgrad, Family::attention_grads}) {
    const HostGroupedGemmSpec spec(other);
    const Problem big(other, DType::f32, GemmShape{128, 8, 2048, 768}, 4096);
    EXPECT_FALSE(host_gemm_streams(big, device)) << to_string(other);
    Config c = spec.heuristic(big, device);
    EXPECT_FALSE(c.has("stream")) << to_string(other);
    c.set("stream", 1);
    EXPECT_NE(spec.prune_reason(big, c, device).find("stream"), std::string::npos) << to_string(other);
  }
}

// A small output over a long reduction (tiny-moe-r20's router weight gradient: 46 x 128 over 2048
// tokens) gets blocks small enough for every thread to have several items; an expert GEMM with
// plenty of blocks keeps the sweep's block sizes.
TEST(HostGroupedGemmHeuristic, GivesEveryThreadWorkAndKeepsLargeBlocksWhereThereIsWork) {
  DeviceDescription device;
  device.backend = "host";
  device.features = "avx2,fma";
  device.compute_units = 2;
  const HostGroupedGemmSpec wgrad(Family::grouped_gemm_wgrad);
  const Problem router(Family::grouped_gemm_wgrad, DType::f32, GemmShape{1, 1, 46, 128}, 2048);
  EXPECT_EQ(host_gemm_work_items(router, 6, 96, 256, 2), 2);  // the sweep's blocks: one item per thread, no slack
  const Config c = wgrad.heuristic(router, device);
  EXPECT_GE(host_gemm_work_items(router, c.get("mr"), c.get("mc"), c.get("nc"), 2), 8) << c.to_string();
  EXPECT_EQ(wgrad.prune_reason(router, c, device), "");

  const Problem experts(Family::grouped_gemm_wgrad, DType::f32, GemmShape{46, 4, 128, 128}, 2048);
  const Config e = wgrad.heuristic(experts, device);
  EXPECT_EQ(e.get("mc"), 16 * e.get("mr"));
  EXPECT_EQ(e.get("nc"), 16 * e.get("nr"));
}

// The heuristic's micro-tile covers the output with little padding: tiny-moe-r20's 64-wide experts
// and 128-wide model get 32-column tiles on AVX-512 (48 columns would leave a third of the 64-wide
// tiles' work as zeros), while products that 8 x 48 fills to within 8 % keep the sweeps' winner.
// A is packed as the sweeps of each ISA said: on AVX-512 only for wide models' wgrad, on AVX2 for
// fwd, the fused up-projection and wgrad; never for dgrad.
TEST(HostGroupedGemmHeuristic, PicksATileThatFitsTheOutput) {
  DeviceDescription device;
  device.backend = "host";
  device.features = "avx2,fma,avx512f";
  device.compute_units = 2;
  struct Case {
    Family family;
    GemmShape shape;
    int64_t nr;
  };
  const Case cases[] = {
      {Family::grouped_gemm_up_swiglu, {46, 4, 128, 64}, 32},    // tiny-moe-r20: F = 64
      {Family::grouped_gemm_fwd, {46, 4, 64, 128}, 32},          // its down projection: N = 128
      {Family::grouped_gemm_dgrad, {46, 4, 64, 128}, 32},        // dX (rows, 64)
      {Family::grouped_gemm_fwd, {128, 8, 2048, 768}, 48},       // Qwen3-30B-A3B: N = 768 = 16 x 48
      {Family::grouped_gemm_up_swiglu, {92, 7, 1408, 320}, 48},  // moe-2b: 320 fills 48-wide tiles to 95 %
  };
  for (const Case& c : cases) {
    const Problem p(c.family, DType::f32, c.shape, 2048);
    const Config config = HostGroupedGemmSpec(c.family).heuristic(p, device);
    EXPECT_EQ(config.get("nr"), c.nr) << p.to_string() << ": " << config.to_string();
    EXPECT_GE(host_gemm_tile_use(p, config.get("mr"), config.get("nr")), 0.9) << p.to_string();
    EXPECT_EQ(HostGroupedGemmSpec(c.family).prune_reason(p, config, device), "");
  }
  auto pack = [&](Family f, GemmShape g) {
    return HostGroupedGemmSpec(f).heuristic(Problem(f, DType::f32, g, 2048), device).get("pack");
  };
  EXPECT_EQ(pack(Family::grouped_gemm_fwd, {46, 4, 128, 64}), 0);
  EXPECT_EQ(pack(Family::grouped_gemm_fwd, {128, 8, 2048, 768}), 0);
  EXPECT_EQ(pack(Family::grouped_gemm_wgrad, {128, 8, 2048, 768}), 1);
  EXPECT_EQ(pack(Family::grouped_gemm_wgrad, {46, 4, 128, 64}), 0);
  EXPECT_EQ(pack(Family::grouped_gemm_dgrad, {128, 8, 2048, 768}), 0);
  // AVX2's 16-wide tile divides both: no change there; A packed but for dgrad.
  device.features = "avx2,fma";
  const Problem tiny(Family::grouped_gemm_up_swiglu, DType::f32, GemmShape{46, 4, 128, 64}, 2048);
  EXPECT_EQ(HostGroupedGemmSpec(tiny.family).heuristic(tiny, device).get("nr"), 16);
  EXPECT_EQ(pack(Family::grouped_gemm_fwd, {46, 4, 128, 64}), 1);
  EXPECT_EQ(pack(Family::grouped_gemm_dgrad, {46, 4, 128, 64}), 0);
}

INSTANTIATE_TEST_SUITE_P(Families, HostGroupedGemm,
                         ::testing::Values(Family::grouped_gemm_fwd, Family::grouped_gemm_up_swiglu,
                                           Family::grouped_gemm_dgrad, Family::grouped_gemm_wgrad),
                         [](const auto& param_info) { return std::string(to_string(param_info.param)); });

// Causal attention's products: G groups of S query rows over S keys, head width hd. The fwd and
// wgrad views read A lower-triangular per group (zeros above the diagonal, as the softmax writes
// them) and must equal the full product; the dgrad view (scores) must be right on and below each
// group's diagonal. Small blocks (mc = mr, nc = nr, kc 16) put block edges on both sides of the
// diagonal, so skipped blocks, trimmed blocks and shortened reductions all occur; within a block,
// micro-tiles skip the zero half themselves (host::Causal), on operands in place and packed.
TEST(HostAttentionGemm, CausalViewsAgreeWithTheReferenceOnTheirLowerTriangle) {
  const int64_t G = 3, S = 101, hd = 19;
  for (Family kind : {Family::attention_scores, Family::attention_values, Family::attention_grads}) {
    const HostGroupedGemmSpec spec(kind);
    const Problem p(kind, DType::f32, GemmShape{G, 1, S, hd}, G * S);
    Data d = make_data(gemm_view(kind), Problem(gemm_view(kind), DType::f32, p.shape, p.tokens), 23);
    d.problem = p;
    for (int64_t e = 0; e <= G; ++e) d.offsets[e] = e * S;
    for (int64_t r = 0; r < G * S; ++r)  // x (rows, S): zero above each group's diagonal
      for (int64_t j = r % S + 1; j < S; ++j) d.x[r * S + j] = 0.0f;
    const auto want = reference(gemm_view(kind), d);
    const Config heuristic = spec.heuristic(p, backend().device());
    Config small = heuristic;
    small.set("mc", heuristic.get("mr"));
    small.set("nc", heuristic.get("nr"));
    small.set("kc", 16);
    // Packed operands too: the micro-tiles' causal spans index the packed slivers.
    Config packed = small, packed_wide = heuristic;
    packed.set("pack", 1);
    packed_wide.set("pack", 1);
    packed_wide.set("mc", 4 * heuristic.get("mr"));
    packed_wide.set("kc", 24);
    for (const Config& c : {heuristic, small, packed, packed_wide}) {
      ASSERT_EQ(spec.prune_reason(p, c, backend().device()), "") << c.to_string();
      auto got = run(kind, d, c);
      if (kind == Family::attention_scores)  // above the diagonal: unspecified
        for (int64_t r = 0; r < G * S; ++r)
          for (int64_t j = r % S + 1; j < S; ++j) got[0][r * S + j] = float(want[0][r * S + j]);
      expect_close(got, want, std::string(to_string(kind)) + " " + c.to_string());
    }
  }
}

// attention_scores' epilogues against a double reference: the causal ALiBi softmax of
// scale * q . k^T per group (rows whole, zeros above the diagonal), and its backward from
// d_probs = d_o . v^T and the forward's probabilities. Outputs are poisoned first; the small
// blocks (nc = nr) walk each row block's columns in several panels before the epilogue runs.
TEST(HostAttentionGemm, ScoresEpilogueIsTheCausalSoftmaxAndItsBackward) {
  const int64_t G = 4, S = 75, hd = 19, heads = 2;
  const float scale = 0.3f;
  const HostGroupedGemmSpec spec(Family::attention_scores);
  const Problem p(Family::attention_scores, DType::f32, GemmShape{G, 1, S, hd}, G * S);
  std::mt19937 rng(31);
  const std::vector<float> q = random_floats(G * S * hd, rng), k = random_floats(G * S * hd, rng);
  std::vector<int64_t> offsets;
  for (int64_t g = 0; g <= G; ++g) offsets.push_back(g * S);
  for (int64_t alibi_heads : {heads, int64_t(0)}) {
    std::vector<double> probs(G * S * S, 0.0), d_scores(G * S * S, 0.0);
    for (int64_t r = 0; r < G * S; ++r) {  // r = g * S + t; k doubles as v, q as d_o
      const int64_t g = r / S, t = r % S;
      const double slope = alibi_heads ? std::pow(2.0, -8.0 * double(g % heads + 1) / double(heads)) : 0.0;
      std::vector<double> dot(t + 1);
      double mx = -1e300, sum = 0, pd = 0;
      for (int64_t s = 0; s <= t; ++s) {
        for (int64_t j = 0; j < hd; ++j) dot[s] += double(q[r * hd + j]) * k[(g * S + s) * hd + j];
        mx = std::max(mx, scale * dot[s] - slope * double(t - s));
      }
      for (int64_t s = 0; s <= t; ++s) sum += probs[r * S + s] = std::exp(scale * dot[s] - slope * double(t - s) - mx);
      for (int64_t s = 0; s <= t; ++s) pd += (probs[r * S + s] /= sum) * dot[s];
      for (int64_t s = 0; s <= t; ++s) d_scores[r * S + s] = scale * probs[r * S + s] * (dot[s] - pd);
    }
    const Config heuristic = spec.heuristic(p, backend().device());
    Config small = heuristic;
    small.set("mc", heuristic.get("mr"));
    small.set("nc", heuristic.get("nr"));
    small.set("kc", 8);
    for (const Config& c : {heuristic, small}) {
      Kernel& kernel = kernel_for(spec.render(p, c, backend().device()));
      const std::string what = "alibi_heads " + std::to_string(alibi_heads) + " " + c.to_string();
      std::vector<float> att(G * S * S, std::nanf("")), d_att(G * S * S, std::nanf(""));
      launch_host_gemm_dgrad(kernel, p, c, q.data(), k.data(), att.data(), offsets.data(),
                             {.scores = {HostScoresEpilogue::Mode::softmax, scale, alibi_heads, nullptr}});
      expect_close({att}, {probs}, "softmax " + what);
      launch_host_gemm_dgrad(kernel, p, c, q.data(), k.data(), d_att.data(), offsets.data(),
                             {.scores = {HostScoresEpilogue::Mode::softmax_bwd, scale, 0, att.data()}});
      expect_close({d_att}, {d_scores}, "softmax_bwd " + what);
    }
  }
}

TEST(HostGroupedGemmSpec, PrunesWithReasons) {
  const HostGroupedGemmSpec spec(Family::grouped_gemm_fwd);
  DeviceDescription avx2_only;
  avx2_only.backend = "host";
  avx2_only.features = "avx,avx2,fma";
  avx2_only.compute_units = 4;
  Problem p = problem_for(Family::grouped_gemm_fwd, 8, 2, 100, 64, 64);
  const Config avx512{{"isa", 2},  {"mr", 6},  {"nr", 32},  {"pack", 1},
                      {"kc", 256}, {"mc", 96}, {"nc", 512}, {"threads", 4}};
  EXPECT_EQ(spec.prune_reason(p, avx512, avx2_only), "isa 2 needs AVX-512F");
  for (const auto& c : spec.space(p, avx2_only)) EXPECT_EQ(c.get("isa"), 1) << c.to_string();
  const Config too_big{{"isa", 1},  {"mr", 8},  {"nr", 16},  {"pack", 1},
                       {"kc", 256}, {"mc", 96}, {"nc", 512}, {"threads", 4}};
  EXPECT_NE(spec.prune_reason(p, too_big, avx2_only).find("vector registers"), std::string::npos);
  Config many_threads = spec.heuristic(p, avx2_only);
  many_threads.set("threads", 5);
  EXPECT_NE(spec.prune_reason(p, many_threads, avx2_only).find("hardware threads"), std::string::npos);
  p.dtype = DType::bf16;
  EXPECT_NE(spec.prune_reason(p, spec.heuristic(p, avx2_only), avx2_only).find("f32 only"), std::string::npos);
  EXPECT_FALSE(spec.supports_backend("cuda"));
  EXPECT_TRUE(spec.supports_backend("host"));
}

TEST(HostGroupedGemmSpec, BlocksAndThreadsShareOneBinary) {
  const HostGroupedGemmSpec spec(Family::grouped_gemm_fwd);
  const Problem p = problem_for(Family::grouped_gemm_fwd, 8, 2, 100, 64, 64);
  Config a = spec.heuristic(p, backend().device()), b = a;
  b.set("kc", 128);
  b.set("threads", 1);
  const Source sa = spec.render(p, a, backend().device()), sb = spec.render(p, b, backend().device());
  EXPECT_EQ(sa.code, sb.code);
  EXPECT_EQ(sa.config, sb.config);
  EXPECT_EQ(sa.config.find("kc"), std::string::npos) << sa.config;
}

}  // namespace
