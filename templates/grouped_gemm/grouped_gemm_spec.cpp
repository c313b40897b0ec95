#include "grouped_gemm/grouped_gemm_spec.hpp"

#include <algorithm>
#include <tuple>

#include "moejit/error.hpp"

namespace moejit {
namespace {

bool is_tc90(const Config& c) {
  return c.get("tc") == 90;
}

// "sm_90a" -> 90; 0 when the name is not an sm_ arch.
int arch_number(const std::string& arch) {
  if (arch.rfind("sm_", 0) != 0) return 0;
  return std::atoi(arch.c_str() + 3);
}

const char* out_type(DType dtype) {
  return dtype == DType::bf16 ? "moejit::bf16" : "float";
}

std::string need(bool ok, const std::string& why) {
  return ok ? std::string() : why;
}

}  // namespace

Family GroupedGemmSpec::family_of(int op) {
  switch (op) {
    case gg::kFwd:
      return Family::grouped_gemm_fwd;
    case gg::kUpSwiglu:
      return Family::grouped_gemm_up_swiglu;
    case gg::kDgrad:
      return Family::grouped_gemm_dgrad;
    case gg::kWgrad:
      return Family::grouped_gemm_wgrad;
  }
  throw Error("unknown grouped GEMM op " + std::to_string(op));
}

int GroupedGemmSpec::op_of(Family family) {
  for (int op : {gg::kFwd, gg::kUpSwiglu, gg::kDgrad, gg::kWgrad})
    if (family_of(op) == family) return op;
  throw Error(std::string(to_string(family)) + " is not a grouped GEMM family");
}

int GroupedGemmSpec::threads(const Config& c) {
  return is_tc90(c) ? static_cast<int>(128 * (c.get("bm") / 64 + 1)) : static_cast<int>(32 * c.get("w"));
}

size_t GroupedGemmSpec::shared_bytes(int, const Config& c) {
  const int64_t bm = c.get("bm"), bn = c.get("bn"), s = c.get("s");
  if (is_tc90(c)) return static_cast<size_t>(s * (bm + bn) * 64 * 2 + 2 * s * 8 + 1024);
  return static_cast<size_t>(s * (bm + bn) * c.get("bk") * 2);
}

// The spaces stay small on purpose: the test suite compiles every config of every family.
std::vector<Config> GroupedGemmSpec::space(const Problem&, const DeviceDescription& device) const {
  struct Tc80 {
    int64_t bm, bn, bk, s;
  };
  std::vector<Config> configs;
  for (const Tc80& t : {Tc80{128, 128, 32, 4}, Tc80{128, 64, 32, 4}, Tc80{64, 128, 32, 4}, Tc80{64, 64, 32, 4},
                        Tc80{128, 128, 64, 3}, Tc80{64, 64, 64, 3}}) {
    const int64_t w = t.bm * t.bn >= 128 * 128 ? 8 : 4;
    configs.push_back(Config{{"tc", 80}, {"bm", t.bm}, {"bn", t.bn}, {"bk", t.bk}, {"w", w}, {"s", t.s}});
  }
  if (device.arch == "sm_90a")
    for (auto [bm, bn, s] : {std::tuple<int64_t, int64_t, int64_t>{128, 128, 4},
                             {128, 128, 6},
                             {128, 256, 4},
                             {64, 128, 4},
                             {64, 128, 6},
                             {64, 256, 4}})
      configs.push_back(Config{{"tc", 90}, {"bm", bm}, {"bn", bn}, {"s", s}});
  return configs;
}

std::string GroupedGemmSpec::prune_reason(const Problem& problem, const Config& c,
                                          const DeviceDescription& device) const {
  const GemmShape& g = problem.gemm();
  const int64_t k = g.k, n = g.n, bm = c.get("bm"), bn = c.get("bn");
  if (g.experts <= 0) return "experts must be positive";
  if (k <= 0 || n <= 0) return "K and N must be positive";
  if (k % 8 || n % 8)
    return "K " + std::to_string(k) + " and N " + std::to_string(n) +
           " must be multiples of 8 (16-byte rows for cp.async and TMA); pad the weights";
  if (problem.rows() >= (int64_t{1} << 31) || g.experts * k * n * 2 >= (int64_t{1} << 40))
    return "problem too large for 32-bit tile coordinates";
  if (problem.dtype != DType::bf16 && problem.dtype != DType::f32) return "output dtype must be bf16 or f32";
  const int arch = arch_number(device.arch);
  if (std::string why = need(arch >= 80, "needs sm_80 or newer, device is " + device.arch); !why.empty()) return why;
  const int64_t smem = static_cast<int64_t>(shared_bytes(op_, c));
  if (smem > device.shared_per_block_optin)
    return "shared memory " + std::to_string(smem) + " B > " + std::to_string(device.shared_per_block_optin) +
           " B opt-in limit";
  if (is_tc90(c)) {
    if (device.arch != "sm_90a") return "tc90 (wgmma + TMA) needs sm_90a, device is " + device.arch;
    if (bm != 64 && bm != 128) return "tc90 bm must be 64 or 128 (64 rows per consumer warpgroup)";
    if (bn != 64 && bn != 128 && bn != 256) return "tc90 bn must be 64, 128 or 256";
    if (op_ == gg::kUpSwiglu && bn < 128) return "up_swiglu on tc90 needs bn >= 128 (64-column boxes per half)";
    return {};
  }
  const int64_t bk = c.get("bk"), w = c.get("w"), threads = 32 * w;
  if (w != 4 && w != 8) return "w must be 4 or 8 warps";
  const int64_t warps_n = w / 2, warp_m = bm / 2, warp_n = bn / warps_n;
  if (warp_m % 16 || warp_n % 16) return "warp tile must be a multiple of 16 x 16";
  if (op_ == gg::kUpSwiglu && warp_n % 32) return "up_swiglu needs a warp tile >= 32 columns wide";
  if ((bm * bk / 8) % threads || (bn * bk / 8) % threads) return "tile chunks do not divide among the threads";
  return {};
}

Config GroupedGemmSpec::tc90_heuristic() {
  return Config{{"tc", 90}, {"bm", 128}, {"bn", 128}, {"s", 4}};
}

Config GroupedGemmSpec::tc80_heuristic(const DeviceDescription& device) {
  // 64 KiB of stages fits every sm_8x; smaller parts (sm_86/89: 100 KiB per SM) still run one CTA.
  (void)device;
  return Config{{"tc", 80}, {"bm", 128}, {"bn", 128}, {"bk", 32}, {"w", 8}, {"s", 4}};
}

Config GroupedGemmSpec::heuristic(const Problem&, const DeviceDescription& device) const {
  return device.arch == "sm_90a" ? tc90_heuristic() : tc80_heuristic(device);
}

std::string GroupedGemmSpec::entry(int op, const Problem& problem, const Config& c) {
  const std::string head = "<" + std::to_string(op) + ", " + out_type(problem.dtype) + ", ";
  if (is_tc90(c))
    return "moejit::gg::grouped_gemm_sm90_kernel" + head + std::to_string(c.get("bn")) + ", " +
           std::to_string(c.get("s")) + ", " + std::to_string(c.get("bm") / 64) + ">";
  const int64_t w = c.get("w");
  return "moejit::gg::grouped_gemm_sm80_kernel" + head + std::to_string(c.get("bm")) + ", " +
         std::to_string(c.get("bn")) + ", " + std::to_string(c.get("bk")) + ", 2, " + std::to_string(w / 2) + ", " +
         std::to_string(c.get("s")) + ">";
}

Source GroupedGemmSpec::render(const Problem& problem, const Config& config, const DeviceDescription& device) const {
  if (std::string why = prune_reason(problem, config, device); !why.empty())
    throw Error("config " + config.to_string() + " cannot run " + problem.to_string() + ": " + why);
  Source s;
  s.family = to_string(family());
  s.dtype = to_string(problem.dtype);
  s.shape = "any";  // E, K, N and the row offsets are kernel arguments
  s.config = config.to_string();
  s.file_name = s.stem() + ".cu";
  s.code = s.banner() + "#include \"grouped_gemm/grouped_gemm_" + (is_tc90(config) ? "sm90" : "sm80") + ".cuh\"\n";
  s.entries = {entry(op_, problem, config)};
  return s;
}

LaunchDims GroupedGemmSpec::launch_dims(int op, const Problem& problem, const Config& c,
                                        const DeviceDescription& device) {
  const GemmShape& g = problem.gemm();
  const int64_t bm = c.get("bm"), bn = c.get("bn"), e = g.experts;
  const gg::Dims dims{g.k, g.n, static_cast<int>(e)};
  const gg::Tiling t = gg::make_tiling(op, dims, static_cast<int>(bm), static_cast<int>(bn), 0);
  // An upper bound of the tile count that needs no offsets: each expert adds at most one partial tile.
  const int64_t max_tiles =
      op == gg::kWgrad ? e * gg::expert_tiles(t, 0) : (gg::ceil_div(problem.rows(), bm) + e) * gg::tiles_n(t);
  const size_t smem = shared_bytes(op, c);
  const int64_t per_sm_smem = smem ? std::max<int64_t>(1, device.shared_per_sm / static_cast<int64_t>(smem)) : 1;
  const int64_t per_sm = is_tc90(c) ? 1 : std::min<int64_t>(per_sm_smem, 2048 / threads(c));
  LaunchDims d;
  d.grid[0] = static_cast<unsigned>(std::clamp<int64_t>(max_tiles, 1, std::max(1, device.compute_units) * per_sm));
  d.block[0] = static_cast<unsigned>(threads(c));
  d.shared_bytes = smem;
  return d;
}

}  // namespace moejit
