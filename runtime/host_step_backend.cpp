#include "host_step_backend.hpp"

namespace moejit::runtime {

HostStepBackend::HostStepBackend(ThreadPool& par, const BackendOptions& options)
    : ReferenceStepBackend<float>(par),
      kernels_({options.kernel_threads, options.tuning_dir}),
      moe_(kernels_),
      dense_(kernels_, par) {}

std::vector<KernelChoice> HostStepBackend::kernel_choices() const {
  std::vector<KernelChoice> ran;
  for (auto& c : moe_.kernel_choices())
    if (c.config != JitHostMoeKernels::kNotRun) ran.push_back(c);
  for (auto& c : dense_.choices()) ran.push_back(c);
  return ran;
}

namespace {
constexpr i64 kNormBlock = 1 << 16;
}

void HostStepBackend::grad_norm(TypedPtr norm, TypedPtr grads, i64 n) {
  const float* g = grads.as<float>();
  partial_.assign((n + kNormBlock - 1) / kNormBlock, 0.0);
  parallel().for_range(i64(partial_.size()), 1, [&](i64 first, i64 last) {
    for (i64 b = first; b < last; ++b) partial_[b] = sum_squares(g, b * kNormBlock, std::min(n, (b + 1) * kNormBlock));
  });
  double sum = 0;
  for (double s : partial_) sum += s;
  *norm.as<float>() = float(std::sqrt(sum));
}

void HostStepBackend::adamw(TypedPtr params, TypedPtr weights, TypedPtr grads, TypedPtr m, TypedPtr v, TypedPtr norm,
                            i64 n, std::span<const ParamSegment> segments, const AdamWStep& step) {
  const AdamWCoefs<float> k = AdamWCoefs<float>::make(step, double(*norm.as<float>()));
  for (const ParamSegment& seg : segments)
    parallel().for_range(seg.size, 1 << 14, [&](i64 b, i64 e) {
      adamw_range(params.as<float>(), m.as<float>(), v.as<float>(), grads.as<float>(), seg.offset + b, seg.offset + e,
                  seg.decay, k);
    });
  convert(weights, params, n);
}

}  // namespace moejit::runtime
