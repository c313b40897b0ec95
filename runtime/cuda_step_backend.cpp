#include "cuda_step_backend.hpp"

#include <algorithm>
#include <cstdio>

#include "dense_step_kernels.hpp"
#include "ops.hpp"                     // kRmsEps
#include "optim/adamw.h"               // AdamWCoefs, the kernel's coefficients
#include "reference_step_backend.hpp"  // adamw_coefs, shared with the host backends
#include "swiglu/swiglu_spec.hpp"

namespace moejit::runtime {
namespace {

using ull = unsigned long long;
constexpr i64 kRmsChunkRows = 64;  // rows per partial column sum of RMSNorm's d_w

size_t bytes_of(TypedPtr p, i64 count) {
  return size_t(count) * dtype_bytes(p.dtype);
}

}  // namespace

CudaStepBackend::CudaStepBackend(const BackendOptions& options)
    : gpu_(),
      graph_(gpu_, [](const std::string& notice) { std::fprintf(stderr, "%s\n", notice.c_str()); }),
      timer_(gpu_, graph_),
      cache_(gpu_, options.tuning_dir),
      ops_(gpu_),
      moe_(cache_, ops_, *this),
      dense_(ops_, *this, gpu_) {
  partials_ = alloc(DType::f32, kMaxSumBlocks);
  adamw_coefs_ = alloc(DType::f32, sizeof(moejit::AdamWCoefs<float>) / sizeof(float));
}

CudaStepBackend::~CudaStepBackend() {
  gpu_.synchronize();  // nothing queued may outlive the buffers the members free
}

std::vector<KernelChoice> CudaStepBackend::kernel_choices() const {
  std::vector<KernelChoice> ran;
  for (auto& c : moe_.kernel_choices())
    if (c.config != MoeStepResolver::kNotRun) ran.push_back(c);
  for (auto& c : swiglu_log_.choices()) ran.push_back(c);
  return ran;
}

// ---- memory ----

void* CudaStepBackend::allocate(DType dtype, i64 count) {
  if (count < 0) throw Error("negative buffer size " + std::to_string(count));
  const size_t bytes = std::max<size_t>(256, (size_t(count) * dtype_bytes(dtype) + 255) / 256 * 256);
  void* p = gpu_.allocate(bytes);   // OutOfMemoryError: the trainer names what to lower
  gpu_.fill_bytes(p, 0xff, bytes);  // NaN in every float type, -1 in i32: unwritten reads show up
  graph_.buffers_changed();
  return p;
}

void CudaStepBackend::release(void* data) {
  gpu_.release(data);
  graph_.buffers_changed();
}

void CudaStepBackend::copy_from_host(TypedPtr dst, const void* src, i64 count) {
  if (count <= 0) return;
  // Eager: queued ops may still read dst. In a captured step the upload is a node of the graph.
  if (gpu_.enqueue_mode() == EnqueueLog::Mode::run) gpu_.synchronize();
  gpu_.copy_to_device(dst.data, src, bytes_of(dst, count));
}

void CudaStepBackend::copy_to_host(void* dst, TypedPtr src, i64 count) {
  if (count <= 0) return;
  gpu_.synchronize();
  gpu_.copy_to_host(dst, src.data, bytes_of(src, count));
}

void CudaStepBackend::zero(TypedPtr p, i64 count) {
  if (count > 0) gpu_.fill_bytes(p.data, 0, bytes_of(p, count));
}

void CudaStepBackend::convert(TypedPtr dst, TypedPtr src, i64 count) {
  if (count <= 0 || (dst.data == src.data && dst.dtype == src.dtype)) return;
  if (dst.dtype == src.dtype) return gpu_.copy_device_to_device(dst.data, src.data, bytes_of(dst, count));
  if (dst.dtype == DType::bf16 && src.dtype == DType::f32)
    return ops_.launch(StepOp::convert_to_bf16, blocks(StepOp::convert_to_bf16, count), 1u, dst.as<bf16>(),
                       static_cast<const float*>(src.as<float>()), ull(count));
  if (dst.dtype == DType::f32 && src.dtype == DType::bf16)
    return ops_.launch(StepOp::convert_from_bf16, blocks(StepOp::convert_from_bf16, count), 1u, dst.as<float>(),
                       static_cast<const bf16*>(src.as<bf16>()), ull(count));
  throw Error("backend cuda cannot convert " + std::string(to_string(src.dtype)) + " to " +
              std::string(to_string(dst.dtype)));
}

// ---- dense layers ----

void CudaStepBackend::rope(TypedPtr qkv, i64 B, i64 S, i64 C, i64 H, bool inverse) {
  const i64 pairs = B * S * 2 * H * (C / H / 2);
  if (pairs > 0)
    ops_.launch(StepOp::rope, blocks(StepOp::rope, pairs), 1u, qkv.as<float>(), ull(pairs), ull(S), ull(C), ull(H),
                int(inverse));
}

void CudaStepBackend::rmsnorm_fwd(TypedPtr out, TypedPtr rstd, TypedPtr x, TypedPtr w, i64 N, i64 C) {
  ops_.launch(StepOp::rmsnorm_fwd, blocks(StepOp::rmsnorm_fwd, N), 1u, out.as<float>(), rstd.as<float>(),
              static_cast<const float*>(x.as<float>()), static_cast<const float*>(w.as<float>()), unsigned(N),
              unsigned(C), float(kRmsEps));
}

void CudaStepBackend::rmsnorm_bwd(TypedPtr d_x, TypedPtr d_w, TypedPtr d_out, TypedPtr x, TypedPtr w, TypedPtr rstd,
                                  i64 N, i64 C) {
  const float *g = d_out.as<float>(), *xs = x.as<float>(), *r = rstd.as<float>();
  ops_.launch(StepOp::rmsnorm_bwd, blocks(StepOp::rmsnorm_bwd, N), 1u, d_x.as<float>(), g, xs,
              static_cast<const float*>(w.as<float>()), r, unsigned(N), unsigned(C));
  // d_w: column sums of fixed chunks of rows, then the chunks in order (no atomics).
  const i64 chunks = std::max<i64>(1, (N + kRmsChunkRows - 1) / kRmsChunkRows);
  ensure(dw_partials_, *this, DType::f32, chunks * C);
  const unsigned column_blocks = unsigned((C + kStepThreads - 1) / kStepThreads);
  ops_.launch(StepOp::rmsnorm_dw_partial, column_blocks, unsigned(chunks), dw_partials_.as<float>(), g, xs, r,
              unsigned(N), unsigned(C), unsigned(kRmsChunkRows));
  ops_.launch(StepOp::column_sum, column_blocks, 1u, d_w.as<float>(),
              static_cast<const float*>(dw_partials_.as<float>()), unsigned(chunks), unsigned(C));
}

void CudaStepBackend::embedding_fwd(TypedPtr out, TypedPtr tokens, TypedPtr wte, i64 N, i64 C) {
  ops_.launch(StepOp::embedding_fwd, blocks(StepOp::embedding_fwd, N * C), 1u, out.as<float>(),
              static_cast<const int*>(tokens.as<int32_t>()), static_cast<const float*>(wte.as<float>()), ull(N * C),
              ull(C));
}

void CudaStepBackend::embedding_bwd(TypedPtr d_wte, TypedPtr d_out, TypedPtr tokens, i64 N, i64 C) {
  ops_.launch(StepOp::embedding_bwd, blocks(StepOp::embedding_bwd, C), 1u, d_wte.as<float>(),
              static_cast<const float*>(d_out.as<float>()), static_cast<const int*>(tokens.as<int32_t>()), ull(N),
              ull(C));
}

void CudaStepBackend::cross_entropy_fwd(TypedPtr probs, TypedPtr loss, TypedPtr logits, TypedPtr targets, i64 N,
                                        i64 V) {
  ensure(row_loss_, *this, DType::f32, std::max<i64>(N, 1));
  ops_.launch(StepOp::cross_entropy_fwd, blocks(StepOp::cross_entropy_fwd, N), 1u, probs.as<float>(),
              row_loss_.as<float>(), static_cast<const float*>(logits.as<float>()),
              static_cast<const int*>(targets.as<int32_t>()), unsigned(N), unsigned(V));
  device_sum(loss.as<float>(), row_loss_.as<float>(), N, false, false, N ? 1.0f / float(N) : 0.0f);
}

void CudaStepBackend::cross_entropy_bwd(TypedPtr d_logits, TypedPtr probs, TypedPtr targets, i64 N, i64 V,
                                        float scale) {
  ops_.launch(StepOp::cross_entropy_bwd, blocks(StepOp::cross_entropy_bwd, N), 1u, d_logits.as<float>(),
              static_cast<const float*>(probs.as<float>()), static_cast<const int*>(targets.as<int32_t>()), unsigned(N),
              unsigned(V), N ? scale / float(N) : 0.0f);
}

void CudaStepBackend::swiglu_fwd(TypedPtr h, TypedPtr gate_up, i64 N, i64 F) {
  if (N == 0) return;
  const DenseKernel k = swiglu_kernel(DenseOp::swiglu_fwd, N, F);
  const KernelCache::Entry e = cache_.resolve(k.problem);
  swiglu_log_.record(k.name(), e);
  launch_swiglu_fwd(e.kernel(), k.problem, e.config(), gpu_.device(), gate_up.as<float>(), h.as<float>());
}

void CudaStepBackend::swiglu_bwd(TypedPtr d_gate_up, TypedPtr d_h, TypedPtr gate_up, i64 N, i64 F) {
  if (N == 0) return;
  const DenseKernel k = swiglu_kernel(DenseOp::swiglu_bwd, N, F);
  const KernelCache::Entry e = cache_.resolve(k.problem);
  swiglu_log_.record(k.name(), e);
  launch_swiglu_bwd(e.kernel(), k.problem, e.config(), gpu_.device(), gate_up.as<float>(), d_h.as<float>(),
                    d_gate_up.as<float>());
}

void CudaStepBackend::add(TypedPtr out, TypedPtr in, i64 n) {
  if (n <= 0) return;
  if (out.dtype == DType::i32)  // the MoE layers' load counters
    return ops_.launch(StepOp::add_i32, blocks(StepOp::add_i32, n), 1u, out.as<int32_t>(),
                       static_cast<const int32_t*>(in.as<int32_t>()), ull(n));
  ops_.launch(StepOp::add, blocks(StepOp::add, n), 1u, out.as<float>(), static_cast<const float*>(in.as<float>()),
              ull(n));
}

void CudaStepBackend::scale(TypedPtr out, TypedPtr in, i64 n, float alpha) {
  if (n > 0)
    ops_.launch(StepOp::scale, blocks(StepOp::scale, n), 1u, out.as<float>(), static_cast<const float*>(in.as<float>()),
                ull(n), alpha);
}

// ---- optimizer ----

void CudaStepBackend::device_sum(float* out, const float* in, i64 n, bool squares, bool finish_sqrt, float scale) {
  const StepOp first = squares ? StepOp::sum_squares_partials : StepOp::sum_partials;
  const unsigned g = blocks(first, n);
  ops_.launch(first, g, 1u, partials_.as<float>(), in, ull(n));
  ops_.launch(finish_sqrt ? StepOp::finish_sqrt : StepOp::finish_add_scaled, 1u, 1u, out,
              static_cast<const float*>(partials_.as<float>()), g, scale);
}

void CudaStepBackend::grad_norm(TypedPtr norm, TypedPtr grads, i64 n) {
  device_sum(norm.as<float>(), grads.as<float>(), n, true, true, 1.0f);
}

void CudaStepBackend::adamw(TypedPtr params, TypedPtr weights, TypedPtr grads, TypedPtr m, TypedPtr v, TypedPtr norm,
                            i64 n, std::span<const ParamSegment> segments, const AdamWStep& step) {
  // The clip factor comes from the device-side norm inside the kernel; adamw_coefs fills the rest.
  // They change every step (learning rate, bias corrections), so the kernels read them from device
  // memory: an upload, which a captured step replays from its staging slot.
  const AdamWCoefs<float> k = adamw_coefs<float>(step, 0.0);  // clip 1: the kernel scales by its own
  copy_from_host(adamw_coefs_.ptr(), &k, adamw_coefs_.count());
  const auto* coefs = reinterpret_cast<const AdamWCoefs<float>*>(adamw_coefs_.ptr().data);
  i64 covered = 0;
  for (const ParamSegment& seg : segments) {
    covered += seg.size;
    if (seg.size == 0) continue;
    ops_.launch(StepOp::adamw, blocks(StepOp::adamw, seg.size), 1u, params.as<float>(), weights.as<float>(),
                static_cast<const float*>(grads.as<float>()), m.as<float>(), v.as<float>(),
                static_cast<const float*>(norm.as<float>()), float(step.max_norm), ull(seg.offset),
                ull(seg.offset + seg.size), int(seg.decay), coefs);
  }
  // The kernel writes the compute copy of every element it updates; the segments cover the params.
  if (covered != n)
    throw Error("AdamW segments cover " + std::to_string(covered) + " of " + std::to_string(n) + " parameters");
}

}  // namespace moejit::runtime
