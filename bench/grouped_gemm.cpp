// bench/grouped_gemm: TFLOP/s of moejit's grouped GEMMs (fwd, up_swiglu, dgrad, wgrad) on the MoE
// shapes of shared/reference/moe-shapes.md, against cuBLASLt in the same run on the same GPU:
//   dense      one cuBLASLt GEMM with the same total FLOPs (rows x K x N): the roofline to chase;
//   per_expert cuBLASLt called once per non-empty expert (layouts and algorithms prepared
//              outside the timed region: the baseline's best case).
// moejit runs its tc90 (wgmma + TMA, sm_90a) and tc80 (mma.sync) heuristics and the best config of
// its space. Writes $MOEJIT_BENCH_OUT/grouped_gemm.json and a table on stdout.
// Usage: grouped_gemm [tokens ...]   (default 4096; rows = tokens * top_k)
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <random>

#include "bench_util.hpp"
#include "binary_cache.hpp"
#include "compile_pool.hpp"
#include "cuda_backend.hpp"
#include "cuda_driver.hpp"
#include "files.hpp"
#include "grouped_gemm/grouped_gemm_spec.hpp"
#include "lt_matmul.hpp"
#include "moejit/error.hpp"

namespace moejit {
namespace {

struct Model {
  const char* name;
  int64_t d_model, d_expert, experts, top_k;
};
const Model kModels[] = {{"mixtral_8x7b", 4096, 14336, 8, 2}, {"deepseek_moe_16b", 2048, 1408, 64, 6},
                         {"olmoe_1b_7b", 2048, 1024, 64, 8},  {"qwen3_30b_a3b", 2048, 768, 128, 8},
                         {"paper_moe_2b", 1408, 320, 92, 7},  {"paper_moe_7b", 2048, 512, 78, 6}};

// Row-major C (m x n) = A (m x k) . B (k x n) on cuBLASLt (jit/lt_matmul.hpp), bf16 in and out, fp32
// accumulate, with cuBLASLt's first-ranked algorithm. a_transposed: A is stored (k x m) (wgrad: X^T);
// b_transposed: B is stored (n x k) (dgrad: W_e^T).
class LtGemm {
 public:
  LtGemm(int64_t m, int64_t n, int64_t k, bool a_transposed, bool b_transposed, void* workspace, size_t ws_bytes)
      : op_(gemm(m, n, k, a_transposed, b_transposed), DType::bf16, DType::bf16, ws_bytes),
        algo_(op_.candidates(1).front()),
        workspace_(workspace) {}
  void run(const void* a, const void* b, void* c, CUstream stream) const {
    op_.run(a, b, c, algo_, workspace_, stream);
  }

