// Host wrappers of the training step's memory-bound row and element ops: RMSNorm (norm/rmsnorm.h),
// cross-entropy (loss/cross_entropy.h) and the residual add, the per-row code the GPU wrappers run,
// a row per call (SingleLane). Work items are fixed chunks of rows (or elements) handed to the
// backend's parallel-for, so every result, d_w's and the loss's sums included, is the same for any
// thread count. JIT-compiled by Clang, whose loop vectorizer widens the rows' reductions (the loops
// carry MOEJIT_VECTORIZE), where a plain loop sums one element at a time.
// Entries (runtime/host_step_ops.cpp renders them), args by pointer as HostLaunch has them:
//   rmsnorm_fwd        out, rstd, x, w (float*), rows, C (int64): out = x rstd w, rstd per row
//   rmsnorm_bwd        d_x, dw_partials, d_out, x, w, rstd, rows, C: d_x += ...; dw_partials
//                      (chunks, C) = d_w's sum over each chunk of kStepRowChunk rows
//   cross_entropy_fwd  probs, row_loss, logits (float*), targets (int*), rows, V
//   cross_entropy_bwd  d_logits, probs (float*), targets (int*), rows, V, scale (float)
//   add                out, in (float*), n: out += in
//   sum_squares        partials (double*), g (float*), n: partials (chunks) = each chunk's sum of
//                      squares, kStepSumChunk elements (the global gradient norm's first pass)
//   adamw              p, m, v, g (float*), begin, end, decay (int64), coefs (AdamWCoefs<float>*)
#pragma once
#include "loss/cross_entropy.h"
#include "moejit/abi/host_launch.h"
#include "norm/rmsnorm.h"
#include "optim/adamw.h"

namespace moejit {

inline constexpr int64 kStepRowChunk = 32;           // rows per work item (and per d_w partial)
inline constexpr int64 kStepElementChunk = 1 << 14;  // elements per work item of the adds and AdamW
inline constexpr int64 kStepSumChunk = 1 << 16;      // elements per partial sum of squares

// Calls f(first, last) for the chunks [first, last) of [0, n), `chunk` long, on the launch's workers.
template <class F>
void for_step_chunks(const HostLaunch* launch, int64 n, int64 chunk, F&& f) {
  struct Ctx {
    F* f;
    int64 n, chunk;
  } ctx{&f, n, chunk};
  auto body = [](void* p, int, long long item) {
    const Ctx& c = *static_cast<const Ctx*>(p);
    const int64 first = item * c.chunk, last = first + c.chunk < c.n ? first + c.chunk : c.n;
    (*c.f)(first, last);
  };
  if (n > 0) launch->parallel_for(launch, (n + chunk - 1) / chunk, body, &ctx);
}

struct StepArgs {
  void** args;
  template <typename P>
  P* ptr(int i) const {
    return *static_cast<P* const*>(args[i]);
  }
  int64 num(int i) const { return *static_cast<const int64*>(args[i]); }
};

inline void rmsnorm_fwd_host(void** raw, const HostLaunch* launch) {
  const StepArgs a{raw};
  float *out = a.ptr<float>(0), *rstd = a.ptr<float>(1);
  const float *x = a.ptr<const float>(2), *w = a.ptr<const float>(3);
  const int64 C = a.num(5);
  for_step_chunks(launch, a.num(4), kStepRowChunk, [&](int64 first, int64 last) {
    for (int64 r = first; r < last; ++r) rstd[r] = rmsnorm_row(SingleLane{}, x + r * C, w, out + r * C, C, kRmsNormEps);
  });
}

inline void rmsnorm_bwd_host(void** raw, const HostLaunch* launch) {
  const StepArgs a{raw};
  float *d_x = a.ptr<float>(0), *partials = a.ptr<float>(1);
  const float *d_out = a.ptr<const float>(2), *x = a.ptr<const float>(3), *w = a.ptr<const float>(4),
              *rstd = a.ptr<const float>(5);
  const int64 C = a.num(7);
  for_step_chunks(launch, a.num(6), kStepRowChunk, [&](int64 first, int64 last) {
    float* part = partials + (first / kStepRowChunk) * C;
    for (int64 j = 0; j < C; ++j) part[j] = 0.0f;
    for (int64 r = first; r < last; ++r) {
      rmsnorm_row_bwd(SingleLane{}, d_out + r * C, x + r * C, w, rstd[r], d_x + r * C, C);
      for (int64 j = 0; j < C; ++j) part[j] += rmsnorm_dw_term(d_out[r * C + j], x[r * C + j], rstd[r]);
    }
  });
}

inline void cross_entropy_fwd_host(void** raw, const HostLaunch* launch) {
  const StepArgs a{raw};
  float *probs = a.ptr<float>(0), *row_loss = a.ptr<float>(1);
  const float* logits = a.ptr<const float>(2);
  const int* targets = a.ptr<const int>(3);
  const int64 V = a.num(5);
  for_step_chunks(launch, a.num(4), kStepRowChunk, [&](int64 first, int64 last) {
    for (int64 r = first; r < last; ++r)
      row_loss[r] = cross_entropy_row(SingleLane{}, logits + r * V, probs + r * V, targets[r], V);
  });
}

inline void cross_entropy_bwd_host(void** raw, const HostLaunch* launch) {
  const StepArgs a{raw};
  float* d_logits = a.ptr<float>(0);
  const float* probs = a.ptr<const float>(1);
  const int* targets = a.ptr<const int>(2);
  const int64 V = a.num(4);
  const float scale = *static_cast<const float*>(raw[5]);
  for_step_chunks(launch, a.num(3), kStepRowChunk, [&](int64 first, int64 last) {
    for (int64 r = first; r < last; ++r)
      cross_entropy_row_bwd(SingleLane{}, probs + r * V, d_logits + r * V, targets[r], V, scale);
  });
}

inline void add_host(void** raw, const HostLaunch* launch) {
  const StepArgs a{raw};
  float* out = a.ptr<float>(0);
  const float* in = a.ptr<const float>(1);
  for_step_chunks(launch, a.num(2), kStepElementChunk, [&](int64 first, int64 last) {
    for (int64 i = first; i < last; ++i) out[i] += in[i];
  });
}

inline void sum_squares_host(void** raw, const HostLaunch* launch) {
  const StepArgs a{raw};
  double* partials = a.ptr<double>(0);
  const float* g = a.ptr<const float>(1);
  for_step_chunks(launch, a.num(2), kStepSumChunk, [&](int64 first, int64 last) {
    double sum = 0.0;
    MOEJIT_VECTORIZE
    for (int64 i = first; i < last; ++i) sum += double(g[i]) * double(g[i]);
    partials[first / kStepSumChunk] = sum;
  });
}

inline void adamw_host(void** raw, const HostLaunch* launch) {
  const StepArgs a{raw};
  float *p = a.ptr<float>(0), *m = a.ptr<float>(1), *v = a.ptr<float>(2);
  const float* g = a.ptr<const float>(3);
  const int64 begin = a.num(4);
  const bool decay = a.num(6) != 0;
  const AdamWCoefs<float> k = *a.ptr<const AdamWCoefs<float>>(7);
  for_step_chunks(launch, a.num(5) - begin, kStepElementChunk, [&](int64 first, int64 last) {
    for (int64 i = begin + first; i < begin + last; ++i) adamw_update(p[i], m[i], v[i], g[i], decay, k);
  });
}

}  // namespace moejit
