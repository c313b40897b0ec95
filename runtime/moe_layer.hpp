// The MoE layer of the "1dense+SE" layout: out = shared_experts(x) + sum_k gate_k * expert_k(x), with
// the router of GateParams (softmax or sigmoid scores, group-limited top-K, renormalisation, routed
// scaling; docs/routing.md), an optional selection bias and capacity, and the router's aux and z losses.
// Several shared experts of width d are one SwiGLU FFN of width shared_experts * d (the same sum).
// The router projection and the shared expert are dense ops of the StepBackend; the 14 kernel steps
// (templates/moe_layer_steps.hpp) go through its MoeKernels<T>. Router values (logits, probabilities, gates,
// losses) are in the master dtype T, the permuted activations in the compute dtype.
//
// Expert parallel (expert_parallel.hpp): with an ExpertExchange the layer computes only its rank's
// experts, on the rows every rank of its group routed to them, with their weights alone (w_up and
// w_down hold its E/P experts); routing, the shared expert and the combine stay on the token's own
// rank. fp32 on host-memory backends.
#pragma once
#include <type_traits>

#include "expert_parallel.hpp"
#include "ffn.hpp"
#include "routing/routing_spec.hpp"  // route_capacity

namespace moejit::runtime {

struct MoeWeights {      // views into the model's flat weight (or gradient) buffer
  TypedPtr w_router;     // (E, C)
  TypedPtr w_up;         // (E, C, 2De), columns [gate | up]: the grouped GEMMs' W (E, K, N) layout
  TypedPtr w_down;       // (E, De, C); expert parallel: only this rank's E/P experts (sharded)
  TypedPtr shared_up;    // (2Dse, C), null without a shared expert
  TypedPtr shared_down;  // (C, Dse)
};

struct MoeDims {
  i64 d_model, n_experts, top_k, d_expert, d_shared;
  RouterLossCoefs coefs{};       // the router losses (ModelConfig aux/z/seq_aux_loss_coef, seq_len)
  GateParams gate{};             // scores, renormalisation, scaling, groups
  double capacity_factor = 0.0;  // > 0: at most ceil(factor * N * K / E) rows per expert; the rest drop
};

// Choices per expert of the tokens forwarded since MoeLayer::zero_stats() (the step's), and how many
// of them the capacity dropped.
struct MoeLoadStats {
  std::vector<int32_t> load, dropped;  // (E)
  i64 tokens = 0;
};

template <typename T>
class MoeLayer {
 public:
  // `experts`: the expert-parallel exchange (null: this rank computes every expert).
  MoeLayer(StepBackend<T>& backend, MoeDims dims, ExpertExchange* experts = nullptr)
      : be_(backend), k_(backend.moe()), d_(dims), ep_(experts) {
    if (ep_ && !(std::is_same_v<T, float> && be_.host_memory()))
      throw Error("expert parallelism moves host fp32 buffers over MPI: use the reference or host backend");
  }

