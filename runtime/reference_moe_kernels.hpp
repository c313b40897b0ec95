// Plain C++ MoE kernels: the reference backend of MoeKernels (in double for the gradient checks, in
// float as the trainer's fallback). Loops over row-major buffers, written from the semantics of
// docs/routing.md and the grouped GEMM layouts, independently of the kernels' code: the router of
// reference_router.hpp per token, a stable counting sort with capacity for the plan, the GEMMs as
// dot/axpy loops over the kept rows of each expert segment.
#pragma once
#include <algorithm>
#include <cmath>
#include <vector>

#include "moe_kernels.hpp"
#include "moe_layer_steps.hpp"
#include "moejit/error.hpp"
#include "ops.hpp"
#include "reference_router.hpp"

namespace moejit::runtime {

template <typename T>
class ReferenceMoeKernels final : public MoeKernels<T> {
 public:
  explicit ReferenceMoeKernels(ThreadPool& par) : par_(par) {}
  std::string backend() const override { return "reference"; }
  std::vector<KernelChoice> kernel_choices() const override {
    std::vector<KernelChoice> v;
    for (int i = 0; i < kLayerSteps; ++i) v.push_back({std::string(to_string(LayerStep(i))), "", std::nullopt});
    return v;
  }

  void gate_fwd(const MoeShape& s, const GateParams& gate, const T* bias, int32_t* index, T* weight, T* probs, T* lse,
                const T* logits) override {
    const i64 E = s.n_experts, K = s.top_k;
    RouterScores<T> r;
    for (i64 t = 0; t < s.tokens; ++t) {
      router_scores(r, logits + t * E, E, gate.score);
      router_select(index + t * K, r, bias, gate, E, K);
      router_weights(weight + t * K, index + t * K, r, gate, K);
      std::copy(r.score.begin(), r.score.end(), probs + t * E);
      lse[t] = r.lse;
    }
  }

  void plan(const MoeShape& s, const RouterLossCoefs& coefs, int capacity, int32_t* counts, int32_t* dropped,
            int32_t* offsets, int32_t* slot, int32_t* row_source, T* aux_scale, T* losses, const int32_t* index,
            const T* probs, const T* lse) override {
    const i64 N = s.tokens, E = s.n_experts, A = s.assignments();
    std::fill(counts, counts + E, 0);
    for (i64 a = 0; a < A; ++a) ++counts[index[a]];
    offsets[0] = 0;
    for (i64 e = 0; e < E; ++e) {
      const int32_t kept = capacity < 0 ? counts[e] : std::min(counts[e], int32_t(capacity));
      dropped[e] = counts[e] - kept;
      offsets[e + 1] = offsets[e] + kept;
    }
    std::vector<int32_t> next(offsets, offsets + E);
    for (i64 a = 0; a < A; ++a) {  // a = t*K + k in token order: stable within each expert, later tokens drop
      const int32_t e = index[a];
      slot[a] = next[e] < offsets[e + 1] ? next[e]++ : -1;
      if (slot[a] >= 0) row_source[slot[a]] = int32_t(a);
    }
    T aux = 0, z = 0;
    for (i64 e = 0; e < E; ++e) {
      T f = N ? T(counts[e]) / T(A) : T(0), p = 0;
      for (i64 t = 0; t < N; ++t) p += probs[t * E + e];
      aux_scale[e] = N ? T(coefs.aux_coef) * T(E) * f / T(N) : T(0);
      aux += N ? f * p / T(N) : T(0);
    }
    for (i64 t = 0; t < N; ++t) z += lse[t] * lse[t];
    losses[0] = T(coefs.aux_coef) * T(E) * aux;
    losses[1] = N ? T(coefs.z_coef) * z / T(N) : T(0);
    if (coefs.sequence_aux()) losses[0] += sequence_aux(s, coefs, aux_scale + E, index, probs);
  }

  void permute_fwd(const MoeShape& s, T* x_perm, const T* x, const int32_t* slot) override {
    const i64 C = s.d_model;
    for (i64 a = 0; a < s.assignments(); ++a)
      if (slot[a] >= 0) std::copy(x + a / s.top_k * C, x + (a / s.top_k + 1) * C, x_perm + slot[a] * C);
  }

