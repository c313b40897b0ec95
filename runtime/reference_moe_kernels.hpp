// Plain C++ MoE kernels: the reference backend of MoeKernels, and the fallback of every rung. Loops
// over row-major buffers; the expert GEMMs are the dense matmuls of ops.hpp applied per segment.
#pragma once
#include <cmath>
#include <vector>

#include "moe_kernels.hpp"
#include "ops.hpp"

namespace moejit::runtime {

template <typename T>
class ReferenceMoeKernels final : public MoeKernels<T> {
 public:
  explicit ReferenceMoeKernels(Parallel& par) : par_(par) {}
  std::string backend() const override { return "reference"; }
  std::vector<KernelChoice> kernel_choices() const override;

  void router(const MoeShape& s, T* logits, const T* x, const T* w_router) override {
    matmul_forward(par_, logits, x, w_router, s.tokens, s.d_model, s.n_experts);
  }

  void gate_topk(const MoeShape& s, T* probs, int32_t* expert, T* gate, const T* logits) override {
    const i64 E = s.n_experts, K = s.top_k;
    for (i64 t = 0; t < s.tokens; ++t) {
      const T* l = logits + t * E;
      T* p = probs + t * E;
      T mx = l[0], sum = 0;
      for (i64 e = 1; e < E; ++e) mx = std::max(mx, l[e]);
      for (i64 e = 0; e < E; ++e) sum += (p[e] = std::exp(l[e] - mx));
      for (i64 e = 0; e < E; ++e) p[e] /= sum;
      for (i64 k = 0; k < K; ++k) {  // K passes of arg-max over the not-yet-chosen experts
        i64 best = -1;
        for (i64 e = 0; e < E; ++e) {
          bool taken = false;
          for (i64 j = 0; j < k; ++j) taken |= expert[t * K + j] == e;
          if (!taken && (best < 0 || p[e] > p[best])) best = e;
        }
        expert[t * K + k] = int32_t(best);
        gate[t * K + k] = p[best];
      }
    }
  }

  void route(const MoeShape& s, int32_t* offsets, int32_t* slot, int32_t* token_of_row,
             const int32_t* expert) override {
    const i64 E = s.n_experts, A = s.assignments();
    std::vector<int32_t> fill(E + 1, 0);
    for (i64 a = 0; a < A; ++a) ++fill[expert[a] + 1];
    for (i64 e = 0; e < E; ++e) fill[e + 1] += fill[e];
    for (i64 e = 0; e <= E; ++e) offsets[e] = fill[e];
    for (i64 a = 0; a < A; ++a) {  // a = t*K + k in token order: stable within each expert
      int32_t row = fill[expert[a]]++;
      slot[a] = row;
      token_of_row[row] = int32_t(a / s.top_k);
    }
  }

  void permute(const MoeShape& s, T* x_perm, const T* x, const int32_t* token_of_row) override {
    const i64 C = s.d_model;
    for (i64 r = 0; r < s.assignments(); ++r)
      for (i64 j = 0; j < C; ++j) x_perm[r * C + j] = x[token_of_row[r] * C + j];
  }

  void expert_up_swiglu(const MoeShape& s, T* gate_up, T* h, const T* x_perm, const T* w_up,
                        const int32_t* offsets) override {
    const i64 C = s.d_model, F = s.d_expert;
    for (i64 e = 0; e < s.n_experts; ++e) {
      i64 r0 = offsets[e], n = offsets[e + 1] - r0;
      matmul_forward(par_, gate_up + r0 * 2 * F, x_perm + r0 * C, w_up + e * 2 * F * C, n, C, 2 * F);
    }
    swiglu_rows_forward(h, gate_up, s.assignments(), F);
  }

  void expert_down(const MoeShape& s, T* y_perm, const T* h, const T* w_down, const int32_t* offsets) override {
    const i64 C = s.d_model, F = s.d_expert;
    for (i64 e = 0; e < s.n_experts; ++e) {
      i64 r0 = offsets[e], n = offsets[e + 1] - r0;
      matmul_forward(par_, y_perm + r0 * C, h + r0 * F, w_down + e * C * F, n, F, C);
    }
  }

  void combine(const MoeShape& s, T* out, const T* y_perm, const T* gate, const int32_t* slot) override {
    const i64 C = s.d_model, K = s.top_k;
    for (i64 t = 0; t < s.tokens; ++t)
      for (i64 k = 0; k < K; ++k) axpy(out + t * C, gate[t * K + k], y_perm + i64(slot[t * K + k]) * C, C);
  }

  void router_losses(const MoeShape& s, T* losses, const T* probs, const T* logits, const int32_t* offsets) override {
    const i64 N = s.tokens, E = s.n_experts;
    T aux = 0, z = 0;
    for (i64 e = 0; e < E; ++e) {
      T p = 0;
      for (i64 t = 0; t < N; ++t) p += probs[t * E + e];
      T f = T(offsets[e + 1] - offsets[e]) / T(s.assignments());
      aux += f * p / T(N);
    }
    for (i64 t = 0; t < N; ++t) {
      T lse = logsumexp(logits + t * E, E);
      z += lse * lse;
    }
    losses[0] = T(E) * aux;
    losses[1] = z / T(N);
  }