  // out (N, C) = layer(x (N, C)); keeps what the backward needs; losses() valid after. bias (E): the
  // selection bias (null: none). Adds the routing's loads to the step's statistics.
  void forward(Profiler* prof, TypedPtr out, TypedPtr x, i64 N, const MoeWeights& w, TypedPtr bias = {}) {
    const MoeShape s = shape(N);
    allocate_forward(s);
    const i64 C = d_.d_model, E = d_.n_experts;
    run(prof, "moe.router", [&] { be_.matmul_fwd(logits_, x, w.w_router, N, C, E); });
    run(prof, "moe.gate_fwd",
        [&] { k_.gate_fwd(s, d_.gate, m(bias), i32(index_), m(weight_), m(probs_), m(lse_), m(logits_)); });
    run(prof, "moe.plan", [&] {
      k_.plan(s, d_.coefs, capacity(N), i32(counts_), i32(dropped_), i32(offsets_), i32(slot_), i32(row_source_),
              m(aux_scale_), m(losses_), i32(index_), m(probs_), m(lse_));
    });
    be_.add(load_, counts_, E);
    be_.add(dropped_sum_, dropped_, E);
    stat_tokens_ += N;
    run(prof, "moe.permute_fwd", [&] { k_.permute_fwd(s, a(x_perm_), a(x), i32(slot_)); });
    const ExpertRows r = dispatch(prof, s, x_perm_);
    run(prof, "moe.up_swiglu", [&] { k_.up_swiglu(r.s, a(r.gate_up), a(r.h), a(r.x), a(w.w_up), i32(r.offsets)); });
    run(prof, "moe.down_fwd", [&] { k_.down_fwd(r.s, a(r.y), a(r.h), a(w.w_down), i32(r.offsets)); });
    combine(prof, r.y, y_perm_);
    if (d_.d_shared) ffn_forward(be_, prof, shared_, out, x, w.shared_up, w.shared_down, N, C, d_.d_shared);
    run(prof, "moe.combine_fwd",
        [&] { k_.combine_fwd(s, a(out), d_.d_shared ? a(out) : nullptr, a(y_perm_), m(weight_), i32(slot_)); });
  }

  // Tokens per sequence of the batches to come (the sequence-wise aux loss averages over them).
  void set_sequence_tokens(i64 S) { d_.coefs.seq_tokens = S; }

  // The router losses of the last forward, (2) = {aux, z} in backend memory, weighted by their
  // coefficients (the routing kernels' convention: the plan applies LossParams).
  TypedPtr losses() const { return losses_; }
  TypedPtr offsets() const { return offsets_; }  // (E + 1) i32

  // The step's statistics: zeroed here, summed by every forward, read after the step (waits).
  void zero_stats() {
    ensure(load_, be_, DType::i32, d_.n_experts);
    ensure(dropped_sum_, be_, DType::i32, d_.n_experts);
    be_.zero(load_, d_.n_experts);
    be_.zero(dropped_sum_, d_.n_experts);
    stat_tokens_ = 0;
  }
  MoeLoadStats read_stats() {
    return {be_.template download<int32_t>(load_, d_.n_experts),
            be_.template download<int32_t>(dropped_sum_, d_.n_experts), stat_tokens_};
  }
  // Auxiliary-loss-free balancing: bias (E) += rate * sign(mean load - load_e) over the step's loads.
  void update_bias(TypedPtr bias, T rate) { k_.bias_update(shape(stat_tokens_), m(bias), i32(load_), rate); }

