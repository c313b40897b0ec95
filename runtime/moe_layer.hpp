// The MoE layer of the "1dense+SE" layout: out = shared_expert(x) + sum_k gate_k * expert_k(x), with a
// softmax router over all E experts, top-K without renormalisation, and the router's aux and z losses.
// Every step goes through MoeKernels<T>, so the backend (reference, JIT host, GPU) is a parameter.
#pragma once
#include <vector>

#include "ffn.hpp"
#include "moe_kernels.hpp"

namespace moejit::runtime {

template <typename T>
struct MoeWeights {  // T = float or const float; pointers into the model's flat parameter buffer
  T* w_router;       // (E, C)
  T* w_up;           // (E, 2De, C)
  T* w_down;         // (E, C, De)
  T* shared_up;      // (2Dse, C), null without a shared expert
  T* shared_down;    // (C, Dse)
};

struct MoeDims {
  i64 d_model, n_experts, top_k, d_expert, d_shared;
};

template <typename T>
class MoeLayer {
 public:
  MoeLayer(MoeKernels<T>& kernels, Parallel& par, MoeDims dims) : k_(kernels), par_(par), d_(dims) {}

  // out (N, C) = layer(x (N, C)); keeps what the backward needs; aux_loss()/z_loss() valid after.
  void forward(Profiler* prof, T* out, const T* x, i64 N, const MoeWeights<const T>& w) {
    MoeShape s = shape(N);
    const i64 A = s.assignments(), C = d_.d_model, E = d_.n_experts, F = d_.d_expert;
    logits_.resize(N * E);
    probs_.resize(N * E);
    expert_.resize(A);
    gate_.resize(A);
    offsets_.resize(E + 1);
    slot_.resize(A);
    token_of_row_.resize(A);
    x_perm_.resize(A * C);
    gate_up_.resize(A * 2 * F);
    h_.resize(A * F);
    y_perm_.resize(A * C);
    run(prof, "moe.router", [&] { k_.router(s, logits_.data(), x, w.w_router); });
    run(prof, "moe.gate_topk", [&] { k_.gate_topk(s, probs_.data(), expert_.data(), gate_.data(), logits_.data()); });
    run(prof, "moe.route", [&] { k_.route(s, offsets_.data(), slot_.data(), token_of_row_.data(), expert_.data()); });
    run(prof, "moe.router_losses",
        [&] { k_.router_losses(s, losses_, probs_.data(), logits_.data(), offsets_.data()); });
    run(prof, "moe.permute", [&] { k_.permute(s, x_perm_.data(), x, token_of_row_.data()); });
    run(prof, "moe.expert_up_swiglu",
        [&] { k_.expert_up_swiglu(s, gate_up_.data(), h_.data(), x_perm_.data(), w.w_up, offsets_.data()); });
    run(prof, "moe.expert_down", [&] { k_.expert_down(s, y_perm_.data(), h_.data(), w.w_down, offsets_.data()); });
    if (d_.d_shared)
      ffn_forward(par_, prof, shared_, out, x, w.shared_up, w.shared_down, N, C, d_.d_shared);
    else
      std::fill(out, out + N * C, T(0));
    run(prof, "moe.combine", [&] { k_.combine(s, out, y_perm_.data(), gate_.data(), slot_.data()); });
  }

  T aux_loss() const { return losses_[0]; }
  T z_loss() const { return losses_[1]; }
  const std::vector<int32_t>& offsets() const { return offsets_; }

  // dx (N, C) += ...; grads += .... aux_coef/z_coef: the losses' weights times the loss scale.
  void backward(Profiler* prof, T* dx, const MoeWeights<T>& grads, const T* dout, const T* x, i64 N,
                const MoeWeights<const T>& w, T aux_coef, T z_coef) {
    MoeShape s = shape(N);
    const i64 A = s.assignments(), C = d_.d_model, E = d_.n_experts, F = d_.d_expert;
    d_y_perm_.resize(A * C);
    d_gate_.resize(A);
    d_h_.resize(A * F);
    d_gate_up_.resize(A * 2 * F);
    d_x_perm_.resize(A * C);
    d_logits_.resize(N * E);
    run(prof, "moe.combine", [&] {
      k_.combine_backward(s, d_y_perm_.data(), d_gate_.data(), dout, y_perm_.data(), gate_.data(), slot_.data());
    });
    run(prof, "moe.expert_down", [&] {
      k_.expert_down_backward(s, d_h_.data(), grads.w_down, d_y_perm_.data(), h_.data(), w.w_down, offsets_.data());
    });
    run(prof, "moe.expert_up_swiglu", [&] {
      k_.expert_up_backward(s, d_x_perm_.data(), grads.w_up, d_gate_up_.data(), d_h_.data(), gate_up_.data(),
                            x_perm_.data(), w.w_up, offsets_.data());
    });
    run(prof, "moe.permute", [&] { k_.unpermute_backward(s, dx, d_x_perm_.data(), slot_.data()); });
    run(prof, "moe.gate_topk", [&] {
      k_.gate_backward(s, d_logits_.data(), d_gate_.data(), probs_.data(), logits_.data(), expert_.data(),
                       offsets_.data(), aux_coef, z_coef);
    });
    run(prof, "moe.router", [&] { k_.router_backward(s, dx, grads.w_router, d_logits_.data(), x, w.w_router); });
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
  Parallel& par_;
  MoeDims d_;
  // forward state, (shapes as in moe_kernels.hpp)
  std::vector<T> logits_, probs_, gate_, x_perm_, gate_up_, h_, y_perm_;
  std::vector<int32_t> expert_, offsets_, slot_, token_of_row_;
  T losses_[2] = {0, 0};
  FfnActivations<T> shared_;
  // backward scratch
  std::vector<T> d_y_perm_, d_gate_, d_h_, d_gate_up_, d_x_perm_, d_logits_;
};

}  // namespace moejit::runtime
