// The host backend's dense products on the JIT host GEMM kernels (dense_step_kernels.hpp says which
// family and Problem each product is): the model's matmuls as one-group grouped GEMMs, attention as
// batched GEMMs over (sequence, head) groups read and written in the model's own layout, the shared row softmax
// (templates/attention/attention_softmax.h) and its backward running in the scores products'
// epilogue (HostScoresEpilogue) while each row block is in cache. Configs come from the tuning cache through
// HostKernelCache; choices() reports each distinct kernel with the rung that served it. The dense
// FFN's SwiGLU runs on the MoE layer's SwiGLU kernels.
#pragma once
#include <map>
#include <tuple>
#include <vector>

#include "dense_step_kernels.hpp"
#include "host_kernel_cache.hpp"
#include "profile.hpp"

namespace moejit::runtime {

class HostDenseOps {
 public:
  explicit HostDenseOps(HostKernelCache& kernels) : cache_(kernels) {}

  // As StepBackend's ops of the same names, on process memory.
  void matmul_fwd(float* out, const float* in, const float* w, int64_t N, int64_t C, int64_t OC);
  void matmul_bwd(float* d_in, bool accumulate, float* d_w, const float* d_out, const float* in, const float* w,
                  int64_t N, int64_t C, int64_t OC);
  void attention_fwd(float* out, float* att, const float* qkv, int64_t B, int64_t S, int64_t C, int64_t H, bool alibi);
  void attention_bwd(float* d_qkv, const float* d_out, const float* qkv, const float* att, int64_t B, int64_t S,
                     int64_t C, int64_t H);
  void swiglu_fwd(float* h, const float* gate_up, int64_t N, int64_t F);
  void swiglu_bwd(float* d_gate_up, const float* d_h, const float* gate_up, int64_t N, int64_t F);
  // d_w_down (C, F) += d_out^T . h; d_gate_up (N, 2F) from d_h = d_out . w_down, the SwiGLU backward
  // running in the dgrad product's epilogue (no d_h tensor).
  void ffn_down_bwd_swiglu(float* d_gate_up, float* d_w_down, const float* d_out, const float* h, const float* w_down,
                           const float* gate_up, int64_t N, int64_t F, int64_t C);

  std::vector<KernelChoice> choices() const { return log_.choices(); }
  // Times attention's parts (the products with their softmax epilogues) as "attn.*" entries; null: off. The
  // training step leaves it off (its profiler times attention.core as a whole); bench_attention_host
  // sets it.
  void set_profiler(Profiler* p) { prof_ = p; }

 private:
  struct Resolved {
    DenseKernel kernel;
    KernelCache::Entry entry;
  };
  const Resolved& kernel(const DenseKernel& k);
  const int64_t* offsets(int64_t groups, int64_t rows_per_group);

  HostKernelCache& cache_;
  ChoiceLog log_;
  Profiler* prof_ = nullptr;
  std::map<std::string, Resolved> resolved_;  // by problem key
  std::vector<int64_t> offsets_;
  int64_t offsets_groups_ = -1, offsets_rows_ = -1;
  std::vector<float> d_att_;  // scratch: the (B*H, S, S) gradient of the attention weights
};

}  // namespace moejit::runtime
