// The runtime backend of a training step: it owns the step's buffers (process memory or device
// memory) and runs every compute op of a step as one call, so that the model's forward/backward
// (model.cpp) and the trainer are written once for every backend:
//   reference  plain C++ loops (ops.hpp, attention.hpp); in double, the oracle of the gradient checks
//   host       JIT-compiled host kernels with configs from the tuning cache (host_step_backend.hpp)
//   cuda       NVRTC kernels and cuBLASLt on device memory (cuda_step_backend.hpp: fp32 storage, bf16
//              inside the grouped GEMMs; its step equals the reference step on an H100)
//
// Types. A StepBackend<T> is templated on its master scalar T: parameters, gradients, optimizer
// state, losses and router math (float; double for the oracle). Activations and the compute copy of
// the weights are in precision().compute, which is T on the host backends and bf16 on GPUs; so the
// buffers are typed at run time (TypedPtr), never dereferenced by the model, and each op checks the
// dtypes it is given. The MoE layer's 14 kernel steps are the MoeKernels<T> part (moe()).
//
// Ordering. Ops are queued in call order and may run asynchronously (a GPU stream); nothing in the
// interface waits for them except copy_to_host(). So a step reads no value back until it is over: the
// losses and the gradient norm stay in backend memory until the trainer reads them.
//
// Buffers are row-major. Shapes in comments: N tokens (B sequences of S), C = d_model, H heads, V the
// vocabulary. "+=" marks outputs that accumulate; all others are overwritten in full.
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "common/host_device.h"  // moejit::bf16
#include "moe_kernels.hpp"
#include "moejit/error.hpp"
#include "moejit/problem.hpp"
#include "profile.hpp"

namespace moejit::runtime {

using i64 = int64_t;

template <typename T>
constexpr DType dtype_of();
template <>
constexpr DType dtype_of<float>() {
  return DType::f32;
}
template <>
constexpr DType dtype_of<double>() {
  return DType::f64;
}
template <>
constexpr DType dtype_of<int32_t>() {
  return DType::i32;
}
template <>
constexpr DType dtype_of<bf16>() {
  return DType::bf16;
}

// A pointer into backend memory with the type of its elements. Cheap to copy; owns nothing.
struct TypedPtr {
  void* data = nullptr;
  DType dtype = DType::f32;

  TypedPtr at(i64 elements) const {
    return {data ? static_cast<char*>(data) + elements * i64(dtype_bytes(dtype)) : nullptr, dtype};
  }
  explicit operator bool() const { return data != nullptr; }
  // The elements as T*; throws Error when they are not T (a wiring bug, never bad user input).
  template <typename T>
  T* as() const {
    if (data && dtype != dtype_of<T>())
      throw Error("runtime buffer holds " + std::string(to_string(dtype)) + ", the op reads it as " +
                  std::string(to_string(dtype_of<T>())));
    return static_cast<T*>(data);
  }
};

class BackendMemory;

// An allocation of backend memory, freed when the Buffer goes. Move-only.
class Buffer {
 public:
  Buffer() = default;
  Buffer(BackendMemory* owner, TypedPtr ptr, i64 count) : owner_(owner), ptr_(ptr), count_(count) {}
  Buffer(Buffer&& o) noexcept { swap(o); }
  Buffer& operator=(Buffer&& o) noexcept {
    Buffer(std::move(o)).swap(*this);
    return *this;
  }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  ~Buffer();

  TypedPtr ptr() const { return ptr_; }
  operator TypedPtr() const { return ptr_; }  // NOLINT: buffers are passed to ops as pointers
  TypedPtr at(i64 elements) const { return ptr_.at(elements); }
  template <typename T>
  T* as() const {
    return ptr_.as<T>();
  }
  i64 count() const { return count_; }
  DType dtype() const { return ptr_.dtype; }
  explicit operator bool() const { return ptr_.data != nullptr; }

 private:
  void swap(Buffer& o) noexcept {
    std::swap(owner_, o.owner_);
    std::swap(ptr_, o.ptr_);
    std::swap(count_, o.count_);
  }
  BackendMemory* owner_ = nullptr;
  TypedPtr ptr_;
  i64 count_ = 0;
};

// The memory half of a backend: allocation and copies; no arithmetic except dtype conversion.
class BackendMemory {
 public:
  virtual ~BackendMemory() = default;
  // True when buffers are plain process memory (reference, host), so TypedPtr::as<T>() may be
  // dereferenced on the CPU.
  virtual bool host_memory() const = 0;
  // Device-memory backends: the device's free bytes now (the trainer checks its estimate against
  // them); 0 for process memory, where the trainer asks the operating system.
  virtual double device_free_bytes() { return 0; }
  Buffer alloc(DType dtype, i64 count) { return Buffer(this, {allocate(dtype, count), dtype}, count); }
  // `count` elements of dst.dtype from/to process memory. copy_to_host waits for queued ops.
  virtual void copy_from_host(TypedPtr dst, const void* src, i64 count) = 0;
  virtual void copy_to_host(void* dst, TypedPtr src, i64 count) = 0;
  virtual void zero(TypedPtr p, i64 count) = 0;
  // dst = src converted to dst.dtype (e.g. the bf16 compute copy of fp32 master weights).
  virtual void convert(TypedPtr dst, TypedPtr src, i64 count) = 0;

