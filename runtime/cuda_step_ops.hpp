// The GPU backend's memory-bound step ops: one NVRTC translation unit (step_ops_source(), a pure
// function, so the CPU tests compile exactly what the backend loads) holding every entry the backend
// launches (RMSNorm, cross-entropy, AdamW, the deterministic sums, the causal ALiBi softmax, the
// embedding, residual adds, scaling and dtype conversion: templates/norm, loss, optim, common,
// attention, step), and CudaStepOps, which loads them once and is the one place they are launched.
// Storage is fp32 (the backend's compute dtype in this cut); convert has both bf16 directions.
#pragma once
#include <array>
#include <cstdint>
#include <memory>

#include "moejit/backend.hpp"
#include "moejit/source.hpp"

namespace moejit::runtime {

enum class StepOp {
  rmsnorm_fwd,
  rmsnorm_bwd,
  rmsnorm_dw_partial,
  cross_entropy_fwd,
  cross_entropy_bwd,
  adamw,
  sum_partials,          // partial_sum_kernel, plain values
  sum_squares_partials,  // partial_sum_kernel, squares
  finish_add_scaled,
  finish_sqrt,
  column_sum,
  softmax_fwd,
  softmax_bwd,
  embedding_fwd,
  embedding_bwd,
  add,
  add_i32,  // the MoE layers' load counters
  scale,
  convert_to_bf16,
  convert_from_bf16,
  rope,
};
inline constexpr int kStepOps = 21;

// Launch shapes compiled into the entries: element kernels run kStepThreads per block, row kernels
// (a warp per row) kRowWarps warps per block.
inline constexpr int kStepThreads = 256;
inline constexpr int kRowWarps = 4;
// The deterministic sums' first pass never uses more blocks than this (its partials buffer's size).
inline constexpr int64_t kMaxSumBlocks = 1024;

const char* entry_of(StepOp op);  // the NVRTC name expression, e.g. "moejit::add_kernel<float, 256>"
unsigned threads_of(StepOp op);   // block size of the entry
Source step_ops_source();         // every entry, in StepOp order

class CudaStepOps {
 public:
  // Builds (through the binary cache) and loads step_ops_source() on `backend` ("cuda").
  explicit CudaStepOps(Backend& backend);

  // Grid for `work` items: elements for element kernels, rows for row kernels; at most
  // kMaxSumBlocks blocks for the sums' first pass, otherwise capped at 65535 (grid-stride loops).
  unsigned grid_for(StepOp op, int64_t work) const;

  // The one launch path: grid (x, y), the entry's block, and the kernel's arguments by value, each of
  // exactly the kernel parameter's type (unsigned, float, unsigned long long, pointers).
  template <typename... A>
  void launch(StepOp op, unsigned grid_x, unsigned grid_y, A... args) {
    void* p[] = {static_cast<void*>(&args)...};
    launch_args(op, grid_x, grid_y, p);
  }

 private:
  void launch_args(StepOp op, unsigned grid_x, unsigned grid_y, void** args);
  std::array<std::unique_ptr<Kernel>, kStepOps> kernels_;
};

}  // namespace moejit::runtime
