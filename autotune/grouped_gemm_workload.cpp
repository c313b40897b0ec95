#include "grouped_gemm_workload.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "common/host_device.h"
#include "grouped_gemm/grouped_gemm_spec.hpp"
#include "host/grouped_gemm_spec.hpp"
#include "moejit/error.hpp"
#include "workload_data.hpp"

// Tolerance, per output element with reference value ref and sum|terms| = S over a reduction of
// length R (K for fwd/swiglu, N for dgrad, the expert's segment length for wgrad):
//   |out - ref| <= 1e-6 + R * 2^-24 * S + eps * |ref|
// R * 2^-24 * S is the classical worst-case bound of fp32 summation in any order (the GPU's bf16
// products are exact in fp32; the host's f32 products round once more, within the same bound at
// R >= 2); eps covers the output's rounding: 2^-8 for bf16 (one ulp), 2^-23 for f32. A dropped
// block of terms or a wrong expert is off by O(sqrt(terms)) and fails by orders of magnitude.
// H = silu(g) * u inherits g's and u's tolerances through |d silu/dg| <= 1.1 and |u|, |silu(g)|,
// plus its own rounding (eps) and float silu (2^-20).

namespace moejit {
namespace {

constexpr double kUlp32 = 1.0 / (1 << 24);

const char* output_name(int op) {
  switch (op) {
    case gg::kFwd:
      return "Y";
    case gg::kUpSwiglu:
      return "GU";
    case gg::kDgrad:
      return "dX";
    default:
      return "dW";
  }
}

}  // namespace

float GroupedGemmWorkload::HostInput::operator[](size_t i) const {
  return b16.empty() ? f32[i] : bits_to_float(static_cast<uint32>(b16[i]) << 16);
}

const GroupedGemmWorkload::HostInput& GroupedGemmWorkload::input(HostInput& cache, size_t count, uint64_t seed,
                                                                 ThreadPool& cpu) const {
  if (cache.seed == seed && cache.size() >= count && (cache.b16.empty() || gpu_) && (cache.f32.empty() || !gpu_))
    return cache;
  cache.seed = seed;
  cache.f32.clear(), cache.b16.clear();
  if (gpu_)
    cache.b16.resize(count);
  else
    cache.f32.resize(count);
  cpu.for_range(static_cast<int64_t>(count), 1 << 16, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const uint64_t bits = hash_bits(seed, static_cast<uint64_t>(i)) >> 40;          // 24 bits
      const float x = static_cast<float>(static_cast<double>(bits) * 0x1p-23 - 1.0);  // [-1, 1)
      if (gpu_)
        cache.b16[i] = from_float<bf16>(x).bits;
      else
        cache.f32[i] = x;
    }
  });
  return cache;
}

std::vector<int64_t> skewed_offsets(int64_t rows, int64_t experts) {
  if (experts <= 0) throw Error("skewed_offsets: needs at least one expert");
  const int64_t busy = experts > 1 ? experts - 1 : 1;  // the last expert stays empty when E > 1
  std::vector<double> share(static_cast<size_t>(busy));
  double total = 0;
  for (int64_t e = 0; e < busy; ++e) total += share[e] = 1.0 / std::sqrt(static_cast<double>(e + 1));
  std::vector<int64_t> offsets{0};
  double cumulative = 0;
  for (int64_t e = 0; e < busy; ++e) {  // rounding the cumulative share: counts sum to rows exactly
    cumulative += share[e];
    offsets.push_back(std::llround(static_cast<double>(rows) * std::min(1.0, cumulative / total)));
  }
  offsets.back() = rows;
  if (experts > 1) offsets.push_back(rows);
  return offsets;
}

// Sizes of one problem, as the kernels see them.
struct GroupedGemmWorkload::Shape {
  int64_t m, k, n, e;
  int64_t w_cols;    // W's columns: N, or 2N for swiglu
  int64_t a_elems;   // X (M, K) or dY (M, N) for dgrad
  int64_t b_elems;   // W (E, K, w_cols), or dY (M, N) for wgrad
  int64_t out_rows;  // rows of the GEMM output: M, or E * K for wgrad
  int64_t out_cols;  // its columns: N, 2N (GU), K (dgrad)
};

