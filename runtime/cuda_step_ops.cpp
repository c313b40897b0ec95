#include "cuda_step_ops.hpp"

#include <algorithm>

#include "moejit/error.hpp"

namespace moejit::runtime {
namespace {

struct OpInfo {
  StepOp op;
  const char* entry;
  bool rows;  // a warp per row (kRowWarps warps per block), else a thread per element
};

// Indexed by StepOp.
constexpr OpInfo kOps[kStepOps] = {
    {StepOp::rmsnorm_fwd, "moejit::rmsnorm_fwd_kernel<float, float, 4>", true},
    {StepOp::rmsnorm_bwd, "moejit::rmsnorm_bwd_kernel<float, float, 4>", true},
    {StepOp::rmsnorm_dw_partial, "moejit::rmsnorm_dw_partial_kernel<float, 256>", false},
    {StepOp::cross_entropy_fwd, "moejit::cross_entropy_fwd_kernel<float, float, 4>", true},
    {StepOp::cross_entropy_bwd, "moejit::cross_entropy_bwd_kernel<float, float, 4>", true},
    {StepOp::adamw, "moejit::adamw_kernel<float, 256>", false},
    {StepOp::sum_partials, "moejit::partial_sum_kernel<float, 256, false>", false},
    {StepOp::sum_squares_partials, "moejit::partial_sum_kernel<float, 256, true>", false},
    {StepOp::finish_add_scaled, "moejit::finish_sum_kernel<256, moejit::SumFinish::add_scaled>", false},
    {StepOp::finish_sqrt, "moejit::finish_sum_kernel<256, moejit::SumFinish::sqrt>", false},
    {StepOp::column_sum, "moejit::column_sum_kernel<256>", false},
    {StepOp::softmax_fwd, "moejit::alibi_softmax_fwd_kernel<float, 4>", true},
    {StepOp::softmax_bwd, "moejit::alibi_softmax_bwd_kernel<float, 4>", true},
    {StepOp::embedding_fwd, "moejit::embedding_fwd_kernel<float, 256>", false},
    {StepOp::embedding_bwd, "moejit::embedding_bwd_kernel<float, 256>", false},
    {StepOp::add, "moejit::add_kernel<float, 256>", false},
    {StepOp::add_i32, "moejit::add_kernel<int, 256>", false},
    {StepOp::scale, "moejit::scale_kernel<float, 256>", false},
    {StepOp::convert_to_bf16, "moejit::convert_kernel<moejit::bf16, float, 256>", false},
    {StepOp::convert_from_bf16, "moejit::convert_kernel<float, moejit::bf16, 256>", false},
    {StepOp::rope, "moejit::rope_kernel<float, 256>", false},
};

const OpInfo& info(StepOp op) {
  const OpInfo& i = kOps[static_cast<int>(op)];
  if (i.op != op) throw Error("step op table out of order");  // a wiring bug, caught by the CPU tests
  return i;
}

}  // namespace

const char* entry_of(StepOp op) {
  return info(op).entry;
}

unsigned threads_of(StepOp op) {
  return info(op).rows ? unsigned(kRowWarps * 32) : unsigned(kStepThreads);
}

Source step_ops_source() {
  Source s;
  s.family = "step_ops";
  s.dtype = "f32";
  s.shape = "any";
  s.config = "t256_w4";
  s.file_name = "step_ops.f32.cu";
  s.code =
      "#include \"norm/rmsnorm_cuda.cuh\"\n"
      "#include \"loss/cross_entropy_cuda.cuh\"\n"
      "#include \"optim/adamw_cuda.cuh\"\n"
      "#include \"common/reduce_cuda.cuh\"\n"
      "#include \"attention/attention_softmax_cuda.cuh\"\n"
      "#include \"step/step_elementwise_cuda.cuh\"\n";
  for (int i = 0; i < kStepOps; ++i) s.entries.push_back(entry_of(StepOp(i)));
  return s;
}

CudaStepOps::CudaStepOps(Backend& backend) {
  const Source source = step_ops_source();
  auto binary = backend.build(source);
  for (int i = 0; i < kStepOps; ++i) kernels_[i] = backend.load(binary, source.entries[i]);
}

unsigned CudaStepOps::grid_for(StepOp op, int64_t work) const {
  const int64_t per_block = info(op).rows ? kRowWarps : kStepThreads;
  const int64_t cap = op == StepOp::sum_partials || op == StepOp::sum_squares_partials ? kMaxSumBlocks : 65535;
  return unsigned(std::clamp<int64_t>((work + per_block - 1) / per_block, 1, cap));
}

void CudaStepOps::launch_args(StepOp op, unsigned grid_x, unsigned grid_y, void** args) {
  LaunchDims dims;
  dims.grid[0] = grid_x;
  dims.grid[1] = grid_y;
  dims.block[0] = threads_of(op);
  kernels_[static_cast<int>(op)]->launch(dims, args);
}

}  // namespace moejit::runtime
