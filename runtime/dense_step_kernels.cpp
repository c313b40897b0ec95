#include "dense_step_kernels.hpp"

#include <set>

#include "moejit/error.hpp"
#include "trainable_config.hpp"

namespace moejit::runtime {
namespace {

Family family_of(DenseOp op) {
  switch (op) {
    case DenseOp::matmul_fwd:
      return Family::grouped_gemm_dgrad;
    case DenseOp::matmul_dgrad:
      return Family::grouped_gemm_fwd;
    case DenseOp::matmul_wgrad:
      return Family::grouped_gemm_wgrad;
    case DenseOp::attn_scores:
      return Family::attention_scores;
    case DenseOp::attn_values:
      return Family::attention_values;
    case DenseOp::attn_grads:
      return Family::attention_grads;
    case DenseOp::swiglu_fwd:
      return Family::swiglu_fwd;
    case DenseOp::swiglu_bwd:
      return Family::swiglu_bwd;
  }
  throw Error("unknown dense op");
}

DenseKernel gemm(DenseOp op, int64_t groups, int64_t rows, int64_t K, int64_t N) {
  if (groups < 1 || rows < 0 || K < 1 || N < 1) throw Error("dense kernel shape needs groups, K, N > 0 and rows >= 0");
  return {op, Problem(family_of(op), DType::f32, GemmShape{groups, 1, K, N}, rows)};
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
    return std::string(to_string(op)) + " " + std::to_string(problem.row_shape().width);
  // (C x OC) for a matmul: k = OC, n = C; (S x hd) for attention: k = S, n = hd.
  const bool matmul = op == DenseOp::matmul_fwd || op == DenseOp::matmul_dgrad || op == DenseOp::matmul_wgrad;
  const GemmShape& g = problem.gemm();
  return std::string(to_string(op)) + " " + std::to_string(matmul ? g.n : g.k) + "x" +
         std::to_string(matmul ? g.k : g.n);
}

DenseKernel matmul_kernel(DenseOp op, int64_t N, int64_t C, int64_t OC) {
  return gemm(op, 1, N, OC, C);
}

DenseKernel attention_kernel(DenseOp op, int64_t B, int64_t S, int64_t H, int64_t hd) {
  return gemm(op, B * H, B * H * S, S, hd);
}

DenseKernel swiglu_kernel(DenseOp op, int64_t N, int64_t F) {
  if (F < 1 || N < 0) throw Error("SwiGLU kernel shape needs a width > 0 and rows >= 0");
  return {op, Problem(family_of(op), DType::f32, RowsShape{1, F}, N)};
}

bool dense_kernel_runs_on(const DenseKernel& k, std::string_view backend) {
  if (backend == "host") return k.op != DenseOp::swiglu_bwd;
  return k.op == DenseOp::swiglu_fwd || k.op == DenseOp::swiglu_bwd;
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