namespace {

// The GEMM view of a family; the attention families are the causal fwd, dgrad and wgrad views.
int gemm_op(Family family) {
  switch (family) {
    case Family::attention_scores:
      return gg::kDgrad;
    case Family::attention_values:
      return gg::kFwd;
    case Family::attention_grads:
      return gg::kWgrad;
    default:
      return GroupedGemmSpec::op_of(family);
  }
}

bool is_causal(Family family) {
  return family == Family::attention_scores || family == Family::attention_values || family == Family::attention_grads;
}

// Segment lengths as even as integers allow: attention's groups are whole sequences.
std::vector<int64_t> even_offsets(int64_t rows, int64_t groups) {
  std::vector<int64_t> offsets;
  for (int64_t e = 0; e <= groups; ++e) offsets.push_back(rows * e / groups);
  return offsets;
}

}  // namespace

GroupedGemmWorkload::GroupedGemmWorkload(Family family, bool gpu)
    : op_(gemm_op(family)), causal_(is_causal(family)), gpu_(gpu) {
  if (causal_ && gpu_) throw Error(std::string(to_string(family)) + " runs on the host backend only");
}

GroupedGemmWorkload::Shape GroupedGemmWorkload::shape(const Problem& p) const {
  Shape s;
  const GemmShape& g = p.gemm();
  s.m = p.rows(), s.k = g.k, s.n = g.n, s.e = g.experts;
  s.w_cols = op_ == gg::kUpSwiglu ? 2 * s.n : s.n;
  s.a_elems = s.m * (op_ == gg::kDgrad ? s.n : s.k);
  s.b_elems = op_ == gg::kWgrad ? s.m * s.n : s.e * s.k * s.w_cols;
  s.out_rows = op_ == gg::kWgrad ? s.e * s.k : s.m;
  s.out_cols = op_ == gg::kDgrad ? s.k : s.w_cols;
  return s;
}

size_t GroupedGemmWorkload::bytes_per_copy(const Problem& p) const {
  const Shape s = shape(p);
  const size_t in = dtype_bytes(in_type()), out = gpu_ ? dtype_bytes(p.dtype) : 4;
  size_t bytes = static_cast<size_t>(s.a_elems + s.b_elems) * in + static_cast<size_t>(s.out_rows * s.out_cols) * out;
  if (op_ == gg::kUpSwiglu) bytes += static_cast<size_t>(s.m * s.n) * out;  // H beside GU
  return bytes + static_cast<size_t>(s.e + 1) * (gpu_ ? 4 : 8);
}

void GroupedGemmWorkload::prepare(Backend& backend, const Problem& problem, int copies,
                                  std::shared_ptr<ThreadPool> cpu) {
  backend_ = &backend;
  cpu_ = std::move(cpu);
  problem_ = problem;
  sets_.clear();
  const Shape s = shape(problem);
  if (gpu_ && (s.m >= (int64_t{1} << 31))) throw Error(problem.to_string() + ": more rows than int32 offsets hold");
  const std::vector<int64_t> offsets = causal_ ? even_offsets(s.m, s.e) : skewed_offsets(s.m, s.e);
  const uint64_t seed = 0x6e6d0000u + static_cast<uint64_t>(op_);
  const size_t a_count = static_cast<size_t>(s.a_elems), b_count = static_cast<size_t>(s.b_elems);
  const HostInput& generated = input(a_cache_, a_count, seed, *cpu_);
  const HostInput& a = causal_ && op_ != gg::kDgrad ? lower_triangular(generated, s, offsets) : generated;
  const HostInput& b = input(b_cache_, b_count, seed + 100, *cpu_);
  upload_sets(a, b, offsets, copies);
  choose_checked_rows(s, offsets);
  compute_reference(s, offsets, a, b);
  want_h_.clear(), tol_h_.clear();
  if (op_ == gg::kUpSwiglu) swiglu_reference(s);
}

// The causal fwd and wgrad views read A (rows, K) as lower-triangular per group (the softmax's
// probabilities): a copy of the generated input with zeros above each group's diagonal.
const GroupedGemmWorkload::HostInput& GroupedGemmWorkload::lower_triangular(const HostInput& a, const Shape& s,
                                                                            const std::vector<int64_t>& offsets) {
  masked_ = a;
  for (int64_t e = 0; e < s.e; ++e)
    for (int64_t r = offsets[e]; r < offsets[e + 1]; ++r)
      for (int64_t j = r - offsets[e] + 1; j < s.k; ++j) masked_.f32[static_cast<size_t>(r * s.k + j)] = 0.0f;
  return masked_;
}