  // Typed conveniences over the copies.
  template <typename T>
  void upload(TypedPtr dst, std::span<const T> src) {
    (void)dst.as<T>();
    copy_from_host(dst, src.data(), i64(src.size()));
  }
  template <typename T>
  std::vector<T> download(TypedPtr src, i64 count) {
    (void)src.as<T>();
    std::vector<T> v(count);
    copy_to_host(v.data(), src, count);
    return v;
  }

 protected:
  friend class Buffer;
  virtual void* allocate(DType dtype, i64 count) = 0;
  virtual void release(void* data) = 0;
};

inline Buffer::~Buffer() {
  if (owner_ && ptr_.data) owner_->release(ptr_.data);
}

// Reallocates `b` unless it holds at least `count` elements of `dtype` (the contents are undefined
// either way): activation buffers follow the batch shape without reallocating every step.
inline void ensure(Buffer& b, BackendMemory& memory, DType dtype, i64 count) {
  if (b.count() < count || b.dtype() != dtype || !b) b = memory.alloc(dtype, count);
}

// Which dtypes a backend computes and keeps state in.
struct Precision {
  DType compute;  // activations and the compute copy of the weights
  DType master;   // parameters, gradients, optimizer state, losses, router math
};

// One AdamW update with global-norm clipping (optimizer.hpp holds the hyper-parameters).
struct AdamWStep {
  double lr = 0, beta1 = 0.9, beta2 = 0.95, eps = 1e-8, weight_decay = 0.1;
  int64_t t = 1;          // the update's number, from 1 (bias correction)
  double max_norm = 1.0;  // gradients are scaled by min(1, max_norm / norm) first
};

// A slice of the flat parameter buffer and whether AdamW decays it (model.hpp's ParamTensor).
struct ParamSegment {
  int64_t offset = 0, size = 0;
  bool decay = false;
};

template <typename T>
class StepBackend : public BackendMemory {
 public:
  virtual std::string name() const = 0;  // "reference", "host", "cuda"
  // The stream a device backend queues the step on (a CUstream), where collectives over its buffers
  // (NCCL) must be queued too; null for process memory.
  virtual void* device_stream() { return nullptr; }
  // Times profiler scopes on the device where the host clock sees only the queueing (profile.hpp);
  // null: the host clock is right.
  virtual DeviceTimer* device_timer() { return nullptr; }
  virtual Precision precision() const = 0;
  virtual MoeKernels<T>& moe() = 0;
  // Every tuned kernel call of the step that ran (the MoE steps, and dense problems where the
  // backend tunes them), with its config and the tuning-cache rung that served it.
  virtual std::vector<KernelChoice> kernel_choices() const = 0;

  // ---- one training step (forward, backward, optimizer) ----
  // Brackets a step's calls, for backends that capture a step once and replay it (cuda: one CUDA
  // graph per step). Between them the step must enqueue the same work every time, with per-step
  // values (tokens, learning rate) coming through copy_from_host, and read nothing back. `refusal`
  // non-empty: this step cannot be captured, and why (it reads back or exchanges through the host).
  // A step that throws calls abandon_step() instead of end_step() (StepScope does both).
  virtual void begin_step(const std::string& refusal) { (void)refusal; }
  virtual void end_step() {}
  virtual void abandon_step() noexcept {}

