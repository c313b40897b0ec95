// The reference backend: process memory and the plain C++ loops of ops.hpp, attention.hpp and
// reference_moe_kernels.hpp. In double it is the oracle of the gradient checks; in float the
// trainer's portable backend. The host backend (host_step_backend.hpp) derives from it and replaces
// the ops it has tuned kernels for.
#pragma once
#include <cmath>

#include "attention.hpp"
#include "ops.hpp"
#include "optim/adamw.h"
#include "reference_moe_kernels.hpp"
#include "step_backend.hpp"

namespace moejit::runtime {

// Buffers in process memory, 64-byte aligned, poisoned with 0xff bytes (NaN in every float type,
// -1 in i32) so that an op reading what nobody wrote shows up in the results.
namespace process_memory {
void* allocate(DType dtype, i64 count);
void release(void* data);
void copy(void* dst, const void* src, DType dtype, i64 count);
void zero(TypedPtr p, i64 count);
void convert(TypedPtr dst, TypedPtr src, i64 count);
}  // namespace process_memory

// The coefficients of one step's AdamW update (templates/optim/adamw.h, the one update every backend
// runs), the clipping factor from the global gradient norm `norm`.
template <typename T>
AdamWCoefs<T> adamw_coefs(const AdamWStep& s, double norm);

// AdamW over [begin, end) in T; the reference runs it over every segment in turn, the host backend
// over chunks in parallel (elementwise: the same bits).
template <typename T>
inline void adamw_range(T* p, T* m, T* v, const T* g, i64 begin, i64 end, bool decay, const AdamWCoefs<T>& k) {
  for (i64 i = begin; i < end; ++i) adamw_update(p[i], m[i], v[i], g[i], decay, k);
}

// The sum of squares of g[begin, end) in double whatever T is (a sum of millions of squares).
template <typename T>
inline double sum_squares(const T* g, i64 begin, i64 end) {
  double sum = 0;
  for (i64 i = begin; i < end; ++i) sum += double(g[i]) * double(g[i]);
  return sum;
}

template <typename T>
class ReferenceStepBackend : public StepBackend<T> {
 public:
  explicit ReferenceStepBackend(ThreadPool& par) : par_(par), moe_(par) {}

  std::string name() const override { return "reference"; }
  Precision precision() const override { return {dtype_of<T>(), dtype_of<T>()}; }
  MoeKernels<T>& moe() override { return moe_; }
  // None: every op is a plain loop, nothing is looked up in the tuning cache.
  std::vector<KernelChoice> kernel_choices() const override { return {}; }
  ThreadPool& parallel() { return par_; }

  // BackendMemory: process memory.
  bool host_memory() const override { return true; }
  void copy_from_host(TypedPtr dst, const void* src, i64 count) override {
    process_memory::copy(dst.data, src, dst.dtype, count);
  }
  void copy_to_host(void* dst, TypedPtr src, i64 count) override {
    process_memory::copy(dst, src.data, src.dtype, count);
  }
  void zero(TypedPtr p, i64 count) override { process_memory::zero(p, count); }
  void convert(TypedPtr dst, TypedPtr src, i64 count) override { process_memory::convert(dst, src, count); }

