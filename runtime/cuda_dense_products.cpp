#include "cuda_dense_products.hpp"

namespace moejit::runtime {
namespace {

constexpr size_t kWorkspaceBytes = size_t(32) << 20;  // cuBLASLt's recommendation for Hopper

std::string key_of(const RowMajorGemm& g) {
  std::string k;
  for (int64_t v : {g.m, g.n, g.k, int64_t(g.a_transposed), int64_t(g.b_transposed), g.lda, g.ldb, g.ldc, g.batch,
                    g.stride_a, g.stride_b, g.stride_c})
    k += std::to_string(v) + ",";
  return k + std::to_string(g.beta);
}

}  // namespace

struct CudaDenseProducts::Product {
  LtMatmul matmul;
  LtAlgo algo;
  explicit Product(const RowMajorGemm& g)
      : matmul(g, DType::f32, DType::f32, kWorkspaceBytes), algo(matmul.candidates(1).front()) {}
};

CudaDenseProducts::CudaDenseProducts(CudaStepOps& ops, BackendMemory& memory, CudaBackend& gpu)
    : ops_(ops), memory_(memory), gpu_(gpu) {
  workspace_ = memory_.alloc(DType::f32, int64_t(kWorkspaceBytes / 4));
}

CudaDenseProducts::~CudaDenseProducts() = default;

void CudaDenseProducts::attention_bwd(float* d_qkv, const float* d_out, const float* qkv, const float* att, int64_t B,
                                      int64_t S, int64_t C, int64_t H) {
  ensure(d_att_, memory_, DType::f32, B * H * S * S);
  attention_backward_products(*this, d_qkv, d_att_.as<float>(), d_out, qkv, att, B, S, C, H);
}

void CudaDenseProducts::gemm(const RowMajorGemm& g, const float* a, const float* b, float* c) {
  const std::string key = key_of(g);
  auto it = products_.find(key);
  if (it == products_.end()) it = products_.emplace(key, std::make_unique<Product>(g)).first;
  const auto word = [](const void* p) { return uint64_t(reinterpret_cast<uintptr_t>(p)); };
  if (!gpu_.admit(signature_of({4, word(it->second.get()), word(a), word(b), word(c)}), "cuBLASLt product " + key))
    return;
  it->second->matmul.run(a, b, c, it->second->algo, workspace_.ptr().data, gpu_.stream());
}

void CudaDenseProducts::softmax_fwd(float* att, int64_t rows, int64_t S, int64_t H, float scale, bool alibi) {
  ops_.launch(StepOp::softmax_fwd, ops_.grid_for(StepOp::softmax_fwd, rows), 1u, static_cast<const float*>(att), att,
              unsigned(rows), unsigned(S), unsigned(H), scale, int(alibi));
}

void CudaDenseProducts::softmax_bwd(const float* att, float* d_att, int64_t rows, int64_t S, float scale) {
  ops_.launch(StepOp::softmax_bwd, ops_.grid_for(StepOp::softmax_bwd, rows), 1u, att, static_cast<const float*>(d_att),
              d_att, unsigned(rows), unsigned(S), scale);
}

}  // namespace moejit::runtime