  void combine_backward(const MoeShape& s, T* d_y_perm, T* d_gate, const T* d_out, const T* y_perm, const T* gate,
                        const int32_t* slot) override {
    const i64 C = s.d_model, K = s.top_k;
    for (i64 t = 0; t < s.tokens; ++t)
      for (i64 k = 0; k < K; ++k) {
        i64 row = slot[t * K + k];
        d_gate[t * K + k] = dot(d_out + t * C, y_perm + row * C, C);
        for (i64 j = 0; j < C; ++j) d_y_perm[row * C + j] = gate[t * K + k] * d_out[t * C + j];
      }
  }

  void expert_down_backward(const MoeShape& s, T* d_h, T* d_w_down, const T* d_y_perm, const T* h, const T* w_down,
                            const int32_t* offsets) override {
    const i64 C = s.d_model, F = s.d_expert;
    std::fill(d_h, d_h + s.assignments() * F, T(0));
    for (i64 e = 0; e < s.n_experts; ++e) {
      i64 r0 = offsets[e], n = offsets[e + 1] - r0;
      matmul_backward(par_, d_h + r0 * F, d_w_down + e * C * F, d_y_perm + r0 * C, h + r0 * F, w_down + e * C * F, n, F,
                      C);
    }
  }

  void expert_up_backward(const MoeShape& s, T* d_x_perm, T* d_w_up, T* d_gate_up, const T* d_h, const T* gate_up,
                          const T* x_perm, const T* w_up, const int32_t* offsets) override {
    const i64 C = s.d_model, F = s.d_expert;
    swiglu_rows_backward(d_gate_up, d_h, gate_up, s.assignments(), F);
    std::fill(d_x_perm, d_x_perm + s.assignments() * C, T(0));
    for (i64 e = 0; e < s.n_experts; ++e) {
      i64 r0 = offsets[e], n = offsets[e + 1] - r0;
      matmul_backward(par_, d_x_perm + r0 * C, d_w_up + e * 2 * F * C, d_gate_up + r0 * 2 * F, x_perm + r0 * C,
                      w_up + e * 2 * F * C, n, C, 2 * F);
    }
  }

  void unpermute_backward(const MoeShape& s, T* d_x, const T* d_x_perm, const int32_t* slot) override {
    const i64 C = s.d_model, K = s.top_k;
    for (i64 t = 0; t < s.tokens; ++t)
      for (i64 k = 0; k < K; ++k) axpy(d_x + t * C, T(1), d_x_perm + i64(slot[t * K + k]) * C, C);
  }

  void gate_backward(const MoeShape& s, T* d_logits, const T* d_gate, const T* probs, const T* logits,
                     const int32_t* expert, const int32_t* offsets, T aux_coef, T z_coef) override {
    const i64 N = s.tokens, E = s.n_experts, K = s.top_k;
    std::vector<T> dprobs(E);
    for (i64 t = 0; t < N; ++t) {
      const T* p = probs + t * E;
      for (i64 e = 0; e < E; ++e)
        dprobs[e] = aux_coef * T(E) * (T(offsets[e + 1] - offsets[e]) / T(s.assignments())) / T(N);
      for (i64 k = 0; k < K; ++k) dprobs[expert[t * K + k]] += d_gate[t * K + k];
      T pd = dot(p, dprobs.data(), E);
      T lse = logsumexp(logits + t * E, E);
      for (i64 e = 0; e < E; ++e) d_logits[t * E + e] = p[e] * (dprobs[e] - pd) + z_coef * T(2) * lse * p[e] / T(N);
    }
  }

  void router_backward(const MoeShape& s, T* d_x, T* d_w_router, const T* d_logits, const T* x,
                       const T* w_router) override {
    matmul_backward(par_, d_x, d_w_router, d_logits, x, w_router, s.tokens, s.d_model, s.n_experts);
  }

 private:
  static T logsumexp(const T* l, i64 n) {
    T mx = l[0], sum = 0;
    for (i64 i = 1; i < n; ++i) mx = std::max(mx, l[i]);
    for (i64 i = 0; i < n; ++i) sum += std::exp(l[i] - mx);
    return mx + std::log(sum);
  }
  Parallel& par_;
};

// The kernels a backend launches per MoE layer step (forward 8, backward 8: 16 in all); backends
// report one KernelChoice each so that "all 16 kernels tuned" counts the same things everywhere.
const std::vector<std::string>& moe_kernel_names();

template <typename T>
std::vector<KernelChoice> ReferenceMoeKernels<T>::kernel_choices() const {
  std::vector<KernelChoice> v;
  for (const auto& name : moe_kernel_names()) v.push_back({name, "", TuningRung::kReference});
  return v;
}

}  // namespace moejit::runtime