// `copies` input/output sets: the inputs uploaded, the outputs allocated (check() poisons them).
void GroupedGemmWorkload::upload_sets(const HostInput& a, const HostInput& b, const std::vector<int64_t>& offsets,
                                      int copies) {
  Backend& backend = *backend_;
  const Shape s = shape(problem_);
  const size_t a_count = static_cast<size_t>(s.a_elems), b_count = static_cast<size_t>(s.b_elems);
  auto upload = [&](const HostInput& t, size_t count) {  // the first `count` elements
    const size_t bytes = count * (gpu_ ? 2 : 4);
    DeviceBuffer buffer(backend, bytes);
    if (bytes)
      backend.copy_to_device(buffer.get(), gpu_ ? static_cast<const void*>(t.b16.data()) : t.f32.data(), bytes);
    return buffer;
  };
  const std::vector<int> offsets32(offsets.begin(), offsets.end());
  const size_t out_bytes = gpu_ ? dtype_bytes(problem_.dtype) : 4;
  for (int c = 0; c < copies; ++c) {
    Set set;
    set.a = upload(a, a_count);
    set.b = upload(b, b_count);
    set.offsets = gpu_ ? DeviceBuffer::from(backend, offsets32) : DeviceBuffer::from(backend, offsets);
    if (op_ == gg::kUpSwiglu) {
      set.gate_up = DeviceBuffer(backend, static_cast<size_t>(s.m * 2 * s.n) * out_bytes);
      set.out = DeviceBuffer(backend, static_cast<size_t>(s.m * s.n) * out_bytes);
    } else {
      set.out = DeviceBuffer(backend, static_cast<size_t>(s.out_rows * s.out_cols) * out_bytes);
    }
    sets_.push_back(std::move(set));
  }
}

// Which output rows the reference covers: all of them when affordable, else every stride-th row
// plus each segment's first and last row (wgrad: every stride-th K row of every expert).
void GroupedGemmWorkload::choose_checked_rows(const Shape& s, const std::vector<int64_t>& offsets) {
  const int64_t macs_per_row = op_ == gg::kWgrad ? s.m * s.n / std::max<int64_t>(s.e, 1) : s.k * s.w_cols;
  const int64_t affordable = std::max<int64_t>(1, kReferenceMacs / std::max<int64_t>(macs_per_row, 1));
  const int64_t stride = std::max<int64_t>(1, (s.out_rows + affordable - 1) / affordable);
  slot_.assign(static_cast<size_t>(s.out_rows), -1);
  checked_cols_.assign(static_cast<size_t>(s.out_rows), s.out_cols);
  if (causal_ && op_ == gg::kDgrad)  // entries above a group's diagonal are unspecified
    for (int64_t e = 0; e < s.e; ++e)
      for (int64_t r = offsets[e]; r < offsets[e + 1]; ++r)
        checked_cols_[static_cast<size_t>(r)] = std::min(s.out_cols, r - offsets[e] + 1);
  rows_.clear();
  for (int64_t r = 0; r < s.out_rows; ++r) {
    bool take = r % stride == 0;
    if (op_ == gg::kWgrad)
      take = (r % s.k) % stride == 0 || r % s.k == s.k - 1;
    else if (!take)
      for (int64_t e = 0; e < s.e && !take; ++e) take = r == offsets[e] || r == offsets[e + 1] - 1;
    if (!take) continue;
    slot_[r] = static_cast<int64_t>(rows_.size());
    rows_.push_back(r);
  }
}