  // dx (N, C) += ...; grads += .... loss_scale multiplies every gradient (d_out already carries it;
  // the router losses' terms get it here).
  void backward(Profiler* prof, TypedPtr dx, const MoeWeights& grads, TypedPtr dout, TypedPtr x, i64 N,
                const MoeWeights& w, T loss_scale) {
    const MoeShape s = shape(N);
    allocate_backward(s);
    const i64 C = d_.d_model, E = d_.n_experts;
    run(prof, "moe.combine_bwd",
        [&] { k_.combine_bwd(s, a(d_y_perm_), m(d_weight_), a(dout), a(y_perm_), m(weight_), i32(slot_)); });
    const ExpertRows r = dispatch(prof, s, d_y_perm_, true);
    run(prof, "moe.down_wgrad", [&] { k_.down_wgrad(r.s, m(grads.w_down), a(r.h), a(r.d_y), i32(r.offsets)); });
    run(prof, "moe.down_dgrad", [&] {  // with the SwiGLU backward (fused into the product on the host)
      k_.down_dgrad_swiglu(r.s, a(r.d_gate_up), a(r.d_h), a(r.d_y), a(w.w_down), a(r.gate_up), i32(r.offsets));
    });
    run(prof, "moe.up_dgrad", [&] { k_.up_dgrad(r.s, a(r.d_x), a(r.d_gate_up), a(w.w_up), i32(r.offsets)); });
    run(prof, "moe.up_wgrad", [&] { k_.up_wgrad(r.s, m(grads.w_up), a(r.x), a(r.d_gate_up), i32(r.offsets)); });
    combine(prof, r.d_x, d_x_perm_);
    run(prof, "moe.permute_bwd", [&] { k_.permute_bwd(s, a(dx), a(d_x_perm_), i32(slot_)); });
    be_.scale(scaled_aux_, aux_scale_, E * d_.coefs.aux_rows(N), loss_scale);
    // z_scale = 2 z_coef / N (route_z_scale), times the loss scale.
    const T z_scale = N ? loss_scale * T(2 * d_.coefs.z_coef) / T(N) : T(0);
    run(prof, "moe.gate_bwd", [&] {
      k_.gate_bwd(s, d_.gate, m(d_logits_), m(logits_), i32(index_), m(d_weight_), m(scaled_aux_), z_scale,
                  d_.coefs.kernel_seq_tokens());
    });
    run(prof, "moe.router", [&] { be_.matmul_bwd(dx, true, grads.w_router, d_logits_, x, w.w_router, N, C, E); });
    if (d_.d_shared)
      ffn_backward(be_, prof, shared_, dx, true, grads.shared_up, grads.shared_down, dout, x, w.shared_up,
                   w.shared_down, N, C, d_.d_shared);
  }

 private:
  MoeShape shape(i64 N) const { return {N, d_.d_model, d_.n_experts, d_.top_k, d_.d_expert}; }
  // The routing kernels' per-expert capacity: ceil(factor * N * K / E), -1: none.
  int capacity(i64 N) const {
    return route_capacity(d_.capacity_factor,
                          Problem(Family::route_plan, DType::f32, RoutingShape{d_.n_experts, d_.top_k, d_.d_model}, N));
  }

  // The rows the expert GEMMs run on: this rank's permuted rows for every expert, or (expert
  // parallel) the rows of its own experts gathered from the group, with their own shape and offsets.
  struct ExpertRows {
    MoeShape s;
    TypedPtr offsets, x, gate_up, h, y;  // forward
    TypedPtr d_y, d_h, d_gate_up, d_x;   // backward
  };
  ExpertRows own_rows(const MoeShape& s) const {
    return {s, offsets_, x_perm_, gate_up_, h_, y_perm_, d_y_perm_, d_h_, d_gate_up_, d_x_perm_};
  }
  // The forward plans the exchange and sends x_perm; the backward reuses the plan and sends d_y_perm.
  ExpertRows dispatch(Profiler* prof, const MoeShape& s, TypedPtr rows, bool backward = false) {
    if (!ep_) return own_rows(s);
    const i64 C = d_.d_model, F = d_.d_expert;
    auto t = timed(prof, "moe.dispatch");
    if (!backward) {
      const i64 M = ep_->plan(offsets_.as<int32_t>());
      local_shape_ = {M, C, ep_->local_experts(), 1, F};
      ensure(local_offsets_, be_, DType::i32, ep_->local_experts() + 1);
      be_.upload(local_offsets_, std::span<const int32_t>(ep_->local_offsets()));
    }
    const i64 M = local_shape_.tokens;
    const DType act = be_.precision().compute;
    for (auto [b, n] :
         {std::pair{&x_local_, M * C}, {&gate_up_local_, M * 2 * F}, {&h_local_, M * F}, {&y_local_, M * C}})
      if (!backward) ensure(*b, be_, act, n);
    for (auto [b, n] :
         {std::pair{&d_y_local_, M * C}, {&d_h_local_, M * F}, {&d_gate_up_local_, M * 2 * F}, {&d_x_local_, M * C}})
      if (backward) ensure(*b, be_, act, n);
    ep_->dispatch(rows.as<float>(), (backward ? d_y_local_ : x_local_).as<float>(), C);
    return {local_shape_, local_offsets_, x_local_,   gate_up_local_,   h_local_,
            y_local_,     d_y_local_,     d_h_local_, d_gate_up_local_, d_x_local_};
  }
  void combine(Profiler* prof, TypedPtr local, TypedPtr rows) {
    if (!ep_) return;
    auto t = timed(prof, "moe.combine");
    ep_->combine(local.as<float>(), rows.as<float>(), d_.d_model);
  }
  template <typename F>
  static void run(Profiler* prof, const char* name, F&& f) {
    auto t = timed(prof, name);
    f();
  }
  // MoeKernels<T> takes typed pointers: router values in T, activations in T as well until the
  // kernels take the compute dtype separately (the GPU backend's bf16 activations).
  static T* m(TypedPtr p) { return p.as<T>(); }  // null stays null
  static T* a(TypedPtr p) { return p.as<T>(); }
  static int32_t* i32(TypedPtr p) { return p.as<int32_t>(); }