  // ---- dense layers ----
  // out (N, OC) = in (N, C) . w^T, w (OC, C).
  virtual void matmul_fwd(TypedPtr out, TypedPtr in, TypedPtr w, i64 N, i64 C, i64 OC) = 0;
  // d_in (N, C) = (or += when accumulate) d_out (N, OC) . w;  d_w (OC, C) += d_out^T . in. Either
  // output may be null.
  virtual void matmul_bwd(TypedPtr d_in, bool accumulate, TypedPtr d_w, TypedPtr d_out, TypedPtr in, TypedPtr w, i64 N,
                          i64 C, i64 OC) = 0;
  // Causal self-attention, with ALiBi or without (RoPE rotates q and k before), (attention.hpp) on qkv
  // (B, S, 3C) = [q | k | v]: out (B, S, C); att (B, H, S, S) the softmax weights, kept for the
  // backward (the upper triangle is unspecified).
  virtual void attention_fwd(TypedPtr out, TypedPtr att, TypedPtr qkv, i64 B, i64 S, i64 C, i64 H, bool alibi) = 0;
  // RoPE in place on the q and k parts of qkv (B, S, 3C): each head's pairs (i, i + hd/2) rotated by
  // t * 10000^(-2i/hd) at position t; inverse: by minus that angle (the backward of a rotation).
  virtual void rope(TypedPtr qkv, i64 B, i64 S, i64 C, i64 H, bool inverse) = 0;
  // d_qkv (B, S, 3C) from d_out (B, S, C).
  virtual void attention_bwd(TypedPtr d_qkv, TypedPtr d_out, TypedPtr qkv, TypedPtr att, i64 B, i64 S, i64 C,
                             i64 H) = 0;
  // out (N, C) = x * rstd * w, rstd (N) (master dtype) kept for the backward.
  virtual void rmsnorm_fwd(TypedPtr out, TypedPtr rstd, TypedPtr x, TypedPtr w, i64 N, i64 C) = 0;
  // d_x (N, C) +=, d_w (C) +=.
  virtual void rmsnorm_bwd(TypedPtr d_x, TypedPtr d_w, TypedPtr d_out, TypedPtr x, TypedPtr w, TypedPtr rstd, i64 N,
                           i64 C) = 0;
  // out (N, C) = wte[tokens] (V, C); tokens (N) i32.  d_wte += the rows of d_out (N, C).
  virtual void embedding_fwd(TypedPtr out, TypedPtr tokens, TypedPtr wte, i64 N, i64 C) = 0;
  virtual void embedding_bwd(TypedPtr d_wte, TypedPtr d_out, TypedPtr tokens, i64 N, i64 C) = 0;
  // probs (N, V) = softmax(logits (N, V)); loss (1, master) += mean cross-entropy against targets (N).
  virtual void cross_entropy_fwd(TypedPtr probs, TypedPtr loss, TypedPtr logits, TypedPtr targets, i64 N, i64 V) = 0;
  // d_logits (N, V) = scale * (probs - onehot(target)) / N.
  virtual void cross_entropy_bwd(TypedPtr d_logits, TypedPtr probs, TypedPtr targets, i64 N, i64 V, T scale) = 0;
  // h (N, F) = silu(gate) * up of gate_up (N, 2F) = [gate | up]; the backward writes d_gate_up (N, 2F).
  virtual void swiglu_fwd(TypedPtr h, TypedPtr gate_up, i64 N, i64 F) = 0;
  virtual void swiglu_bwd(TypedPtr d_gate_up, TypedPtr d_h, TypedPtr gate_up, i64 N, i64 F) = 0;
  // The FFN's down projection backward, then the SwiGLU backward: d_h (N, F) = d_out (N, C) . w_down
  // (C, F) and d_w_down (C, F) += d_out^T . h, then d_gate_up (N, 2F) from d_h and the forward's
  // gate_up. d_h is scratch: a backend that runs the SwiGLU backward in the product's epilogue
  // overrides this and leaves it unwritten.
  virtual void ffn_down_bwd_swiglu(TypedPtr d_gate_up, TypedPtr d_h, TypedPtr d_w_down, TypedPtr d_out, TypedPtr h,
                                   TypedPtr w_down, TypedPtr gate_up, i64 N, i64 F, i64 C) {
    matmul_bwd(d_h, false, d_w_down, d_out, h, w_down, N, F, C);
    swiglu_bwd(d_gate_up, d_h, gate_up, N, F);
  }
  // out (n) += in (n): residual adds, loss accumulators (same dtype on both sides) and the MoE
  // layers' load counters (i32).
  virtual void add(TypedPtr out, TypedPtr in, i64 n) = 0;
  // out (n) = alpha * in (n).
  virtual void scale(TypedPtr out, TypedPtr in, i64 n, T alpha) = 0;

  // ---- optimizer ----
  // norm (1, master) = the L2 norm of grads (n).
  virtual void grad_norm(TypedPtr norm, TypedPtr grads, i64 n) = 0;
  // AdamW on the flat master params (n) with moments m, v, gradients scaled by min(1, max_norm /
  // norm) (norm as grad_norm wrote it); weight decay per segment; then weights (the compute copy;
  // may equal params) = params.
  virtual void adamw(TypedPtr params, TypedPtr weights, TypedPtr grads, TypedPtr m, TypedPtr v, TypedPtr norm, i64 n,
                     std::span<const ParamSegment> segments, const AdamWStep& step) = 0;
};

// A training step's bracket (StepBackend::begin_step), ended by end() or, when the step throws, by
// the destructor (abandon_step).
template <typename T>
class StepScope {
 public:
  StepScope(StepBackend<T>& backend, const std::string& refusal) : backend_(backend) { backend_.begin_step(refusal); }
  ~StepScope() {
    if (open_) backend_.abandon_step();
  }
  StepScope(const StepScope&) = delete;
  StepScope& operator=(const StepScope&) = delete;
  void end() {
    open_ = false;
    backend_.end_step();
  }

 private:
  StepBackend<T>& backend_;
  bool open_ = true;
};

}  // namespace moejit::runtime