// The checked rows' expected values in double and each element's tolerance (see the top).
void GroupedGemmWorkload::compute_reference(const Shape& s, const std::vector<int64_t>& offsets, const HostInput& a,
                                            const HostInput& b) {
  const double eps = output_eps();
  const int64_t cols = s.out_cols;
  want_.assign(rows_.size() * cols, 0.0);
  tol_.assign(rows_.size() * cols, 0.0);
  cpu_->for_range(static_cast<int64_t>(rows_.size()), 4, [&](int64_t first, int64_t last) {
    std::vector<double> abs_sum(static_cast<size_t>(cols));
    for (size_t i = static_cast<size_t>(first); i < static_cast<size_t>(last); ++i) {
      const int64_t r = rows_[i];
      double* want = &want_[i * cols];
      std::fill(abs_sum.begin(), abs_sum.end(), 0.0);
      int64_t reduction = 0;
      if (op_ == gg::kWgrad) {  // dW_e[kk, :] = sum over the segment of X[t, kk] * dY[t, :]
        const int64_t e = r / s.k, kk = r % s.k;
        reduction = offsets[e + 1] - offsets[e];
        for (int64_t t = offsets[e]; t < offsets[e + 1]; ++t) {
          const double x = a[t * s.k + kk];
          for (int64_t j = 0; j < cols; ++j) {
            const double p = x * b[t * s.n + j];
            want[j] += p, abs_sum[j] += std::fabs(p);
          }
        }
      } else {
        const int64_t e = std::upper_bound(offsets.begin(), offsets.end(), r) - offsets.begin() - 1;
        const size_t w0 = static_cast<size_t>(e * s.k * s.w_cols);
        if (op_ == gg::kDgrad) {  // dX[r, j] = sum_q dY[r, q] * W_e[j, q]
          reduction = s.n;
          for (int64_t j = 0; j < cols; ++j)
            for (int64_t q = 0; q < s.n; ++q) {
              const double p = static_cast<double>(a[r * s.n + q]) * b[w0 + j * s.n + q];
              want[j] += p, abs_sum[j] += std::fabs(p);
            }
        } else {  // Y or GU[r, j] = sum_q X[r, q] * W_e[q, j]
          reduction = s.k;
          for (int64_t q = 0; q < s.k; ++q) {
            const double x = a[r * s.k + q];
            for (int64_t j = 0; j < cols; ++j) {
              const double p = x * b[w0 + q * s.w_cols + j];
              want[j] += p, abs_sum[j] += std::fabs(p);
            }
          }
        }
      }
      for (int64_t j = 0; j < cols; ++j)
        tol_[i * cols + j] = 1e-6 + static_cast<double>(reduction) * kUlp32 * abs_sum[j] + eps * std::fabs(want[j]);
    }
  });
}

// H = silu(g) * u of the reference GU, its tolerance through silu's derivative.
void GroupedGemmWorkload::swiglu_reference(const Shape& s) {
  const double eps = output_eps();
  const int64_t cols = s.out_cols;
  want_h_.resize(rows_.size() * s.n), tol_h_.resize(rows_.size() * s.n);
  for (size_t i = 0; i < rows_.size(); ++i)
    for (int64_t j = 0; j < s.n; ++j) {
      const double g = want_[i * cols + j], u = want_[i * cols + s.n + j];
      const double silu = g / (1.0 + std::exp(-g)), h = silu * u;
      want_h_[i * s.n + j] = h;
      tol_h_[i * s.n + j] = 1e-6 + 1.1 * std::fabs(u) * tol_[i * cols + j] +
                            std::fabs(silu) * tol_[i * cols + s.n + j] + (eps + 1.0 / (1 << 20)) * std::fabs(h);
    }
}

void GroupedGemmWorkload::run(LoadedCandidate& candidate, int copy) {
  Set& set = sets_[static_cast<size_t>(copy) % sets_.size()];
  Kernel& kernel = *candidate.kernels.at(0);
  const Config& config = candidate.config;
  if (gpu_) {
    GroupedGemmArgs args;
    args.a = set.a.get();
    args.b = set.b.get();
    args.out = set.out.get();
    args.out_gate_up = set.gate_up.get();
    args.offsets = static_cast<const int*>(set.offsets.get());
    launch_grouped_gemm(kernel, problem_, config, backend_->device(), args);
    return;
  }
  const auto* a = static_cast<const float*>(set.a.get());
  const auto* b = static_cast<const float*>(set.b.get());
  auto* out = static_cast<float*>(set.out.get());
  const auto* offsets = static_cast<const int64_t*>(set.offsets.get());
  switch (op_) {
    case gg::kFwd:
      return launch_host_gemm_fwd(kernel, problem_, config, a, b, out, offsets);
    case gg::kUpSwiglu:
      return launch_host_gemm_swiglu(kernel, problem_, config, a, b, static_cast<float*>(set.gate_up.get()), out,
                                     offsets);
    case gg::kDgrad:
      return launch_host_gemm_dgrad(kernel, problem_, config, a, b, out, offsets);
    default:
      return launch_host_gemm_wgrad(kernel, problem_, config, a, b, out, offsets);
  }
}