  void up_swiglu(const MoeShape& s, T* gate_up, T* h, const T* x_perm, const T* w_up, const int32_t* offsets) override {
    const i64 C = s.d_model, F = s.d_expert;
    rows_times_weight(s, gate_up, x_perm, w_up, offsets, C, 2 * F);
    for (i64 r = 0; r < offsets[s.n_experts]; ++r)
      for (i64 j = 0; j < F; ++j) {
        T g = gate_up[r * 2 * F + j], u = gate_up[r * 2 * F + F + j];
        h[r * F + j] = g / (T(1) + std::exp(-g)) * u;
      }
  }

  void down_fwd(const MoeShape& s, T* y_perm, const T* h, const T* w_down, const int32_t* offsets) override {
    rows_times_weight(s, y_perm, h, w_down, offsets, s.d_expert, s.d_model);
  }

  void combine_fwd(const MoeShape& s, T* out, const T* shared, const T* y_perm, const T* weight,
                   const int32_t* slot) override {
    const i64 C = s.d_model, K = s.top_k;
    std::vector<T> acc(C);
    for (i64 t = 0; t < s.tokens; ++t) {
      std::fill(acc.begin(), acc.end(), T(0));
      for (i64 k = 0; k < K; ++k)
        if (slot[t * K + k] >= 0) axpy(acc.data(), weight[t * K + k], y_perm + i64(slot[t * K + k]) * C, C);
      for (i64 j = 0; j < C; ++j) out[t * C + j] = acc[j] + (shared ? shared[t * C + j] : T(0));
    }
  }

  void combine_bwd(const MoeShape& s, T* d_y_perm, T* d_weight, const T* d_out, const T* y_perm, const T* weight,
                   const int32_t* slot) override {
    const i64 C = s.d_model, K = s.top_k;
    for (i64 t = 0; t < s.tokens; ++t)
      for (i64 k = 0; k < K; ++k) {
        i64 row = slot[t * K + k];
        d_weight[t * K + k] = row >= 0 ? dot(d_out + t * C, y_perm + row * C, C) : T(0);
        if (row < 0) continue;
        for (i64 j = 0; j < C; ++j) d_y_perm[row * C + j] = weight[t * K + k] * d_out[t * C + j];
      }
  }

  void down_dgrad(const MoeShape& s, T* d_h, const T* d_y_perm, const T* w_down, const int32_t* offsets) override {
    rows_times_weight_t(s, d_h, d_y_perm, w_down, offsets, s.d_expert, s.d_model);
  }
  void down_wgrad(const MoeShape& s, T* d_w_down, const T* h, const T* d_y_perm, const int32_t* offsets) override {
    add_weight_grad(s, d_w_down, h, d_y_perm, offsets, s.d_expert, s.d_model);
  }

  void swiglu_bwd(const MoeShape& s, T* d_gate_up, const T* gate_up, const T* d_h) override {
    const i64 F = s.d_expert;
    for (i64 r = 0; r < s.assignments(); ++r)
      for (i64 j = 0; j < F; ++j) {
        T g = gate_up[r * 2 * F + j], u = gate_up[r * 2 * F + F + j], dh = d_h[r * F + j];
        T sig = T(1) / (T(1) + std::exp(-g));
        d_gate_up[r * 2 * F + j] = dh * u * sig * (T(1) + g * (T(1) - sig));  // d/dg of g*sig(g)*u
        d_gate_up[r * 2 * F + F + j] = dh * g * sig;
      }
  }

  void up_dgrad(const MoeShape& s, T* d_x_perm, const T* d_gate_up, const T* w_up, const int32_t* offsets) override {
    rows_times_weight_t(s, d_x_perm, d_gate_up, w_up, offsets, s.d_model, 2 * s.d_expert);
  }
  void up_wgrad(const MoeShape& s, T* d_w_up, const T* x_perm, const T* d_gate_up, const int32_t* offsets) override {
    add_weight_grad(s, d_w_up, x_perm, d_gate_up, offsets, s.d_model, 2 * s.d_expert);
  }

  void permute_bwd(const MoeShape& s, T* d_x, const T* d_x_perm, const int32_t* slot) override {
    const i64 C = s.d_model, K = s.top_k;
    for (i64 t = 0; t < s.tokens; ++t)
      for (i64 k = 0; k < K; ++k)
        if (slot[t * K + k] >= 0) axpy(d_x + t * C, T(1), d_x_perm + i64(slot[t * K + k]) * C, C);
  }

