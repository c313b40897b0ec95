#include "dense_step_kernels.hpp"

#include <set>

#include "moejit/error.hpp"
#include "trainable_config.hpp"

namespace moejit::runtime {
namespace {

const char* family_of(DenseOp op) {
  switch (op) {
    case DenseOp::matmul_fwd:
    case DenseOp::attn_scores:
      return "host_grouped_gemm_dgrad";
    case DenseOp::matmul_dgrad:
    case DenseOp::attn_values:
      return "host_grouped_gemm_fwd";
    case DenseOp::matmul_wgrad:
    case DenseOp::attn_grads:
      return "host_grouped_gemm_wgrad";
    case DenseOp::swiglu_fwd:
      return "swiglu_fwd";
    case DenseOp::swiglu_bwd:
      return "swiglu_bwd";
  }
  return "";
}

DenseKernel make(DenseOp op, int64_t groups, int64_t rows, int64_t K, int64_t N) {
  if (groups < 1 || rows < 0 || K < 1 || N < 1) throw Error("dense kernel shape needs groups, K, N > 0 and rows >= 0");
  Problem p;
  p.family = family_of(op);
  p.dtype = DType::f32;
  p.num_experts = groups;
  p.top_k = 1;
  p.tokens = rows;
  p.d_model = K;
  p.d_expert = N;
  return {op, std::move(p)};
}

}  // namespace

const char* to_string(DenseOp op) {
  switch (op) {
    case DenseOp::matmul_fwd:
      return "matmul_fwd";
    case DenseOp::matmul_dgrad:
      return "matmul_dgrad";
    case DenseOp::matmul_wgrad:
      return "matmul_wgrad";
    case DenseOp::attn_scores:
      return "attn_scores";
    case DenseOp::attn_values:
      return "attn_values";
    case DenseOp::attn_grads:
      return "attn_grads";
    case DenseOp::swiglu_fwd:
      return "swiglu_fwd";
    case DenseOp::swiglu_bwd:
      return "swiglu_bwd";
  }
  return "?";
}

std::string DenseKernel::name() const {
  if (op == DenseOp::swiglu_fwd || op == DenseOp::swiglu_bwd)
    return std::string(to_string(op)) + " " + std::to_string(problem.d_expert);
  // (C x OC) for a matmul: K = OC, N = C; (S x hd) for attention.
  const bool matmul = op == DenseOp::matmul_fwd || op == DenseOp::matmul_dgrad || op == DenseOp::matmul_wgrad;
  const int64_t a = matmul ? problem.d_expert : problem.d_model, b = matmul ? problem.d_model : problem.d_expert;
  return std::string(to_string(op)) + " " + std::to_string(a) + "x" + std::to_string(b);
}

DenseKernel matmul_kernel(DenseOp op, int64_t N, int64_t C, int64_t OC) {
  return make(op, 1, N, OC, C);
}

DenseKernel attention_kernel(DenseOp op, int64_t B, int64_t S, int64_t H, int64_t hd) {
  return make(op, B * H, B * H * S, S, hd);
}

DenseKernel swiglu_kernel(DenseOp op, int64_t N, int64_t F) {
  return make(op, 1, N, F, F);
}

std::vector<DenseKernel> dense_step_kernels(const ModelConfig& c, int64_t batch) {
  const int64_t S = c.seq_len, N = batch * S, C = c.d_model, H = c.heads, V = c.vocab;
  std::vector<DenseKernel> out;
  std::set<std::string> seen;
  auto add = [&](const DenseKernel& k) {
    if (seen.insert(k.problem.key()).second) out.push_back(k);
  };
  auto matmul = [&](int64_t in, int64_t outc) {
    for (DenseOp op : {DenseOp::matmul_fwd, DenseOp::matmul_dgrad, DenseOp::matmul_wgrad})
      add(matmul_kernel(op, N, in, outc));
  };
  for (int64_t l = 0; l < c.layers; ++l) {
    matmul(C, 3 * C);
    for (DenseOp op : {DenseOp::attn_scores, DenseOp::attn_values, DenseOp::attn_grads})
      add(attention_kernel(op, batch, S, H, C / H));
    matmul(C, C);
    auto ffn = [&](int64_t F) {
      matmul(C, 2 * F);
      add(swiglu_kernel(DenseOp::swiglu_fwd, N, F));
      matmul(F, C);
      add(swiglu_kernel(DenseOp::swiglu_bwd, N, F));
    };
    if (!is_moe_layer(c, l)) {
      ffn(int64_t(c.d_ffn));
      continue;
    }
    matmul(C, c.moe->experts);  // the router
    if (const int64_t Fs = d_ffn_shared(c)) ffn(Fs);
  }
  matmul(C, V);  // the LM head
  return out;
}

}  // namespace moejit::runtime