  void matmul_fwd(TypedPtr out, TypedPtr in, TypedPtr w, i64 N, i64 C, i64 OC) override {
    matmul_forward(par_, out.as<T>(), in.as<T>(), w.as<T>(), N, C, OC);
  }
  void matmul_bwd(TypedPtr d_in, bool accumulate, TypedPtr d_w, TypedPtr d_out, TypedPtr in, TypedPtr w, i64 N, i64 C,
                  i64 OC) override {
    if (d_in && !accumulate) zero(d_in, N * C);
    matmul_backward(par_, d_in.as<T>(), d_w.as<T>(), d_out.as<T>(), in.as<T>(), w.as<T>(), N, C, OC);
  }
  void rope(TypedPtr qkv, i64 B, i64 S, i64 C, i64 H, bool inverse) override {
    rope_rotate(par_, qkv.as<T>(), B, S, C, H, inverse);
  }
  void attention_fwd(TypedPtr out, TypedPtr att, TypedPtr qkv, i64 B, i64 S, i64 C, i64 H, bool alibi) override {
    attention_forward(par_, out.as<T>(), att.as<T>(), qkv.as<T>(), B, S, C, H, alibi);
  }
  void attention_bwd(TypedPtr d_qkv, TypedPtr d_out, TypedPtr qkv, TypedPtr att, i64 B, i64 S, i64 C, i64 H) override {
    zero(d_qkv, B * S * 3 * C);
    attention_backward(par_, d_qkv.as<T>(), d_out.as<T>(), qkv.as<T>(), att.as<T>(), B, S, C, H);
  }
  void rmsnorm_fwd(TypedPtr out, TypedPtr rstd, TypedPtr x, TypedPtr w, i64 N, i64 C) override {
    rmsnorm_forward(out.as<T>(), rstd.as<T>(), x.as<T>(), w.as<T>(), N, C);
  }
  void rmsnorm_bwd(TypedPtr d_x, TypedPtr d_w, TypedPtr d_out, TypedPtr x, TypedPtr w, TypedPtr rstd, i64 N,
                   i64 C) override {
    rmsnorm_backward(d_x.as<T>(), d_w.as<T>(), d_out.as<T>(), x.as<T>(), w.as<T>(), rstd.as<T>(), N, C);
  }
  void embedding_fwd(TypedPtr out, TypedPtr tokens, TypedPtr wte, i64 N, i64 C) override {
    embedding_forward(out.as<T>(), tokens.as<int32_t>(), wte.as<T>(), N, C);
  }
  void embedding_bwd(TypedPtr d_wte, TypedPtr d_out, TypedPtr tokens, i64 N, i64 C) override {
    embedding_backward(d_wte.as<T>(), d_out.as<T>(), tokens.as<int32_t>(), N, C);
  }
  void cross_entropy_fwd(TypedPtr probs, TypedPtr loss, TypedPtr logits, TypedPtr targets, i64 N, i64 V) override {
    *loss.as<T>() += cross_entropy_forward(probs.as<T>(), logits.as<T>(), targets.as<int32_t>(), N, V);
  }
  void cross_entropy_bwd(TypedPtr d_logits, TypedPtr probs, TypedPtr targets, i64 N, i64 V, T scale) override {
    cross_entropy_backward(d_logits.as<T>(), probs.as<T>(), targets.as<int32_t>(), N, V, scale);
  }
  void swiglu_fwd(TypedPtr h, TypedPtr gate_up, i64 N, i64 F) override {
    swiglu_rows_forward(h.as<T>(), gate_up.as<T>(), N, F);
  }
  void swiglu_bwd(TypedPtr d_gate_up, TypedPtr d_h, TypedPtr gate_up, i64 N, i64 F) override {
    swiglu_rows_backward(d_gate_up.as<T>(), d_h.as<T>(), gate_up.as<T>(), N, F);
  }
  void add(TypedPtr out, TypedPtr in, i64 n) override {
    if (out.dtype == DType::i32) return add_n(out.as<int32_t>(), in.as<int32_t>(), n);
    add_n(out.as<T>(), in.as<T>(), n);
  }
  void scale(TypedPtr out, TypedPtr in, i64 n, T alpha) override {
    T* o = out.as<T>();
    const T* x = in.as<T>();
    for (i64 i = 0; i < n; ++i) o[i] = alpha * x[i];
  }

  void grad_norm(TypedPtr norm, TypedPtr grads, i64 n) override {
    *norm.as<T>() = T(std::sqrt(sum_squares(grads.as<T>(), 0, n)));
  }
  void adamw(TypedPtr params, TypedPtr weights, TypedPtr grads, TypedPtr m, TypedPtr v, TypedPtr norm, i64 n,
             std::span<const ParamSegment> segments, const AdamWStep& step) override;

 protected:
  void* allocate(DType dtype, i64 count) override { return process_memory::allocate(dtype, count); }
  void release(void* data) override { process_memory::release(data); }

 private:
  template <typename U>
  static void add_n(U* out, const U* in, i64 n) {
    for (i64 i = 0; i < n; ++i) out[i] += in[i];
  }

  ThreadPool& par_;
  ReferenceMoeKernels<T> moe_;
};

extern template AdamWCoefs<float> adamw_coefs<float>(const AdamWStep&, double);
extern template AdamWCoefs<double> adamw_coefs<double>(const AdamWStep&, double);
extern template class ReferenceStepBackend<float>;
extern template class ReferenceStepBackend<double>;

}  // namespace moejit::runtime
