// The dense kernel calls of a training step on the host backend, each with the Problem it is tuned
// under and looked up by, like moe_layer_steps.hpp for the MoE layer's 14 steps: one pure function
// owns the mapping, so that `moejit tune --model` tunes exactly the problems the runtime looks up.
// The problems are the registry's families (grouped GEMMs, SwiGLU) with their typed shapes; `moejit
// tune --model` hands them to tune_layer() (autotune/tune_layer.hpp) after the MoE layer's. (Here,
// not in templates/ beside moe_layer_steps.hpp, because the list follows a whole ModelConfig.)
//
// Every dense product is a grouped GEMM of the registry (Y = X . W_e, W (E, K, N): GemmShape
// {experts, top_k, k, n}, rows = tokens), chosen so that the model's weights and activations are
// read in place, without transposes:
//   the model's w (OC, C) is W (E 1, K = OC, N = C), and out (N, OC) = in (N, C) . w^T is its dgrad;
//     matmul_fwd    out  = in . w^T        grouped_gemm_dgrad   {e 1, topk 1, k OC, n C}, tokens N
//     matmul_dgrad  d_in = d_out . w       grouped_gemm_fwd     (same shape)
//     matmul_wgrad  d_w  = d_out^T . in    grouped_gemm_wgrad   (same shape)
//   attention's per-(sequence, head) products are E = B*H groups of S rows over head-major q, k, v
//   (S, hd) per group, W_e = k, v or q of the group (K = S, N = hd), through the causal views of
//   the same GEMMs (the (S, S) scores and probabilities are lower-triangular: half the work):
//     attn_scores   scores = q . k^T,  d_att = d_o . v^T     attention_scores  {e B*H, topk 1, k S, n hd},
//                                                            tokens B*H*S (the dgrad view)
//     attn_values   o = att . v,       d_q = d_scores . k    attention_values  (same shape; fwd view)
//     attn_grads    d_v = att^T . d_o, d_k = d_scores^T . q  attention_grads   (same shape; wgrad view)
// A dense GEMM is thus a one-group grouped GEMM: the same kernels, tiles and tuning; the one-group
// case needs no kernel of its own (the GEMM engine's work items are row x column blocks either way).
// The dense FFN's activation is the SwiGLU family the MoE layer uses (templates/swiglu):
//     swiglu_fwd, swiglu_bwd   h (N, F) from gate_up (N, 2F) and back   RowsShape {topk 1, width F}, tokens N
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "model_config.hpp"
#include "moejit/problem.hpp"

namespace moejit::runtime {

enum class DenseOp {
  matmul_fwd,
  matmul_dgrad,
  matmul_wgrad,
  attn_scores,
  attn_values,
  attn_grads,
  swiglu_fwd,
  swiglu_bwd,
};
const char* to_string(DenseOp op);

struct DenseKernel {
  DenseOp op;
  Problem problem;           // family, dtype f32, E, top_k 1, tokens, d_model (K), d_expert (N)
  std::string name() const;  // e.g. "matmul_fwd 256x768" (C x OC), "attn_scores 256x64" (S x hd)
};

// The kernel of one dense product out (N, OC) = in (N, C) . w^T (or its backward).
DenseKernel matmul_kernel(DenseOp op, int64_t N, int64_t C, int64_t OC);
// The kernel of one of attention's batched products over B sequences of S tokens, H heads of hd.
DenseKernel attention_kernel(DenseOp op, int64_t B, int64_t S, int64_t H, int64_t hd);

// The dense FFN's SwiGLU over N rows of width F (op swiglu_fwd or swiglu_bwd).
DenseKernel swiglu_kernel(DenseOp op, int64_t N, int64_t F);

// Whether `backend` looks `k` up in the tuning cache as a kernel of its own: every dense kernel on the
// host but the SwiGLU backward, which runs in the epilogue of the down projection's dgrad; on cuda
// only the SwiGLU kernels (its products run on cuBLASLt). What `moejit tune --model` tunes.
bool dense_kernel_runs_on(const DenseKernel& k, std::string_view backend);

// Every dense kernel of a training step of `c` with micro-batches of `batch` sequences of
// c.seq_len tokens, each distinct problem once, in the order a step first runs them.
std::vector<DenseKernel> dense_step_kernels(const ModelConfig& c, int64_t batch);

}  // namespace moejit::runtime
