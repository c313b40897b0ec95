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

template <typename F>
void HostDenseOps::accumulate_into(float* c, int64_t n, F&& gemm) {
  acc_.resize(n);
  gemm(acc_.data());
  par_.for_range(n, 1 << 14, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) c[i] += acc_[i];
  });
}

void HostDenseOps::matmul_fwd(float* out, const float* in, const float* w, int64_t N, int64_t C, int64_t OC) {
  if (N == 0) return;
  const Resolved& r = kernel(matmul_kernel(DenseOp::matmul_fwd, N, C, OC));
  launch_host_gemm_dgrad(r.entry.kernel(), r.kernel.problem, r.entry.config(), in, w, out, offsets(1, N));
}

void HostDenseOps::matmul_bwd(float* d_in, bool accumulate, float* d_w, const float* d_out, const float* in,
                              const float* w, int64_t N, int64_t C, int64_t OC) {
  if (d_in && N > 0) {
    const Resolved& r = kernel(matmul_kernel(DenseOp::matmul_dgrad, N, C, OC));
    auto gemm = [&](float* y) {
      launch_host_gemm_fwd(r.entry.kernel(), r.kernel.problem, r.entry.config(), d_out, w, y, offsets(1, N));
    };
    if (accumulate)
      accumulate_into(d_in, N * C, gemm);
    else
      gemm(d_in);
  }
  if (d_w && N > 0) {
    const Resolved& r = kernel(matmul_kernel(DenseOp::matmul_wgrad, N, C, OC));
    accumulate_into(d_w, OC * C, [&](float* dw) {
      launch_host_gemm_wgrad(r.entry.kernel(), r.kernel.problem, r.entry.config(), d_out, in, dw, offsets(1, N));
    });
  }
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

// q_, k_, v_ (B*H, S, hd) from qkv (B, S, 3C).
void HostDenseOps::split_heads(const float* qkv, int64_t B, int64_t S, int64_t C, int64_t H) {
  const int64_t hd = C / H;
  for (auto* v : {&q_, &k_, &v_}) v->resize(B * S * C);
  par_.for_range(B * H, 1, [&](int64_t first, int64_t last) {
    for (int64_t bh = first; bh < last; ++bh)
      for (int64_t t = 0; t < S; ++t) {
        const float* row = qkv + ((bh / H) * S + t) * 3 * C + (bh % H) * hd;
        const int64_t dst = (bh * S + t) * hd;
        std::copy(row, row + hd, q_.data() + dst);
        std::copy(row + C, row + C + hd, k_.data() + dst);
        std::copy(row + 2 * C, row + 2 * C + hd, v_.data() + dst);
      }
  });
}

void HostDenseOps::attention_fwd(float* out, float* att, const float* qkv, int64_t B, int64_t S, int64_t C, int64_t H,
                                 bool alibi) {
  const int64_t hd = C / H, G = B * H;
  const float scale = 1.0f / std::sqrt(float(hd));
  {
    auto timer = timed(prof_, "attn.relayout");
    split_heads(qkv, B, S, C, H);
  }
  const int64_t* off = offsets(G, S);
  const Resolved& scores = kernel(attention_kernel(DenseOp::attn_scores, B, S, H, hd));
  const Resolved& values = kernel(attention_kernel(DenseOp::attn_values, B, S, H, hd));
  {  // att (G*S, S) = q_g . k_g^T per group, each row finished by the causal ALiBi softmax in place.
    auto timer = timed(prof_, "attn.fwd.scores_softmax");
    const HostScoresEpilogue softmax{HostScoresEpilogue::Mode::softmax, scale, alibi ? H : 0, nullptr};
    launch_host_gemm_dgrad(scores.entry.kernel(), scores.kernel.problem, scores.entry.config(), q_.data(), k_.data(),
                           att, off, softmax);
  }
  o_.resize(G * S * hd);
  {
    auto timer = timed(prof_, "attn.fwd.values");
    launch_host_gemm_fwd(values.entry.kernel(), values.kernel.problem, values.entry.config(), att, v_.data(), o_.data(),
                         off);
  }
  auto timer = timed(prof_, "attn.relayout");
  par_.for_range(G, 1, [&](int64_t first, int64_t last) {  // out (B, S, C) from o (G, S, hd)
    for (int64_t g = first; g < last; ++g)
      for (int64_t t = 0; t < S; ++t) {
        const float* src = o_.data() + (g * S + t) * hd;
        std::copy(src, src + hd, out + ((g / H) * S + t) * C + (g % H) * hd);
      }
  });
}

void HostDenseOps::attention_bwd(float* d_qkv, const float* d_out, const float* qkv, const float* att, int64_t B,
                                 int64_t S, int64_t C, int64_t H) {
  const int64_t hd = C / H, G = B * H;
  const float scale = 1.0f / std::sqrt(float(hd));
  {
    auto timer = timed(prof_, "attn.relayout");
    split_heads(qkv, B, S, C, H);
    o_.resize(G * S * hd);  // here: d_o, head-major
    par_.for_range(G, 1, [&](int64_t first, int64_t last) {
      for (int64_t g = first; g < last; ++g)
        for (int64_t t = 0; t < S; ++t) {
          const float* src = d_out + ((g / H) * S + t) * C + (g % H) * hd;
          std::copy(src, src + hd, o_.data() + (g * S + t) * hd);
        }
    });
  }
  const int64_t* off = offsets(G, S);
  const Resolved& scores = kernel(attention_kernel(DenseOp::attn_scores, B, S, H, hd));
  const Resolved& values = kernel(attention_kernel(DenseOp::attn_values, B, S, H, hd));
  const Resolved& grads = kernel(attention_kernel(DenseOp::attn_grads, B, S, H, hd));
  for (auto* v : {&dq_, &dk_, &dv_}) v->resize(G * S * hd);
  d_att_.resize(G * S * S);
  {  // d_v_g = att_g^T . d_o_g
    auto timer = timed(prof_, "attn.bwd.dv");
    launch_host_gemm_wgrad(grads.entry.kernel(), grads.kernel.problem, grads.entry.config(), att, o_.data(), dv_.data(),
                           off);
  }
  {  // d_att_g = d_o_g . v_g^T, each row finished by the softmax backward in place (d_scores).
    auto timer = timed(prof_, "attn.bwd.datt_softmax");
    const HostScoresEpilogue softmax_bwd{HostScoresEpilogue::Mode::softmax_bwd, scale, 0, att};
    launch_host_gemm_dgrad(scores.entry.kernel(), scores.kernel.problem, scores.entry.config(), o_.data(), v_.data(),
                           d_att_.data(), off, softmax_bwd);
  }
  {  // d_q_g = d_scores_g . k_g
    auto timer = timed(prof_, "attn.bwd.dq");
    launch_host_gemm_fwd(values.entry.kernel(), values.kernel.problem, values.entry.config(), d_att_.data(), k_.data(),
                         dq_.data(), off);
  }
  {  // d_k_g = d_scores_g^T . q_g
    auto timer = timed(prof_, "attn.bwd.dk");
    launch_host_gemm_wgrad(grads.entry.kernel(), grads.kernel.problem, grads.entry.config(), d_att_.data(), q_.data(),
                           dk_.data(), off);
  }
  auto timer = timed(prof_, "attn.relayout");
  par_.for_range(G, 1, [&](int64_t first, int64_t last) {  // d_qkv (B, S, 3C) from the head-major gradients
    for (int64_t g = first; g < last; ++g)
      for (int64_t t = 0; t < S; ++t) {
        float* row = d_qkv + ((g / H) * S + t) * 3 * C + (g % H) * hd;
        const int64_t src = (g * S + t) * hd;
        std::copy(dq_.data() + src, dq_.data() + src + hd, row);
        std::copy(dk_.data() + src, dk_.data() + src + hd, row + C);
        std::copy(dv_.data() + src, dv_.data() + src + hd, row + 2 * C);
      }
  });
}

}  // namespace moejit::runtime
