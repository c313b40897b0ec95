#include "host_step_backend.hpp"

namespace moejit::runtime {

HostStepBackend::HostStepBackend(ThreadPool& par, const BackendOptions& options)
    : ReferenceStepBackend<float>(par),
      kernels_({options.kernel_threads, options.tuning_dir}),
      moe_(kernels_),
      dense_(kernels_),
      steps_(kernels_.backend()) {}

std::vector<KernelChoice> HostStepBackend::kernel_choices() const {
  std::vector<KernelChoice> ran;
  for (auto& c : moe_.kernel_choices())
    if (c.config != JitHostMoeKernels::kNotRun) ran.push_back(c);
  for (auto& c : dense_.choices()) ran.push_back(c);
  return ran;
}

void HostStepBackend::grad_norm(TypedPtr norm, TypedPtr grads, i64 n) {
  *norm.as<float>() = float(std::sqrt(steps_.sum_squares(grads.as<float>(), n)));
}

void HostStepBackend::adamw(TypedPtr params, TypedPtr weights, TypedPtr grads, TypedPtr m, TypedPtr v, TypedPtr norm,
                            i64 n, std::span<const ParamSegment> segments, const AdamWStep& step) {
  const AdamWCoefs<float> k = adamw_coefs<float>(step, double(*norm.as<float>()));
  for (const ParamSegment& seg : segments)
    steps_.adamw(params.as<float>(), m.as<float>(), v.as<float>(), grads.as<float>(), seg.offset, seg.offset + seg.size,
                 seg.decay, k);
  convert(weights, params, n);
}

}  // namespace moejit::runtime
