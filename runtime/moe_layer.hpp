// The MoE layer of the "1dense+SE" layout: out = shared_expert(x) + sum_k gate_k * expert_k(x), with a
// softmax router over all E experts, top-K without renormalisation, and the router's aux and z losses.
// The router projection and the shared expert are dense ops; the 14 kernel steps (moe_layer_kernels.hpp)
// go through MoeKernels<T>, so the backend (reference, JIT host, GPU) is a parameter.
#pragma once
#include <vector>

#include "ffn.hpp"
#include "moe_kernels.hpp"

namespace moejit::runtime {

template <typename T>
struct MoeWeights {  // T = float or const float; pointers into the model's flat parameter buffer
  T* w_router;       // (E, C)
  T* w_up;           // (E, C, 2De), columns [gate | up]: the grouped GEMMs' W (E, K, N) layout
  T* w_down;         // (E, De, C)
  T* shared_up;      // (2Dse, C), null without a shared expert
  T* shared_down;    // (C, Dse)
};

struct MoeDims {
  i64 d_model, n_experts, top_k, d_expert, d_shared;
  RouterLossCoefs coefs{};  // the router losses' weights (ModelConfig aux_loss_coef, z_loss_coef)
};

template <typename T>
class MoeLayer {
 public:
  MoeLayer(MoeKernels<T>& kernels, ThreadPool& par, MoeDims dims) : k_(kernels), par_(par), d_(dims) {}

  // out (N, C) = layer(x (N, C)); keeps what the backward needs; aux_loss()/z_loss() valid after.
  void forward(Profiler* prof, T* out, const T* x, i64 N, const MoeWeights<const T>& w) {
    const MoeShape s = shape(N);
    const i64 A = s.assignments(), C = d_.d_model, E = d_.n_experts, F = d_.d_expert;
    logits_.resize(N * E);
    probs_.resize(N * E);
    lse_.resize(N);
    index_.resize(A);
    weight_.resize(A);
    counts_.resize(E);
    offsets_.resize(E + 1);
    slot_.resize(A);
    row_source_.resize(A);
    aux_scale_.resize(E);
    x_perm_.resize(A * C);
    gate_up_.resize(A * 2 * F);
    h_.resize(A * F);
    y_perm_.resize(A * C);
    run(prof, "moe.router", [&] { matmul_forward(par_, logits_.data(), x, w.w_router, N, C, E); });
    run(prof, "moe.gate_fwd",
        [&] { k_.gate_fwd(s, index_.data(), weight_.data(), probs_.data(), lse_.data(), logits_.data()); });
    run(prof, "moe.plan", [&] {
      k_.plan(s, d_.coefs, counts_.data(), offsets_.data(), slot_.data(), row_source_.data(), aux_scale_.data(),
              losses_, index_.data(), probs_.data(), lse_.data());
    });
    run(prof, "moe.permute_fwd", [&] { k_.permute_fwd(s, x_perm_.data(), x, slot_.data()); });
    run(prof, "moe.up_swiglu",
        [&] { k_.up_swiglu(s, gate_up_.data(), h_.data(), x_perm_.data(), w.w_up, offsets_.data()); });
    run(prof, "moe.down_fwd", [&] { k_.down_fwd(s, y_perm_.data(), h_.data(), w.w_down, offsets_.data()); });
    if (d_.d_shared) ffn_forward(par_, prof, shared_, out, x, w.shared_up, w.shared_down, N, C, d_.d_shared);
    run(prof, "moe.combine_fwd",
        [&] { k_.combine_fwd(s, out, d_.d_shared ? out : nullptr, y_perm_.data(), weight_.data(), slot_.data()); });
  }

  // The router losses of the last forward, weighted by their coefficients (the routing kernels'
  // convention: the plan applies LossParams), so the training loss adds them as they are.
  T aux_loss() const { return losses_[0]; }
  T z_loss() const { return losses_[1]; }
  const std::vector<int32_t>& offsets() const { return offsets_; }

