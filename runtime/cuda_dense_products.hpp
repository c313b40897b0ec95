// The GPU backend's dense products (dense_products.hpp says which GEMMs) on cuBLASLt, fp32 operands
// with fp32 compute in this cut, each distinct product's descriptors built once with cuBLASLt's first
// ranked algorithm (tuning the algorithm through the tuning cache is a later step), around the
// NVRTC ALiBi softmax of CudaStepOps. Compiled here; runs only where a GPU is lent.
#pragma once
#include <map>
#include <memory>
#include <string>

#include "cuda_backend.hpp"
#include "cuda_step_ops.hpp"
#include "dense_products.hpp"
#include "step_backend.hpp"

namespace moejit::runtime {

class CudaDenseProducts {
 public:
  // ops, memory and gpu (its stream, and the step capture's enqueue log) outlive this object.
  CudaDenseProducts(CudaStepOps& ops, BackendMemory& memory, CudaBackend& gpu);
  ~CudaDenseProducts();

  void matmul_fwd(float* out, const float* in, const float* w, int64_t N, int64_t C, int64_t OC) {
    matmul_forward_products(*this, out, in, w, N, C, OC);
  }
  void matmul_bwd(float* d_in, bool accumulate, float* d_w, const float* d_out, const float* in, const float* w,
                  int64_t N, int64_t C, int64_t OC) {
    matmul_backward_products(*this, d_in, accumulate, d_w, d_out, in, w, N, C, OC);
  }
  void attention_fwd(float* out, float* att, const float* qkv, int64_t B, int64_t S, int64_t C, int64_t H, bool alibi) {
    attention_forward_products(*this, out, att, qkv, B, S, C, H, alibi);
  }
  void attention_bwd(float* d_qkv, const float* d_out, const float* qkv, const float* att, int64_t B, int64_t S,
                     int64_t C, int64_t H);

  // The executor of dense_products.hpp.
  void gemm(const RowMajorGemm& g, const float* a, const float* b, float* c);
  void softmax_fwd(float* att, int64_t rows, int64_t S, int64_t H, float scale, bool alibi);
  void softmax_bwd(const float* att, float* d_att, int64_t rows, int64_t S, float scale);

 private:
  struct Product;
  CudaStepOps& ops_;
  BackendMemory& memory_;
  CudaBackend& gpu_;
  std::map<std::string, std::unique_ptr<Product>> products_;  // by the gemm's fields
  Buffer workspace_, d_att_;
};

}  // namespace moejit::runtime
