#include "swiglu_workload.hpp"

#include <cmath>
#include <cstring>
#include <random>

#include "common/host_device.h"
#include "swiglu/swiglu_spec.hpp"

namespace moejit {
namespace {

// Host copies of a tensor in the problem's dtype, plus their exact values as doubles.
struct HostTensor {
  std::vector<char> bytes;
  std::vector<double> values;
};

HostTensor random_tensor(DType dtype, size_t count, std::mt19937_64& rng) {
  std::uniform_real_distribution<float> dist(-4.0f, 4.0f);
  HostTensor t;
  t.bytes.resize(count * dtype_bytes(dtype));
  t.values.resize(count);
  for (size_t i = 0; i < count; ++i) {
    float x = dist(rng);
    if (dtype == DType::bf16) {
      bf16 b = from_float<bf16>(x);
      std::memcpy(t.bytes.data() + i * 2, &b, 2);
      t.values[i] = to_float(b);
    } else {
      std::memcpy(t.bytes.data() + i * 4, &x, 4);
      t.values[i] = x;
    }
  }
  return t;
}

double value_at(DType dtype, const std::vector<char>& bytes, size_t i) {
  if (dtype == DType::f32) {
    float f;
    std::memcpy(&f, bytes.data() + i * 4, 4);
    return f;
  }
  bf16 b;
  std::memcpy(&b, bytes.data() + i * 2, 2);
  return to_float(b);
}

double sigmoid(double x) {
  return 1.0 / (1.0 + std::exp(-x));
}

DeviceBuffer upload(Backend& backend, const std::vector<char>& bytes) {
  return DeviceBuffer::from(backend, bytes);
}

}  // namespace

size_t SwigluWorkload::bytes_per_copy(const Problem& p) const {
  const size_t rows = static_cast<size_t>(SwigluSpec::rows(p)), f = static_cast<size_t>(p.d_expert);
  const size_t elements = backward_ ? rows * f * 5 : rows * f * 3;
  return elements * dtype_bytes(p.dtype);
}

void SwigluWorkload::prepare(Backend& backend, const Problem& problem, int copies) {
  backend_ = &backend;
  problem_ = problem;
  sets_.clear();
  const size_t rows = static_cast<size_t>(SwigluSpec::rows(problem)), f = static_cast<size_t>(problem.d_expert);
  std::mt19937_64 rng(0x5eed0000u + (backward_ ? 1 : 0));
  HostTensor gate_up = random_tensor(problem.dtype, rows * 2 * f, rng);
  HostTensor dh = random_tensor(problem.dtype, backward_ ? rows * f : 0, rng);
  for (int c = 0; c < copies; ++c) {
    Set set;
    set.gate_up = upload(backend, gate_up.bytes);
    if (backward_) set.dh = upload(backend, dh.bytes);
    set.out = DeviceBuffer(backend, (backward_ ? 2 : 1) * rows * f * dtype_bytes(problem.dtype));
    sets_.push_back(std::move(set));
  }
  reference_.assign((backward_ ? 2 : 1) * rows * f, 0.0);
  for (size_t r = 0; r < rows; ++r) {
    for (size_t c = 0; c < f; ++c) {
      const double g = gate_up.values[r * 2 * f + c], u = gate_up.values[r * 2 * f + f + c];
      const double s = sigmoid(g);
      if (!backward_) {
        reference_[r * f + c] = g * s * u;
      } else {
        const double h = dh.values[r * f + c];
        reference_[r * 2 * f + c] = h * u * s * (1.0 + g * (1.0 - s));
        reference_[r * 2 * f + f + c] = h * g * s;
      }
    }
  }
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
  const size_t width = (backward_ ? 2 : 1) * static_cast<size_t>(problem_.d_expert);
  CheckResult result;
  result.ok = true;
  for (size_t i = 0; i < reference_.size(); ++i) {
    const double got = value_at(problem_.dtype, out, i), want = reference_[i];
    const double error = std::fabs(got - want);
    const bool bad = !(error <= abs_tol + std::fabs(want) * eps);  // NaN fails too
    if (bad && result.ok) {
      result.detail = "out[" + std::to_string(i / width) + ", " + std::to_string(i % width) +
                      "] = " + std::to_string(got) + ", expected " + std::to_string(want);
    }
    if (bad) result.ok = false;
    if (!std::isnan(result.max_error) && !(error <= result.max_error)) result.max_error = error;  // NaN sticks
  }
  return result;
}

Throughput SwigluWorkload::throughput(const Problem& problem, double time_ms) const {
  const double bytes = static_cast<double>(bytes_per_copy(problem));
  return {time_ms > 0 ? bytes / (time_ms * 1e-3) / 1e9 : 0.0, "GB/s"};
}

}  // namespace moejit