namespace {

// Compares one output tensor (rows x cols, row-major) with the reference of its checked rows;
// unchecked rows must at least have been written (the NaN poison is gone). Rows in parallel
// chunks; the first bad element in index order is reported.
// checked_cols[r]: the row's leading columns that are defined (all but above a causal diagonal).
void compare(ThreadPool& cpu, const char* name, DType dtype, const std::vector<char>& got, int64_t cols,
             const std::vector<int64_t>& slot, const std::vector<int64_t>& checked_cols,
             const std::vector<double>& want, const std::vector<double>& tol, CheckResult& result) {
  struct Partial {
    CheckResult found{true, 0, {}};
  };
  const int64_t rows = static_cast<int64_t>(slot.size());
  const int64_t chunks = std::min<int64_t>(rows, 256);
  std::vector<Partial> parts(static_cast<size_t>(std::max<int64_t>(chunks, 0)));
  cpu.for_range(chunks, 1, [&](int64_t first, int64_t last) {
    for (int64_t k = first; k < last; ++k) {
      CheckResult& part = parts[static_cast<size_t>(k)].found;
      for (int64_t r = rows * k / chunks; r < rows * (k + 1) / chunks; ++r) {
        const int64_t s = slot[r];
        const int64_t defined = r < static_cast<int64_t>(checked_cols.size()) ? checked_cols[r] : cols;
        for (int64_t j = 0; j < defined; ++j) {
          const double value = value_at(dtype, got, static_cast<size_t>(r * cols + j));
          double expected = 0;
          bool bad = !std::isfinite(value);
          if (s >= 0) {
            expected = want[s * cols + j];
            const double excess = std::fabs(value - expected) - tol[s * cols + j];
            bad = !(excess <= 0);                                                                     // NaN fails too
            if (!std::isnan(part.max_error) && !(excess <= part.max_error)) part.max_error = excess;  // NaN sticks
          }
          if (bad && part.ok)
            part.detail = std::string(name) + "[" + std::to_string(r) + ", " + std::to_string(j) +
                          "] = " + std::to_string(value) +
                          (s >= 0 ? ", expected " + std::to_string(expected) : ", never written (row not sampled)");
          if (bad) part.ok = false;
        }
      }
    }
  });
  for (const Partial& p : parts) {
    if (!p.found.ok && result.ok) result.detail = p.found.detail;
    if (!p.found.ok) result.ok = false;
    if (!std::isnan(result.max_error) && !(p.found.max_error <= result.max_error)) result.max_error = p.found.max_error;
  }
}

}  // namespace

CheckResult GroupedGemmWorkload::check(LoadedCandidate& candidate) {
  Set& set = sets_.at(0);
  set.out.fill(0xFF);  // NaN in both dtypes: an element the kernel does not write fails
  set.gate_up.fill(0xFF);
  run(candidate, 0);
  backend_->synchronize();
  const Shape s = shape(problem_);
  CheckResult result;
  result.ok = true;
  if (op_ == gg::kUpSwiglu) {
    const std::vector<int64_t> all_cols;  // swiglu is never causal
    compare(*cpu_, "GU", out_type(), set.gate_up.to_host<char>(), s.out_cols, slot_, all_cols, want_, tol_, result);
    compare(*cpu_, "H", out_type(), set.out.to_host<char>(), s.n, slot_, all_cols, want_h_, tol_h_, result);
  } else {
    compare(*cpu_, output_name(op_), out_type(), set.out.to_host<char>(), s.out_cols, slot_, checked_cols_, want_, tol_,
            result);
  }
  return result;
}

Throughput GroupedGemmWorkload::throughput(const Problem& problem, double time_ms) const {
  const Shape s = shape(problem);  // every op is one (rows x K x W-columns) product per token row
  const double flops = 2.0 * static_cast<double>(s.m) * static_cast<double>(s.k) * static_cast<double>(s.w_cols);
  return {time_ms > 0 ? flops / (time_ms * 1e-3) / 1e12 : 0.0, "TFLOP/s"};
}

}  // namespace moejit
