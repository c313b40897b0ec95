#include "host_dense_ops.hpp"

#include <cmath>

#include "host/grouped_gemm_spec.hpp"
#include "swiglu/swiglu_spec.hpp"

namespace moejit::runtime {

const HostDenseOps::Resolved& HostDenseOps::kernel(const DenseKernel& k) {
  const std::string key = k.problem.key();
  auto it = resolved_.find(key);
  if (it == resolved_.end()) {
    it = resolved_.emplace(key, Resolved{k, cache_.resolve(k.problem)}).first;
    log_.record(k.name(), it->second.entry);
  }
  return it->second;
}

const int64_t* HostDenseOps::offsets(int64_t groups, int64_t rows_per_group) {
  if (groups != offsets_groups_ || rows_per_group != offsets_rows_) {
    offsets_.resize(groups + 1);
    for (int64_t e = 0; e <= groups; ++e) offsets_[e] = e * rows_per_group;
    offsets_groups_ = groups, offsets_rows_ = rows_per_group;
  }
  return offsets_.data();
}

void HostDenseOps::matmul_fwd(float* out, const float* in, const float* w, int64_t N, int64_t C, int64_t OC) {
  if (N == 0) return;
  const Resolved& r = kernel(matmul_kernel(DenseOp::matmul_fwd, N, C, OC));
  launch_host_gemm_dgrad(r.entry.kernel(), r.kernel.problem, r.entry.config(), in, w, out, offsets(1, N));
}

void HostDenseOps::matmul_bwd(float* d_in, bool accumulate, float* d_w, const float* d_out, const float* in,
                              const float* w, int64_t N, int64_t C, int64_t OC) {
  if (N == 0) return;
  if (d_in) {
    const Resolved& r = kernel(matmul_kernel(DenseOp::matmul_dgrad, N, C, OC));
    launch_host_gemm_fwd(r.entry.kernel(), r.kernel.problem, r.entry.config(), d_out, w, d_in, offsets(1, N),
                         {.accumulate = accumulate});
  }
  if (d_w) {
    const Resolved& r = kernel(matmul_kernel(DenseOp::matmul_wgrad, N, C, OC));
    launch_host_gemm_wgrad(r.entry.kernel(), r.kernel.problem, r.entry.config(), d_out, in, d_w, offsets(1, N),
                           {.accumulate = true});
  }
}

void HostDenseOps::ffn_down_bwd_swiglu(float* d_gate_up, float* d_w_down, const float* d_out, const float* h,
                                       const float* w_down, const float* gate_up, int64_t N, int64_t F, int64_t C) {
  if (N == 0) return;
  const Resolved& r = kernel(matmul_kernel(DenseOp::matmul_dgrad, N, F, C));
  launch_host_gemm_fwd(r.entry.kernel(), r.kernel.problem, r.entry.config(), d_out, w_down, d_gate_up, offsets(1, N),
                       {.swiglu_gate_up = gate_up});
  matmul_bwd(nullptr, false, d_w_down, d_out, h, w_down, N, F, C);
}

void HostDenseOps::swiglu_fwd(float* h, const float* gate_up, int64_t N, int64_t F) {
  if (N == 0) return;
  const Resolved& r = kernel(swiglu_kernel(DenseOp::swiglu_fwd, N, F));
  launch_swiglu_fwd(r.entry.kernel(), r.kernel.problem, r.entry.config(), cache_.backend().device(), gate_up, h);
}

void HostDenseOps::swiglu_bwd(float* d_gate_up, const float* d_h, const float* gate_up, int64_t N, int64_t F) {
  if (N == 0) return;
  const Resolved& r = kernel(swiglu_kernel(DenseOp::swiglu_bwd, N, F));
  launch_swiglu_bwd(r.entry.kernel(), r.kernel.problem, r.entry.config(), cache_.backend().device(), gate_up, d_h,
                    d_gate_up);
}

// Every product reads q, k, v (row stride 3C) and d_out (stride C) where they lie and writes out, d_q,
// d_k and d_v there too (HostHeadLayout): group g = b H + h is head h of sequence b. Only the (S, S)
// blocks (att, d_att) are laid out per group.
void HostDenseOps::attention_fwd(float* out, float* att, const float* qkv, int64_t B, int64_t S, int64_t C, int64_t H,
                                 bool alibi) {
  const int64_t hd = C / H, G = B * H, qkv_ld = 3 * C;
  const float scale = 1.0f / std::sqrt(float(hd));
  const int64_t* off = offsets(G, S);
  const Resolved& scores = kernel(attention_kernel(DenseOp::attn_scores, B, S, H, hd));
  const Resolved& values = kernel(attention_kernel(DenseOp::attn_values, B, S, H, hd));
  {  // att (G*S, S) = q_g . k_g^T per group, each row finished by the causal ALiBi softmax in place.
    auto timer = timed(prof_, "attn.fwd.scores_softmax");
    const HostScoresEpilogue softmax{HostScoresEpilogue::Mode::softmax, scale, alibi ? H : 0, nullptr};
    launch_host_gemm_dgrad(scores.entry.kernel(), scores.kernel.problem, scores.entry.config(), qkv, qkv + C, att, off,
                           {.heads = {H, qkv_ld, qkv_ld}, .scores = softmax});
  }
  auto timer = timed(prof_, "attn.fwd.values");  // out_g = att_g . v_g
  launch_host_gemm_fwd(values.entry.kernel(), values.kernel.problem, values.entry.config(), att, qkv + 2 * C, out, off,
                       {.heads = {H, qkv_ld, C}});
}

void HostDenseOps::attention_bwd(float* d_qkv, const float* d_out, const float* qkv, const float* att, int64_t B,
                                 int64_t S, int64_t C, int64_t H) {
  const int64_t hd = C / H, G = B * H, qkv_ld = 3 * C;
  const float scale = 1.0f / std::sqrt(float(hd));
  const int64_t* off = offsets(G, S);
  const Resolved& scores = kernel(attention_kernel(DenseOp::attn_scores, B, S, H, hd));
  const Resolved& values = kernel(attention_kernel(DenseOp::attn_values, B, S, H, hd));
  const Resolved& grads = kernel(attention_kernel(DenseOp::attn_grads, B, S, H, hd));
  d_att_.resize(G * S * S);
  {  // d_v_g = att_g^T . d_o_g
    auto timer = timed(prof_, "attn.bwd.dv");
    launch_host_gemm_wgrad(grads.entry.kernel(), grads.kernel.problem, grads.entry.config(), att, d_out, d_qkv + 2 * C,
                           off, {.heads = {H, C, qkv_ld}});
  }
  {  // d_att_g = d_o_g . v_g^T, each row finished by the softmax backward in place (d_scores).
    auto timer = timed(prof_, "attn.bwd.datt_softmax");
    const HostScoresEpilogue softmax_bwd{HostScoresEpilogue::Mode::softmax_bwd, scale, 0, att};
    launch_host_gemm_dgrad(scores.entry.kernel(), scores.kernel.problem, scores.entry.config(), d_out, qkv + 2 * C,
                           d_att_.data(), off, {.heads = {H, C, qkv_ld}, .scores = softmax_bwd});
  }
  {  // d_q_g = d_scores_g . k_g
    auto timer = timed(prof_, "attn.bwd.dq");
    launch_host_gemm_fwd(values.entry.kernel(), values.kernel.problem, values.entry.config(), d_att_.data(), qkv + C,
                         d_qkv, off, {.heads = {H, qkv_ld, qkv_ld}});
  }
  auto timer = timed(prof_, "attn.bwd.dk");  // d_k_g = d_scores_g^T . q_g
  launch_host_gemm_wgrad(grads.entry.kernel(), grads.kernel.problem, grads.entry.config(), d_att_.data(), qkv,
                         d_qkv + C, off, {.heads = {H, qkv_ld, qkv_ld}});
}

}  // namespace moejit::runtime
