// The host backend's memory-bound step ops (templates/step/step_ops_host.h: RMSNorm, cross-entropy,
// residual adds, the gradient norm's sums, AdamW): one JIT translation unit (host_step_ops_source(),
// a pure function, so the tests compile exactly what the backend loads), built through the binary
// cache and loaded once, as CudaStepOps is for the GPU. They are not tuned: they have no config, so
// they are not kernels of the step's list. Every op works in fixed chunks and sums chunks in order,
// so its result does not depend on the thread count. Only built with MOEJIT_WITH_LLVM.
#pragma once
#include <array>
#include <cstdint>
#include <memory>
#include <vector>

#include "host_backend.hpp"
#include "moejit/source.hpp"
#include "optim/adamw.h"

namespace moejit::runtime {

enum class HostStepOp { rmsnorm_fwd, rmsnorm_bwd, cross_entropy_fwd, cross_entropy_bwd, add, sum_squares, adamw };
inline constexpr int kHostStepOps = 7;

Source host_step_ops_source();  // every entry, in HostStepOp order

class HostStepOps {
 public:
  explicit HostStepOps(HostBackend& backend);

  // As StepBackend's ops of the same names, on fp32 process memory.
  void rmsnorm_fwd(float* out, float* rstd, const float* x, const float* w, int64_t N, int64_t C);
  void rmsnorm_bwd(float* d_x, float* d_w, const float* d_out, const float* x, const float* w, const float* rstd,
                   int64_t N, int64_t C);
  // Returns the mean cross-entropy of the N rows (their losses summed in row order, in double).
  double cross_entropy_fwd(float* probs, const float* logits, const int32_t* targets, int64_t N, int64_t V);
  // d_logits = scale * (probs - onehot(target)) / N.
  void cross_entropy_bwd(float* d_logits, const float* probs, const int32_t* targets, int64_t N, int64_t V,
                         float scale);
  void add(float* out, const float* in, int64_t n);
  double sum_squares(const float* g, int64_t n);  // in double, chunk sums added in order
  void adamw(float* p, float* m, float* v, const float* g, int64_t begin, int64_t end, bool decay,
             const AdamWCoefs<float>& k);

 private:
  template <typename... A>
  void launch(HostStepOp op, A... args);

  HostBackend& backend_;
  std::array<std::unique_ptr<Kernel>, kHostStepOps> kernels_;
  std::vector<float> floats_;    // d_w's chunk partials, the rows' losses
  std::vector<double> doubles_;  // the sums of squares' chunk partials
};

}  // namespace moejit::runtime
