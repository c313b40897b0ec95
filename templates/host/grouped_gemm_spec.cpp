#include "host/grouped_gemm_spec.hpp"

#include <algorithm>
#include <array>

#include "host/work_split.h"
#include "moejit/error.hpp"

namespace moejit {
namespace {

bool has_feature(const DeviceDescription& device, std::string_view feature) {
  return ("," + device.features + ",").find("," + std::string(feature) + ",") != std::string::npos;
}

int vector_width(int64_t isa) {
  return isa == 2 ? 16 : 8;
}
int vector_registers(int64_t isa) {
  return isa == 2 ? 32 : 16;
}

struct TileShape {
  int64_t mr, nr;
};
// Micro-tiles worth trying per ISA: accumulators + one B row + one broadcast fit the registers.
// In the heuristic's order of preference: the sweeps' winner on wide products first, then by
// FMAs per load (8 x 48: 24 FMAs per 8 broadcasts and 3 loads; 12 x 32: 24 per 14; 6 x 32: 12 per 8).
std::vector<TileShape> tiles_for(int64_t isa) {
  if (isa == 2) return {{8, 48}, {12, 32}, {6, 32}};
  return {{6, 16}, {4, 24}};
}

// The ISA's micro-tile for a problem: the sweeps' winner (the first of tiles_for) unless another
// tile wastes at least 8 % less of an average group's output on padding; among the others, the most
// preferred within 2 % of the least waste. 8 x 48 is about 5 % faster per useful FMA than 12 x 32
// (on moe-2b, where 12 x 32 covers 320 columns exactly and 8 x 48 wastes 5 %, 8 x 48 won the sweeps),
// but 48 columns cover a 64-wide expert output as 96 (tiny-moe-r20's experts: 12 x 32 ran 1.2-1.3x
// faster) and a 128-wide one as 144.
TileShape heuristic_tile(const Problem& problem, int64_t isa) {
  const std::vector<TileShape> tiles = tiles_for(isa);
  double best_use = 0;
  for (TileShape t : tiles) best_use = std::max(best_use, host_gemm_tile_use(problem, t.mr, t.nr));
  for (size_t i = 0; i < tiles.size(); ++i)
    if (host_gemm_tile_use(problem, tiles[i].mr, tiles[i].nr) >= best_use - (i == 0 ? 0.08 : 0.02)) return tiles[i];
  return tiles.front();
}

// Whether the heuristic packs A (the sweeps in bench/results: AVX2 on Zen 3, 2026-11-28-host-gemm-b-reuse;
// AVX-512 on Zen 5, 2026-12-07-host-zen5). dgrad (its B, W^T, is packed either way) and the causal
// views (packing would copy the masked half of the probabilities) read A in place on every ISA.
// AVX2: packed for fwd, the fused up-projection and wgrad, which won the wide models' sweeps there.
// AVX-512: in place, which won fwd and the up-projection on every shape swept (moe-2b, Qwen3,
// tiny-moe-r20, tiny-dense: 1.1-1.8x on the narrow ones, whose few NR-wide slivers do not repay
// the copy), except wgrad of the wide models (K >= 1024), where X^T's columns lie a 5.5-8 KiB row
// apart and packing won.
bool heuristic_pack(const Problem& problem, int64_t isa) {
  const HostGemmView view = host_gemm_view(problem.family);
  if (view.causal || view.gemm == Family::grouped_gemm_dgrad) return false;
  if (isa == 1) return true;
  return view.gemm == Family::grouped_gemm_wgrad && problem.gemm().k >= 1024;
}

std::vector<int64_t> available_isas(const DeviceDescription& device) {
  std::vector<int64_t> isas;
  if (has_feature(device, "avx2") && has_feature(device, "fma")) isas.push_back(1);
  if (has_feature(device, "avx512f")) isas.push_back(2);
  return isas;
}

Config make_config(int64_t isa, TileShape t, int64_t pack, int64_t kc, int64_t mc, int64_t nc, int64_t threads) {
  return Config{{"isa", isa}, {"mr", t.mr}, {"nr", t.nr}, {"pack", pack},
                {"kc", kc},   {"mc", mc},   {"nc", nc},   {"threads", threads}};
}

// The problem's configs carry "stream" only where the output is streamed (host_gemm_streams), so
// that every other problem's configs, and the decisions stored for them, stay as they were.
Config with_stream(Config config, const Problem& problem, const DeviceDescription& device) {
  if (host_gemm_streams(problem, device)) config.set("stream", 1);
  return config;
}

// The kernel template's arguments for each family (host::Family and CAUSAL in
// grouped_gemm_families.h).
std::string kernel_family(Family family) {
  const HostGemmView view = host_gemm_view(family);
  const char* name = view.gemm == Family::grouped_gemm_fwd         ? "fwd"
                     : view.gemm == Family::grouped_gemm_up_swiglu ? "swiglu"
                     : view.gemm == Family::grouped_gemm_dgrad     ? "dgrad"
                                                                   : "wgrad";
  return std::string(name) + (view.causal ? ", true" : ", false");
}

}  // namespace

HostGemmView host_gemm_view(Family family) {
  switch (family) {
    case Family::grouped_gemm_fwd:
    case Family::grouped_gemm_up_swiglu:
    case Family::grouped_gemm_dgrad:
    case Family::grouped_gemm_wgrad:
      return {family, false};
    case Family::attention_scores:
      return {Family::grouped_gemm_dgrad, true};
    case Family::attention_values:
      return {Family::grouped_gemm_fwd, true};
    case Family::attention_grads:
      return {Family::grouped_gemm_wgrad, true};
    default:
      throw Error(std::string(to_string(family)) + " is not a grouped GEMM family");
  }
}

HostGroupedGemmSpec::HostGroupedGemmSpec(Family family) : family_(family) {
  kernel_family(family);  // throws for a family that is not a grouped GEMM
}

std::string HostGroupedGemmSpec::compiled_config(const Config& config) {
  return Config{
      {"isa", config.get("isa")}, {"mr", config.get("mr")}, {"nr", config.get("nr")}, {"pack", config.get("pack")}}
      .to_string();
}

namespace {
// The one view that writes an output nothing reads soon: wgrad's dW (not causal: attention's dK and
// dV feed the next products at once).
bool writes_once(Family family) {
  const HostGemmView view = host_gemm_view(family);
  return !view.causal && view.gemm == Family::grouped_gemm_wgrad;
}
}  // namespace

bool host_gemm_streams(const Problem& problem, const DeviceDescription& device) {
  if (!writes_once(problem.family) || device.l2_bytes <= 0) return false;
  const GemmShape& g = problem.gemm();
  return g.experts * g.k * g.n * int64_t(sizeof(float)) > device.l2_bytes;
}

std::vector<Config> HostGroupedGemmSpec::space(const Problem& problem, const DeviceDescription& device) const {
  std::vector<int64_t> thread_counts{1};
  if (device.compute_units > 1) thread_counts.push_back(device.compute_units);
  std::vector<Config> configs;
  for (int64_t isa : available_isas(device))
    for (TileShape t : tiles_for(isa))
      for (int64_t pack : {0, 1})
        for (int64_t kc : {128, 256})
          for (int64_t mc : {8 * t.mr, 16 * t.mr})
            for (int64_t nc : {4 * t.nr, 16 * t.nr})
              for (int64_t threads : thread_counts)
                configs.push_back(with_stream(make_config(isa, t, pack, kc, mc, nc, threads), problem, device));
  return configs;
}

std::string HostGroupedGemmSpec::prune_reason(const Problem& problem, const Config& config,
                                              const DeviceDescription& device) const {
  if (problem.dtype != DType::f32) return "host grouped GEMM stores f32 only; use dtype f32";
  const GemmShape& g = problem.gemm();
  if (g.experts <= 0 || g.k <= 0 || g.n <= 0) return "needs E, K and N > 0";
  if (problem.tokens < 0 || g.top_k < 0) return "tokens and top_k must not be negative";
  const int64_t isa = config.get("isa"), mr = config.get("mr"), nr = config.get("nr"), pack = config.get("pack");
  if (isa == 1 && !(has_feature(device, "avx2") && has_feature(device, "fma"))) return "isa 1 needs AVX2 and FMA";
  if (isa == 2 && !has_feature(device, "avx512f")) return "isa 2 needs AVX-512F";
  if (isa != 1 && isa != 2) return "isa must be 1 (AVX2) or 2 (AVX-512)";
  if (pack != 0 && pack != 1) return "pack must be 0 or 1";
  if (mr < 1 || nr < 1 || nr % vector_width(isa) != 0)
    return "nr " + std::to_string(nr) + " must be a positive multiple of the vector width " +
           std::to_string(vector_width(isa));
  const int64_t registers = mr * (nr / vector_width(isa)) + nr / vector_width(isa) + 1;
  if (registers > vector_registers(isa))
    return "micro-tile " + std::to_string(mr) + "x" + std::to_string(nr) + " needs " + std::to_string(registers) +
           " vector registers, the ISA has " + std::to_string(vector_registers(isa));
  const int64_t kc = config.get("kc"), mc = config.get("mc"), nc = config.get("nc"), threads = config.get("threads");
  if (kc < 1 || mc < 1 || nc < 1) return "kc, mc and nc must be positive";
  if (mc % mr != 0) return "mc " + std::to_string(mc) + " % mr " + std::to_string(mr) + " != 0";
  if (nc % nr != 0) return "nc " + std::to_string(nc) + " % nr " + std::to_string(nr) + " != 0";
  if (threads < 1) return "threads must be at least 1";
  if (const int64_t stream = config.get_or("stream", 0); stream != 0) {
    if (stream != 1) return "stream must be 0 or 1";
    if (!writes_once(problem.family))
      return "stream: only the wgrad view (not causal) writes an output that nothing reads soon";
  }
  if (device.compute_units > 0 && threads > device.compute_units)
    return "threads " + std::to_string(threads) + " > the device's " + std::to_string(device.compute_units) +
           " hardware threads";
  return {};
}

HostGemmExtent host_gemm_extent(const Problem& problem) {
  const GemmShape& g = problem.gemm();
  const HostGemmView view = host_gemm_view(problem.family);
  if (view.gemm == Family::grouped_gemm_wgrad) return {g.k, g.n};
  const int64_t rows = std::max<int64_t>(1, (problem.rows() + g.experts - 1) / g.experts);
  return {rows, view.gemm == Family::grouped_gemm_dgrad ? g.k : g.n};
}

int64_t host_gemm_work_items(const Problem& problem, int64_t mr, int64_t mc, int64_t nc, int64_t threads) {
  const GemmShape& g = problem.gemm();
  const HostGemmView view = host_gemm_view(problem.family);
  const HostGemmExtent extent = host_gemm_extent(problem);
  const int64_t cols = view.gemm == Family::grouped_gemm_dgrad && view.causal ? 1 : host::ceil_div(extent.cols, nc);
  const host::RowSplit split = host::split_rows(extent.rows * g.experts, g.experts, cols, mr, mc, threads);
  return g.experts * split.items(extent.rows) * cols;
}

double host_gemm_tile_use(const Problem& problem, int64_t mr, int64_t nr) {
  const HostGemmExtent e = host_gemm_extent(problem);
  return double(e.rows) / double(host::round_up(e.rows, mr)) * double(e.cols) / double(host::round_up(e.cols, nr));
}

Config HostGroupedGemmSpec::heuristic(const Problem& problem, const DeviceDescription& device) const {
  // The widest ISA; the tile that fits the output (heuristic_tile), A packed where that paid
  // (heuristic_pack), the blocks that won the sweeps in bench/results/host_grouped_gemm.md.
  // Runs any problem.
  const auto isas = available_isas(device);
  const int64_t isa = isas.empty() ? 1 : isas.back();
  const TileShape t = heuristic_tile(problem, isa);
  const int64_t threads = std::max(1, device.compute_units);
  int64_t mc = 16 * t.mr, nc = 16 * t.nr;
  // Small outputs over a long reduction (a router's or an LM head's weight gradient: 46 x 128 over
  // thousands of tokens) are one or two blocks at those sizes, so most threads would wait: halve
  // the column, then the row blocks until every thread has a few items.
  while (host_gemm_work_items(problem, t.mr, mc, nc, threads) < host::kItemsPerThread * threads) {
    if (nc > t.nr)
      nc = std::max(t.nr, nc / 2 / t.nr * t.nr);
    else if (mc > t.mr)
      mc = std::max(t.mr, mc / 2 / t.mr * t.mr);
    else
      break;
  }
  return with_stream(make_config(isa, t, heuristic_pack(problem, isa) ? 1 : 0, 256, mc, nc, threads), problem, device);
}

Source HostGroupedGemmSpec::render(const Problem& problem, const Config& config,
                                   const DeviceDescription& device) const {
  if (std::string why = prune_reason(problem, config, device); !why.empty())
    throw Error("config " + config.to_string() + " cannot run " + problem.to_string() + ": " + why);
  const int64_t isa = config.get("isa");
  Source s;
  s.family = to_string(family_);
  s.dtype = to_string(problem.dtype);
  s.shape = "any";  // E, K, N and the row offsets are launch arguments
  s.config = compiled_config(config);
  s.file_name = s.stem() + ".cpp";
  s.code = s.banner() +
           "#include \"host/grouped_gemm_families.h\"\n\n"
           "extern \"C\" void " +
           kEntry +
           "(void** args, const moejit::HostLaunch* launch) {\n"
           "  using Tile = moejit::host::Tile</*vw=*/" +
           std::to_string(vector_width(isa)) + ", /*mr=*/" + std::to_string(config.get("mr")) + ", /*nr=*/" +
           std::to_string(config.get("nr")) + ", /*pack=*/" + (config.get("pack") ? "true" : "false") + ">;\n" +
           "  moejit::host::grouped_gemm_entry<Tile, moejit::host::Family::" + kernel_family(family_) +
           ">(args, launch);\n}\n";
  s.entries = {kEntry};
  if (isa == 1) s.options = {"-mno-avx512f"};  // an AVX2 kernel must not pick up AVX-512 from the host features
  return s;
}

namespace {

LaunchDims host_dims(const Config& config) {
  LaunchDims dims;
  dims.grid[0] = static_cast<unsigned>(config.get("threads"));  // host: worker threads
  return dims;
}

// The options' contract (HostGemmOptions), checked before anything runs.
void check_options(const Problem& problem, const HostGemmOptions& o) {
  const HostGemmView view = host_gemm_view(problem.family);
  const std::string family(to_string(problem.family));
  if (o.accumulate && problem.family == Family::attention_scores)
    throw Error("attention_scores rewrites its rows (the softmax epilogue); it cannot accumulate");
  if (o.swiglu_gate_up &&
      (view.causal || view.gemm == Family::grouped_gemm_wgrad || view.gemm == Family::grouped_gemm_up_swiglu))
    throw Error("the SwiGLU backward epilogue needs the fwd or dgrad view of a grouped GEMM, not " + family);
  if (o.swiglu_gate_up && o.accumulate)
    throw Error("the SwiGLU backward epilogue writes d_gate_up; it cannot accumulate");
  if (o.scores.mode != HostScoresEpilogue::Mode::none && problem.family != Family::attention_scores)
    throw Error("a softmax epilogue needs the attention_scores family, not " + family);
  if (o.scores.mode == HostScoresEpilogue::Mode::softmax_bwd && !o.scores.probs)
    throw Error("the softmax backward epilogue needs the forward's probabilities");
  if (o.heads.heads < 1 || problem.gemm().experts % o.heads.heads != 0)
    throw Error("head layout: " + std::to_string(o.heads.heads) + " heads do not divide " +
                std::to_string(problem.gemm().experts) + " groups");
}

void launch_gemm(Kernel& kernel, const Problem& problem, const Config& config, std::vector<const void*> pointers,
                 const int64_t* offsets, HostGemmOptions o = {}) {
  check_options(problem, o);
  const GemmShape& g = problem.gemm();
  int64_t e = g.experts, k = g.k, n = g.n, kc = config.get("kc"), mc = config.get("mc"), nc = config.get("nc");
  int64_t into = (o.accumulate ? 1 : 0) | (config.get_or("stream", 0) ? 2 : 0);  // the output mode
  std::vector<void*> args;
  for (auto& p : pointers) args.push_back(&p);
  args.insert(args.end(), {&offsets, &e, &k, &n, &kc, &mc, &nc, &into, &o.swiglu_gate_up});
  if (host_gemm_view(problem.family).causal)  // its HeadLayout: heads, ld0, ld1
    args.insert(args.end(), {&o.heads.heads, &o.heads.ld0, &o.heads.ld1});
  if (problem.family == Family::attention_scores)  // its ScoresEpilogue: mode, scale, alibi_heads, probs
    args.insert(args.end(), {&o.scores.mode, &o.scores.scale, &o.scores.alibi_heads, &o.scores.probs});
  kernel.launch(host_dims(config), args.data());
}

}  // namespace

void launch_host_gemm_fwd(Kernel& kernel, const Problem& problem, const Config& config, const float* x, const float* w,
                          float* y, const int64_t* offsets, const HostGemmOptions& options) {
  launch_gemm(kernel, problem, config, {x, w, y}, offsets, options);
}
void launch_host_gemm_swiglu(Kernel& kernel, const Problem& problem, const Config& config, const float* x,
                             const float* w_gate_up, float* gate_up, float* h, const int64_t* offsets) {
  launch_gemm(kernel, problem, config, {x, w_gate_up, gate_up, h}, offsets);
}
void launch_host_gemm_dgrad(Kernel& kernel, const Problem& problem, const Config& config, const float* dy,
                            const float* w, float* dx, const int64_t* offsets, const HostGemmOptions& options) {
  launch_gemm(kernel, problem, config, {dy, w, dx}, offsets, options);
}
void launch_host_gemm_wgrad(Kernel& kernel, const Problem& problem, const Config& config, const float* x,
                            const float* dy, float* dw, const int64_t* offsets, const HostGemmOptions& options) {
  launch_gemm(kernel, problem, config, {x, dy, dw}, offsets, options);
}

}  // namespace moejit
