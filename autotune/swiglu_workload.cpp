#include "swiglu_workload.hpp"

#include <cmath>
#include <cstring>

#include "common/host_device.h"
#include "swiglu/swiglu_spec.hpp"
#include "workload_data.hpp"

namespace moejit {
namespace {

// Host bytes of a tensor in the problem's dtype, values in [-4, 4) from a counter-based hash of
// (seed, index): reproducible and generated in parallel.
std::vector<char> random_tensor(ThreadPool& cpu, DType dtype, size_t count, uint64_t seed) {
  std::vector<char> bytes(count * dtype_bytes(dtype));
  cpu.for_range(static_cast<int64_t>(count), 1 << 16, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const uint64_t bits = hash_bits(seed, static_cast<uint64_t>(i)) >> 40;  // 24 bits
      const float v = static_cast<float>(static_cast<double>(bits) * 0x1p-21 - 4.0);
      if (dtype == DType::bf16) {
        const bf16 b = from_float<bf16>(v);
        std::memcpy(bytes.data() + i * 2, &b, 2);
      } else {
        std::memcpy(bytes.data() + i * 4, &v, 4);
      }
    }
  });
  return bytes;
}

double sigmoid(double x) {
  return 1.0 / (1.0 + std::exp(-x));
}

DeviceBuffer upload(Backend& backend, const std::vector<char>& bytes) {
  return DeviceBuffer::from(backend, bytes);
}

// The check's findings over a range of elements; merged in index order.
struct Partial {
  int64_t first_bad = -1;
  double got = 0, want = 0, max_error = 0;
};

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
  const std::vector<char> gate_up = random_tensor(*cpu_, dt, rows * 2 * f, 0x5eed0000u + (backward_ ? 1 : 0));
  const std::vector<char> dh = random_tensor(*cpu_, dt, backward_ ? rows * f : 0, 0x5eed0100u);
  for (int c = 0; c < copies; ++c) {
    Set set;
    set.gate_up = upload(backend, gate_up);
    if (backward_) set.dh = upload(backend, dh);
    set.out = DeviceBuffer(backend, (backward_ ? 2 : 1) * rows * f * dtype_bytes(dt));
    sets_.push_back(std::move(set));
  }
  reference_.assign((backward_ ? 2 : 1) * rows * f, 0.0);
  cpu_->for_range(static_cast<int64_t>(rows), 1024, [&](int64_t begin, int64_t end) {
    for (size_t r = static_cast<size_t>(begin); r < static_cast<size_t>(end); ++r)
      for (size_t c = 0; c < f; ++c) {
        const double g = value_at(dt, gate_up, r * 2 * f + c), u = value_at(dt, gate_up, r * 2 * f + f + c);
        const double s = sigmoid(g);
        if (!backward_) {
          reference_[r * f + c] = g * s * u;
        } else {
          const double h = value_at(dt, dh, r * f + c);
          reference_[r * 2 * f + c] = h * u * s * (1.0 + g * (1.0 - s));
          reference_[r * 2 * f + f + c] = h * g * s;
        }
      }
  });
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
  // Chunks of elements compared in parallel (hundreds of millions at the large buckets).
  const int64_t n = static_cast<int64_t>(reference_.size()), min_chunk = 1 << 18;
  std::vector<Partial> parts(static_cast<size_t>(std::max<int64_t>(1, n / min_chunk) + 1));
  const int64_t chunk_size = (n + static_cast<int64_t>(parts.size()) - 1) / static_cast<int64_t>(parts.size());
  cpu_->for_range(static_cast<int64_t>(parts.size()), 1, [&](int64_t first, int64_t last) {
    for (int64_t k = first; k < last; ++k) {
      Partial& part = parts[static_cast<size_t>(k)];
      for (int64_t i = k * chunk_size; i < std::min(n, (k + 1) * chunk_size); ++i) {
        const double got = value_at(problem_.dtype, out, static_cast<size_t>(i)), want = reference_[i];
        const double error = std::fabs(got - want);
        if (!(error <= abs_tol + std::fabs(want) * eps) && part.first_bad < 0)  // NaN fails too
          part.first_bad = i, part.got = got, part.want = want;
        if (!std::isnan(part.max_error) && !(error <= part.max_error)) part.max_error = error;  // NaN sticks
      }
    }
  });
  CheckResult result;
  result.ok = true;
  for (const Partial& part : parts) {
    if (part.first_bad >= 0 && result.ok) {
      result.ok = false;
      const size_t i = static_cast<size_t>(part.first_bad);
      result.detail = "out[" + std::to_string(i / width) + ", " + std::to_string(i % width) +
                      "] = " + std::to_string(part.got) + ", expected " + std::to_string(part.want);
    }
    if (!std::isnan(result.max_error) && !(part.max_error <= result.max_error)) result.max_error = part.max_error;
  }
  return result;
}

Throughput SwigluWorkload::throughput(const Problem& problem, double time_ms) const {
  const double bytes = static_cast<double>(bytes_per_copy(problem));
  return {time_ms > 0 ? bytes / (time_ms * 1e-3) / 1e9 : 0.0, "GB/s"};
}

}  // namespace moejit