  void gate_bwd(const MoeShape& s, const GateParams& gate, T* d_logits, const T* logits, const int32_t* index,
                const T* d_weight, const T* aux_scale, T z_scale, int64_t seq_tokens) override {
    const i64 E = s.n_experts, K = s.top_k;
    RouterScores<T> r;
    std::vector<T> d_score(E);
    for (i64 t = 0; t < s.tokens; ++t) {
      router_scores(r, logits + t * E, E, gate.score);
      const T* seq_row = aux_scale && seq_tokens > 0 ? aux_scale + (1 + t / seq_tokens) * E : nullptr;
      for (i64 e = 0; e < E; ++e) d_score[e] = (aux_scale ? aux_scale[e] : T(0)) + (seq_row ? seq_row[e] : T(0));
      router_backward(d_logits + t * E, d_score, r, index + t * K, d_weight + t * K, gate, z_scale, E, K);
    }
  }

  void bias_update(const MoeShape& s, T* bias, const int32_t* load, T rate) override {
    const T mean = T(s.assignments()) / T(s.n_experts);
    for (i64 e = 0; e < s.n_experts; ++e) bias[e] += rate * T((mean > T(load[e])) - (mean < T(load[e])));
  }

 private:
  // The sequence-wise aux loss over the S sequences of L tokens: writes its gradient rows
  // seq_scale (S, E) and returns the loss, seq_aux_coef * E / S * sum_s sum_e f_{s,e} p_{s,e}.
  static T sequence_aux(const MoeShape& s, const RouterLossCoefs& coefs, T* seq_scale, const int32_t* index,
                        const T* probs) {
    const i64 E = s.n_experts, K = s.top_k, L = coefs.seq_tokens, S = s.tokens / L;
    if (s.tokens % L)
      throw Error("the sequence-wise aux loss needs whole sequences of " + std::to_string(L) + " tokens");
    T sum = 0;
    for (i64 q = 0; q < S; ++q)
      for (i64 e = 0; e < E; ++e) {
        T chosen = 0, p = 0;
        for (i64 t = q * L; t < (q + 1) * L; ++t) {
          for (i64 k = 0; k < K; ++k) chosen += T(index[t * K + k] == e);
          p += probs[t * E + e];
        }
        const T f = chosen / T(L * K);
        seq_scale[q * E + e] = T(coefs.seq_aux_coef) * T(E) * f / T(S * L);
        sum += f * p / T(L);
      }
    return T(coefs.seq_aux_coef) * T(E) * sum / T(S);
  }

  static i64 expert_of(const int32_t* offsets, i64 E, i64 row) {
    return i64(std::upper_bound(offsets, offsets + E + 1, int32_t(row)) - offsets) - 1;
  }
  // out (A, N) = in (A, Kd) . w[e] (Kd, N) for each row's expert e.
  void rows_times_weight(const MoeShape& s, T* out, const T* in, const T* w, const int32_t* offsets, i64 Kd, i64 N) {
    par_.for_range(offsets[s.n_experts], 4, [&](i64 b, i64 end) {
      for (i64 r = b; r < end; ++r) {
        const T* we = w + expert_of(offsets, s.n_experts, r) * Kd * N;
        std::fill(out + r * N, out + (r + 1) * N, T(0));
        for (i64 c = 0; c < Kd; ++c) axpy(out + r * N, in[r * Kd + c], we + c * N, N);
      }
    });
  }
  // out (A, Kd) = in (A, N) . w[e]^T, w (E, Kd, N).
  void rows_times_weight_t(const MoeShape& s, T* out, const T* in, const T* w, const int32_t* offsets, i64 Kd, i64 N) {
    par_.for_range(offsets[s.n_experts], 4, [&](i64 b, i64 end) {
      for (i64 r = b; r < end; ++r) {
        const T* we = w + expert_of(offsets, s.n_experts, r) * Kd * N;
        for (i64 c = 0; c < Kd; ++c) out[r * Kd + c] = dot(in + r * N, we + c * N, N);
      }
    });
  }
  // dw[e] (Kd, N) += in_e^T (Kd, rows) . d_out_e (rows, N); one work item per weight row (e, c).
  void add_weight_grad(const MoeShape& s, T* dw, const T* in, const T* d_out, const int32_t* offsets, i64 Kd, i64 N) {
    par_.for_range(s.n_experts * Kd, 4, [&](i64 b, i64 end) {
      for (i64 i = b; i < end; ++i) {
        const i64 e = i / Kd, c = i % Kd;
        for (i64 r = offsets[e]; r < offsets[e + 1]; ++r) axpy(dw + i * N, in[r * Kd + c], d_out + r * N, N);
      }
    });
  }

  ThreadPool& par_;
};

}  // namespace moejit::runtime
