// Launching grouped GEMM kernels: kernel parameters and, for the Hopper path, TMA tensor maps.
#include <cstring>
#include <string>

#include "grouped_gemm/grouped_gemm_spec.hpp"
#include "moejit/error.hpp"
#include "moejit/tma.hpp"

namespace moejit {
namespace {

// Rows x cols row-major activations (X or dY) as a 2D map with box {64, box_rows}.
TmaDescriptor activation_map(const void* base, int64_t rows, int64_t cols, uint32_t box_rows) {
  const uint64_t dims[2] = {static_cast<uint64_t>(cols), static_cast<uint64_t>(std::max<int64_t>(rows, 1))};
  const uint64_t strides[1] = {static_cast<uint64_t>(cols) * 2};
  const uint32_t box[2] = {gg::kTmaBoxCols, box_rows};
  return encode_tma_bf16(base, 2, dims, strides, box);
}

// Weights (E, rows, cols) as a 3D map {cols, rows, E}: a box never reads into the next expert.
TmaDescriptor weight_map(const void* base, int64_t e, int64_t rows, int64_t cols, uint32_t box_rows) {
  const uint64_t dims[3] = {static_cast<uint64_t>(cols), static_cast<uint64_t>(rows), static_cast<uint64_t>(e)};
  const uint64_t strides[2] = {static_cast<uint64_t>(cols) * 2, static_cast<uint64_t>(rows * cols) * 2};
  const uint32_t box[3] = {gg::kTmaBoxCols, box_rows, 1};
  return encode_tma_bf16(base, 3, dims, strides, box);
}

}  // namespace

void launch_grouped_gemm(Kernel& kernel, const Problem& problem, const Config& config, const DeviceDescription& device,
                         const GroupedGemmArgs& args) {
  const GemmShape& g = problem.gemm();
  const int64_t m = problem.rows(), k = g.k, n = g.n, e = g.experts;
  const int op = GroupedGemmSpec::op_of(problem.family);
  if (std::string why = GroupedGemmSpec(problem.family).prune_reason(problem, config, device); !why.empty())
    throw Error("config " + config.to_string() + " cannot run " + problem.to_string() + ": " + why);
  if (!args.offsets || !args.out || (m > 0 && (!args.a || !args.b)))
    throw Error(problem.to_string() + ": a, b, out and offsets must be device pointers (got a null one)");
  if (m == 0 && op != gg::kWgrad) return;  // no rows: nothing to compute
  gg::Params p;
  p.in.a = static_cast<const bf16*>(args.a);
  p.in.b = static_cast<const bf16*>(args.b);
  p.out = args.out;
  p.out_gate_up = args.out_gate_up;
  p.offsets = args.offsets;
  p.dims = gg::Dims{k, n, static_cast<int>(e)};
  p.raster = 0;
  p.accumulate = args.accumulate ? 1 : 0;
  if (op == gg::kUpSwiglu && !p.out_gate_up)
    throw Error(problem.to_string() + " needs out_gate_up: the (M_total, 2N) pre-activations for the backward");

  const LaunchDims dims = GroupedGemmSpec::launch_dims(op, problem, config, device);
  if (config.get("tc") != 90) {
    void* kernel_args[] = {&p};
    kernel.launch(dims, kernel_args);
    return;
  }
  const uint32_t bm = static_cast<uint32_t>(config.get("bm")), bn = static_cast<uint32_t>(config.get("bn")), bk = 64;
  TmaDescriptor map_a, map_b;
  switch (op) {
    case gg::kFwd:
    case gg::kUpSwiglu:
      map_a = activation_map(args.a, m, k, bm);
      map_b = weight_map(args.b, e, k, op == gg::kUpSwiglu ? 2 * n : n, bk);
      break;
    case gg::kDgrad:
      map_a = activation_map(args.a, m, n, bm);
      map_b = weight_map(args.b, e, k, n, bn);
      break;
    default:  // wgrad: X boxes {64 K, bk tokens}, dY boxes {64 N, bk tokens}
      // No rows at all: every segment is empty and nothing is loaded, but the maps need an address.
      map_a = activation_map(m > 0 ? args.a : args.out, m, k, bk);
      map_b = activation_map(m > 0 ? args.b : args.out, m, n, bk);
      break;
  }
  void* kernel_args[] = {&map_a, &map_b, &p};
  kernel.launch(dims, kernel_args);
}

}  // namespace moejit
