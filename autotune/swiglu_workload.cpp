#include "swiglu_workload.hpp"

#include <cmath>
#include <cstring>

#include "common/host_device.h"
#include "swiglu/swiglu_spec.hpp"
#include "workload_data.hpp"

namespace moejit {
namespace {

double sigmoid(double x) {
  return 1.0 / (1.0 + std::exp(-x));
}

DeviceBuffer upload(Backend& backend, const std::vector<char>& bytes) {
  return DeviceBuffer::from(backend, bytes);
}

}  // namespace

size_t SwigluWorkload::bytes_per_copy(const Problem& p) const {
  const size_t rows = static_cast<size_t>(p.rows()), f = static_cast<size_t>(p.row_shape().width);
  const size_t elements = backward_ ? rows * f * 5 : rows * f * 3;
  return elements * dtype_bytes(p.dtype);
}

void SwigluWorkload::prepare(Backend& backend, const Problem& problem, int copies, std::shared_ptr<ThreadPool> cpu) {
  backend_ = &backend;
  cpu_ = std::move(cpu);
  problem_ = problem;
  sets_.clear();
  const size_t rows = static_cast<size_t>(problem.rows()), f = static_cast<size_t>(problem.row_shape().width);
  const DType dt = problem.dtype;
  gate_up_ = random_tensor(*cpu_, dt, rows * 2 * f, 0x5eed0000u + (backward_ ? 1 : 0), -4.0f, 4.0f);
  dh_ = random_tensor(*cpu_, dt, backward_ ? rows * f : 0, 0x5eed0100u, -4.0f, 4.0f);
  for (int c = 0; c < copies; ++c) {
    Set set;
    set.gate_up = upload(backend, gate_up_);
    if (backward_) set.dh = upload(backend, dh_);
    set.out = DeviceBuffer(backend, (backward_ ? 2 : 1) * rows * f * dtype_bytes(dt));
    sets_.push_back(std::move(set));
  }
}

// Output element (r, c) in double from set 0's rounded inputs: silu(g) u forward; backward, the
// gate's gradient for c < F and the up-projection's for c >= F.
double SwigluWorkload::expected(size_t r, size_t c) const {
  const DType dt = problem_.dtype;
  const size_t f = static_cast<size_t>(problem_.row_shape().width), j = c % f;
  const double g = value_at(dt, gate_up_, r * 2 * f + j), u = value_at(dt, gate_up_, r * 2 * f + f + j);
  const double s = sigmoid(g);
  if (!backward_) return g * s * u;
  const double h = value_at(dt, dh_, r * f + j);
  return c < f ? h * u * s * (1.0 + g * (1.0 - s)) : h * g * s;
}

void SwigluWorkload::run(LoadedCandidate& candidate, int copy) {
  Set& set = sets_[static_cast<size_t>(copy) % sets_.size()];
  Kernel& kernel = *candidate.kernels.at(0);
  if (backward_)
    launch_swiglu_bwd(kernel, problem_, candidate.config, backend_->device(), set.gate_up.get(), set.dh.get(),
                      set.out.get());
  else
    launch_swiglu_fwd(kernel, problem_, candidate.config, backend_->device(), set.gate_up.get(), set.out.get());
}

CheckResult SwigluWorkload::check(LoadedCandidate& candidate) {
  Set& set = sets_.at(0);
  set.out.fill(0xFF);  // NaN in both dtypes: an element the kernel does not write fails
  run(candidate, 0);
  backend_->synchronize();
  const std::vector<char> out = set.out.to_host<char>();
  const double abs_tol = 1e-5, eps = problem_.dtype == DType::bf16 ? 1.0 / 128 : 1e-5;
  const size_t width = (backward_ ? 2 : 1) * static_cast<size_t>(problem_.row_shape().width);
  const int64_t n = static_cast<int64_t>(out.size() / dtype_bytes(problem_.dtype));
  return check_in_parallel(*cpu_, n, [&](int64_t begin, int64_t end, CheckResult& part) {
    for (int64_t i = begin; i < end; ++i) {
      const size_t r = static_cast<size_t>(i) / width, c = static_cast<size_t>(i) % width;
      const double got = value_at(problem_.dtype, out, static_cast<size_t>(i)), want = expected(r, c);
      const double error = std::fabs(got - want);
      if (!(error <= abs_tol + std::fabs(want) * eps) && part.ok)  // NaN fails too
        part.ok = false, part.detail = "out[" + std::to_string(r) + ", " + std::to_string(c) +
                                       "] = " + std::to_string(got) + ", expected " + std::to_string(want);
      if (!std::isnan(part.max_error) && !(error <= part.max_error)) part.max_error = error;  // NaN sticks
    }
  });
}

Throughput SwigluWorkload::throughput(const Problem& problem, double time_ms) const {
  const double bytes = static_cast<double>(bytes_per_copy(problem));
  return {time_ms > 0 ? bytes / (time_ms * 1e-3) / 1e9 : 0.0, "GB/s"};
}

}  // namespace moejit