  // dx (N, C) += ...; grads += .... loss_scale multiplies every gradient (d_out already carries it;
  // the router losses' terms get it here).
  void backward(Profiler* prof, T* dx, const MoeWeights<T>& grads, const T* dout, const T* x, i64 N,
                const MoeWeights<const T>& w, T loss_scale) {
    const MoeShape s = shape(N);
    const i64 A = s.assignments(), C = d_.d_model, E = d_.n_experts, F = d_.d_expert;
    d_y_perm_.resize(A * C);
    d_weight_.resize(A);
    d_h_.resize(A * F);
    d_gate_up_.resize(A * 2 * F);
    d_x_perm_.resize(A * C);
    d_logits_.resize(N * E);
    scaled_aux_.resize(E);
    run(prof, "moe.combine_bwd", [&] {
      k_.combine_bwd(s, d_y_perm_.data(), d_weight_.data(), dout, y_perm_.data(), weight_.data(), slot_.data());
    });
    run(prof, "moe.down_dgrad", [&] { k_.down_dgrad(s, d_h_.data(), d_y_perm_.data(), w.w_down, offsets_.data()); });
    run(prof, "moe.down_wgrad", [&] { k_.down_wgrad(s, grads.w_down, h_.data(), d_y_perm_.data(), offsets_.data()); });
    run(prof, "moe.swiglu_bwd", [&] { k_.swiglu_bwd(s, d_gate_up_.data(), gate_up_.data(), d_h_.data()); });
    run(prof, "moe.up_dgrad", [&] { k_.up_dgrad(s, d_x_perm_.data(), d_gate_up_.data(), w.w_up, offsets_.data()); });
    run(prof, "moe.up_wgrad", [&] { k_.up_wgrad(s, grads.w_up, x_perm_.data(), d_gate_up_.data(), offsets_.data()); });
    run(prof, "moe.permute_bwd", [&] { k_.permute_bwd(s, dx, d_x_perm_.data(), slot_.data()); });
    for (i64 e = 0; e < E; ++e) scaled_aux_[e] = loss_scale * aux_scale_[e];
    // z_scale = 2 z_coef / N (route_z_scale), times the loss scale.
    const T z_scale = N ? loss_scale * T(2 * d_.coefs.z_coef) / T(N) : T(0);
    run(prof, "moe.gate_bwd", [&] {
      k_.gate_bwd(s, d_logits_.data(), logits_.data(), index_.data(), d_weight_.data(), scaled_aux_.data(), z_scale);
    });
    run(prof, "moe.router",
        [&] { matmul_backward(par_, dx, grads.w_router, d_logits_.data(), x, w.w_router, N, C, E); });
    if (d_.d_shared)
      ffn_backward(par_, prof, shared_, dx, grads.shared_up, grads.shared_down, dout, x, w.shared_up, w.shared_down, N,
                   C, d_.d_shared);
  }

 private:
  MoeShape shape(i64 N) const { return {N, d_.d_model, d_.n_experts, d_.top_k, d_.d_expert}; }
  template <typename F>
  static void run(Profiler* prof, const char* name, F&& f) {
    auto t = timed(prof, name);
    f();
  }

  MoeKernels<T>& k_;
  ThreadPool& par_;
  MoeDims d_;
  // forward state (shapes as in moe_kernels.hpp)
  std::vector<T> logits_, probs_, lse_, weight_, aux_scale_, x_perm_, gate_up_, h_, y_perm_;
  std::vector<int32_t> index_, counts_, offsets_, slot_, row_source_;
  T losses_[2] = {0, 0};
  FfnActivations<T> shared_;
  // backward scratch
  std::vector<T> d_y_perm_, d_weight_, d_h_, d_gate_up_, d_x_perm_, d_logits_, scaled_aux_;
};

}  // namespace moejit::runtime