 private:
  static RowMajorGemm gemm(int64_t m, int64_t n, int64_t k, bool a_transposed, bool b_transposed) {
    RowMajorGemm g{m, n, k};
    g.a_transposed = a_transposed, g.b_transposed = b_transposed;
    return g;
  }
  LtMatmul op_;
  LtAlgo algo_;
  void* workspace_;
};

// Expert loads: multinomial over experts with a mild skew (some experts empty at small counts).
std::vector<int> route(int64_t rows, int64_t experts, std::mt19937& rng) {
  std::vector<double> weight(experts);
  std::gamma_distribution<double> g(2.0, 1.0);
  for (auto& w : weight) w = g(rng);
  std::discrete_distribution<int64_t> pick(weight.begin(), weight.end());
  std::vector<int> lens(experts, 0);
  for (int64_t r = 0; r < rows; ++r) lens[pick(rng)]++;
  return lens;
}

// Median of 7 timed calls after a warm-up; L2 is flushed (a write twice its size) before each
// timed call, outside the timed region, so every run reads its weights from HBM.
double median_ms(CudaBackend& be, DeviceBuffer& flush, const std::function<void()>& fn) {
  fn();  // warm-up (and first-launch setup)
  be.synchronize();
  std::vector<double> t;
  for (int i = 0; i < 7; ++i) {
    flush.fill(static_cast<uint8_t>(i));
    t.push_back(be.time_ms(fn));
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

const char* kOpNames[] = {"fwd", "up_swiglu", "dgrad", "wgrad"};

// torch._grouped_mm on the same cases, through bench/grouped_gemm_torch.py (python3 with torch on
// the GPU machine); records "unavailable" with the reason when it cannot run.
void add_torch_baseline(nlohmann::json& results) {
  nlohmann::json cases = nlohmann::json::array();
  for (const auto& r : results)
    cases.push_back({{"model", r["model"]},
                     {"tokens", r["tokens"]},
                     {"op", r["op"]},
                     {"k", r["k"]},
                     {"n", r["n"]},
                     {"lens", r["lens"]}});
  const char* dir = std::getenv("MOEJIT_BENCH_OUT");
  const std::string file = std::string(dir ? dir : "/tmp") + "/grouped_gemm_torch_cases.json";
  write_file_atomic(file, cases.dump());
  const std::string cmd = "python3 " MOEJIT_SOURCE_DIR "/bench/grouped_gemm_torch.py " + file + " 2>/dev/null";
  std::string text;
  if (FILE* pipe = popen(cmd.c_str(), "r")) {
    char buf[4096];
    size_t got;
    while ((got = std::fread(buf, 1, sizeof buf, pipe)) > 0) text.append(buf, got);
    pclose(pipe);
  }
  nlohmann::json torch = nlohmann::json::parse(text, nullptr, false);
  if (torch.is_discarded() || !torch.value("available", false)) {
    const std::string why = torch.is_discarded() ? "python3 or the script failed" : torch.value("why", "");
    std::printf("torch._grouped_mm: unavailable (%s)\n", why.c_str());
    for (auto& r : results) r["tflops"]["torch_grouped_mm"] = nullptr;
    return;
  }
  std::printf("\ntorch %s _grouped_mm:\n%-18s %6s %-9s %9s %9s %8s\n", torch.value("torch", "?").c_str(), "model",
              "tokens", "op", "best", "torch", "best/tc");
  for (auto& r : results)
    for (const auto& t : torch["results"])
      if (t["model"] == r["model"] && t["tokens"] == r["tokens"] && t["op"] == r["op"]) {
        const double theirs = t.value("tflops", 0.0), ours = r["tflops"]["moejit_best"].get<double>();
        r["tflops"]["torch_grouped_mm"] = theirs;
        if (t.contains("error")) r["torch_error"] = t["error"];
        r["ratio_best_vs_torch"] = theirs > 0 ? ours / theirs : 0.0;
        std::printf("%-18s %6lld %-9s %9.1f %9.1f %8.2f\n", r["model"].get<std::string>().c_str(),
                    static_cast<long long>(r["tokens"].get<int64_t>()), r["op"].get<std::string>().c_str(), ours,
                    theirs, theirs > 0 ? ours / theirs : 0.0);
      }
}

int run(const std::vector<int64_t>& token_counts) {
  CudaBackend be;
  const DeviceDescription& dev = be.device();
  std::printf("device: %s (%s, %d SMs)\n", dev.name.c_str(), dev.arch.c_str(), dev.compute_units);
  const size_t ws_bytes = 64 << 20;
  DeviceBuffer workspace(be, ws_bytes);
  DeviceBuffer flush(be, static_cast<size_t>(std::max<int64_t>(dev.l2_bytes, 8 << 20)) * 2);
  nlohmann::json results = nlohmann::json::array();
  std::mt19937 rng(5);
  ThreadPool pool;

  std::printf("%-18s %6s %-9s %9s %9s %9s %-28s %9s %9s %8s\n", "model", "tokens", "op", "tc90", "tc80", "best",
              "best config", "lt_dense", "lt_exprt", "best/dn");
  for (const Model& model : kModels)
    for (int64_t tokens : token_counts) {
      const int64_t rows = tokens * model.top_k, k = model.d_model, n = model.d_expert, e = model.experts;
      const std::vector<int> lens = route(rows, e, rng);
      std::vector<int> off{0};
      for (int l : lens) off.push_back(off.back() + l);
      // Random bf16 bits in a tame range, one 8 MiB pattern repeated; values do not change the timing.
      std::vector<uint16_t> host(1 << 22);
      for (auto& v : host) v = static_cast<uint16_t>((0x3c00 + rng() % 0x200) ^ (rng() & 1 ? 0x8000 : 0));
      auto upload = [&](int64_t count) {
        DeviceBuffer b(be, count * 2);
        for (int64_t done = 0; done < count; done += static_cast<int64_t>(host.size())) {
          const int64_t chunk = std::min<int64_t>(static_cast<int64_t>(host.size()), count - done);
          be.copy_to_device(static_cast<uint16_t*>(b.get()) + done, host.data(), chunk * 2);
        }
        return b;
      };
      DeviceBuffer x = upload(rows * k), dy = upload(rows * 2 * n), w = upload(e * k * 2 * n),
                   out(be, std::max(rows * std::max(k, n), e * k * n) * 4), gu(be, rows * 2 * n * 2),
                   d_off = DeviceBuffer::from(be, off);

      for (int op : {gg::kFwd, gg::kUpSwiglu, gg::kDgrad, gg::kWgrad}) {
        GroupedGemmSpec spec(GroupedGemmSpec::family_of(op));
        const Problem p(spec.family(), op == gg::kWgrad ? DType::f32 : DType::bf16, GemmShape{e, model.top_k, k, n},
                        tokens);
        const double flops = 2.0 * rows * k * n * (op == gg::kUpSwiglu ? 2 : 1);
        GroupedGemmArgs args;
        args.a = op == gg::kDgrad ? dy.get() : x.get();
        args.b = op == gg::kWgrad ? dy.get() : w.get();
        args.out = out.get(), args.out_gate_up = gu.get();
        args.offsets = static_cast<const int*>(d_off.get());

        // Compile the whole (pruned) space at once, then time every config.
        std::vector<Config> configs;
        for (const Config& c : spec.space(p, dev))
          if (spec.prune_reason(p, c, dev).empty()) configs.push_back(c);
        std::vector<Source> sources;
        for (const Config& c : configs) sources.push_back(spec.render(p, c, dev));
        auto futures = compile_all(pool, BinaryCache::global(), be.compiler(), sources);
        nlohmann::json per_config = nlohmann::json::object();
        double best_ms = 1e30, tc90_ms = 0, tc80_ms = 0;
        std::string best;
        const Config h90 = GroupedGemmSpec::tc90_heuristic(), h80 = GroupedGemmSpec::tc80_heuristic(dev);
        for (size_t i = 0; i < configs.size(); ++i) {
          auto kernel = be.load(futures[i].get(), sources[i].entries.front());
          const double ms = median_ms(be, flush, [&] { launch_grouped_gemm(*kernel, p, configs[i], dev, args); });
          per_config[configs[i].to_string()] = flops / ms / 1e9;
          if (ms < best_ms) best_ms = ms, best = configs[i].to_string();
          if (configs[i] == h90) tc90_ms = ms;
          if (configs[i] == h80) tc80_ms = ms;
        }

        // cuBLASLt baselines (bf16 out for all, wgrad included: same FLOPs, cheaper stores).
        double dense_ms = 0, expert_ms = 0;
        {
          const int64_t m_d = op == gg::kWgrad ? k : rows,
                        n_d = op == gg::kDgrad ? k : (op == gg::kUpSwiglu ? 2 * n : n),
                        k_d = op == gg::kWgrad ? rows : (op == gg::kDgrad ? n : k);
          LtGemm dense(m_d, n_d, k_d, op == gg::kWgrad, op == gg::kDgrad, workspace.get(), ws_bytes);
          dense_ms = median_ms(
              be, flush, [&] { dense.run(args.a, op == gg::kWgrad ? dy.get() : w.get(), out.get(), be.stream()); });
          std::vector<std::unique_ptr<LtGemm>> gemms(e);
          for (int64_t ex = 0; ex < e; ++ex)
            if (lens[ex] > 0)
              gemms[ex] =
                  std::make_unique<LtGemm>(op == gg::kWgrad ? k : lens[ex], n_d, op == gg::kWgrad ? lens[ex] : k_d,
                                           op == gg::kWgrad, op == gg::kDgrad, workspace.get(), ws_bytes);
          const int64_t a_cols = op == gg::kDgrad ? n : k, b_width = op == gg::kUpSwiglu ? 2 * n : n;
          expert_ms = median_ms(be, flush, [&] {
            for (int64_t ex = 0; ex < e; ++ex) {
              if (!gemms[ex]) continue;
              const auto* a = static_cast<const uint16_t*>(args.a) + static_cast<int64_t>(off[ex]) * a_cols;
              const auto* b = op == gg::kWgrad
                                  ? static_cast<const uint16_t*>(dy.get()) + static_cast<int64_t>(off[ex]) * n
                                  : static_cast<const uint16_t*>(w.get()) + ex * k * b_width;
              auto* c = static_cast<uint16_t*>(out.get()) +
                        (op == gg::kWgrad ? ex * k * n : static_cast<int64_t>(off[ex]) * n_d);
              gemms[ex]->run(a, b, c, be.stream());
            }
          });
        }
        auto tf = [&](double ms) { return ms > 0 ? flops / ms / 1e9 : 0.0; };
        std::printf("%-18s %6lld %-9s %9.1f %9.1f %9.1f %-28s %9.1f %9.1f %8.2f\n", model.name,
                    static_cast<long long>(tokens), kOpNames[op], tf(tc90_ms), tf(tc80_ms), tf(best_ms), best.c_str(),
                    tf(dense_ms), tf(expert_ms), dense_ms / best_ms);
        std::fflush(stdout);
        results.push_back({{"model", model.name},
                           {"tokens", tokens},
                           {"rows", rows},
                           {"op", kOpNames[op]},
                           {"k", k},
                           {"n", n},
                           {"experts", e},
                           {"lens", lens},
                           {"tflops",
                            {{"moejit_tc90_heuristic", tf(tc90_ms)},
                             {"moejit_tc80_heuristic", tf(tc80_ms)},
                             {"moejit_best", tf(best_ms)},
                             {"cublaslt_dense_same_flops", tf(dense_ms)},
                             {"cublaslt_per_expert", tf(expert_ms)}}},
                           {"best_config", best},
                           {"per_config_tflops", per_config},
                           {"ratio_best_vs_dense", dense_ms / best_ms},
                           {"ratio_best_vs_per_expert", expert_ms / best_ms}});
      }
    }
  add_torch_baseline(results);

  bench::save("grouped_gemm",
              {{"arch", dev.arch}, {"sms", dev.compute_units}, {"driver", dev.driver}, {"results", results}}, dev.name);
  return 0;
}

}  // namespace
}  // namespace moejit

int main(int argc, char** argv) {
  std::string why;
  if (!moejit::CudaDriver::available(&why)) {
    std::printf("grouped_gemm: skipped: no GPU (%s)\n", why.c_str());
    return 0;
  }
  std::vector<int64_t> tokens;
  for (int i = 1; i < argc; ++i) tokens.push_back(std::atoll(argv[i]));
  if (tokens.empty()) tokens = {4096};
  try {
    return moejit::run(tokens);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "grouped_gemm: %s\n", e.what());
    return 1;
  }
}