  void allocate_forward(const MoeShape& s) {
    const i64 N = s.tokens, A = s.assignments(), C = d_.d_model, E = d_.n_experts, F = d_.d_expert;
    const DType act = be_.precision().compute, master = be_.precision().master;
    for (auto [b, n] : {std::pair{&logits_, N * E},
                        {&probs_, N * E},
                        {&lse_, N},
                        {&weight_, A},
                        {&aux_scale_, E * d_.coefs.aux_rows(N)},
                        {&losses_, i64(2)}})
      ensure(*b, be_, master, n);
    for (auto [b, n] :
         {std::pair{&index_, A}, {&counts_, E}, {&dropped_, E}, {&offsets_, E + 1}, {&slot_, A}, {&row_source_, A}})
      ensure(*b, be_, DType::i32, n);
    if (!load_) zero_stats();
    for (auto [b, n] : {std::pair{&x_perm_, A * C}, {&gate_up_, A * 2 * F}, {&h_, A * F}, {&y_perm_, A * C}})
      ensure(*b, be_, act, n);
  }
  void allocate_backward(const MoeShape& s) {
    const i64 N = s.tokens, A = s.assignments(), C = d_.d_model, E = d_.n_experts, F = d_.d_expert;
    const DType act = be_.precision().compute, master = be_.precision().master;
    for (auto [b, n] : {std::pair{&d_weight_, A}, {&d_logits_, N * E}, {&scaled_aux_, E * d_.coefs.aux_rows(N)}})
      ensure(*b, be_, master, n);
    for (auto [b, n] : {std::pair{&d_y_perm_, A * C}, {&d_h_, A * F}, {&d_gate_up_, A * 2 * F}, {&d_x_perm_, A * C}})
      ensure(*b, be_, act, n);
  }

  StepBackend<T>& be_;
  MoeKernels<T>& k_;
  MoeDims d_;
  ExpertExchange* ep_;
  // expert parallel: the local rows (shape (M, ...), M = local_shape_.tokens) and their offsets
  MoeShape local_shape_{};
  Buffer local_offsets_, x_local_, gate_up_local_, h_local_, y_local_;
  Buffer d_y_local_, d_h_local_, d_gate_up_local_, d_x_local_;
  // forward state (shapes as in moe_kernels.hpp)
  Buffer logits_, probs_, lse_, weight_, aux_scale_, losses_, x_perm_, gate_up_, h_, y_perm_;
  Buffer index_, counts_, dropped_, offsets_, slot_, row_source_;
  // the step's statistics (zero_stats)
  Buffer load_, dropped_sum_;
  i64 stat_tokens_ = 0;
  FfnActivations shared_;
  // backward scratch
  Buffer d_y_perm_, d_weight_, d_h_, d_gate_up_, d_x_perm_, d_logits_, scaled_aux_;
};

}  // namespace moejit::runtime
