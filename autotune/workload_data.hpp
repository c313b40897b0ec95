// Helpers the workloads share for their host-side data: reproducible counter-based random bits
// (same inputs on every run of a tune, generated in parallel) and reading one element of a
// tensor stored in a Problem's dtype.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "common/host_device.h"
#include "moejit/problem.hpp"
#include "thread_pool.hpp"
#include "workload.hpp"

namespace moejit {

// splitmix64's finaliser of (seed, index): 64 well-mixed bits.
inline uint64_t hash_bits(uint64_t seed, uint64_t index) {
  uint64_t x = seed * 0x100000001b3ull + index + 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// Element i of a tensor held as bytes in `dtype`, exactly, as a double.
inline double value_at(DType dtype, const std::vector<char>& bytes, size_t i) {
  if (dtype == DType::f32) {
    float f;
    std::memcpy(&f, bytes.data() + i * 4, 4);
    return f;
  }
  bf16 b;
  std::memcpy(&b, bytes.data() + i * 2, 2);
  return to_float(b);
}

// Elements [first, first + n) of a tensor held as bytes in `dtype`, exactly, as doubles: one
// row of a check, the dtype's branch taken once.
inline void read_row(DType dtype, const std::vector<char>& bytes, int64_t first, int64_t n, double* out) {
  if (dtype == DType::f32) {
    const char* p = bytes.data() + first * 4;
    for (int64_t i = 0; i < n; ++i) {
      float f;
      std::memcpy(&f, p + i * 4, 4);
      out[i] = f;
    }
    return;
  }
  const char* p = bytes.data() + first * 2;
  for (int64_t i = 0; i < n; ++i) {
    uint16_t b;
    std::memcpy(&b, p + i * 2, 2);
    uint32_t u = uint32_t(b) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    out[i] = f;
  }
}

// Host bytes of `count` values in `dtype`, uniform in [lo, hi) on a 2^-24 grid of the range, from
// hash_bits(seed, i): reproducible and generated in parallel (hundreds of millions of elements at
// the large token buckets, where a sequential generator took most of a tune's time).
inline std::vector<char> random_tensor(ThreadPool& cpu, DType dtype, size_t count, uint64_t seed, float lo, float hi) {
  std::vector<char> bytes(count * dtype_bytes(dtype));
  const double step = (static_cast<double>(hi) - lo) * 0x1p-24;
  cpu.for_range(static_cast<int64_t>(count), 1 << 16, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const uint64_t bits = hash_bits(seed, static_cast<uint64_t>(i)) >> 40;  // 24 bits
      const float v = static_cast<float>(lo + static_cast<double>(bits) * step);
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

// Folds one part of a check into the whole: the first failure (in the order parts are merged)
// gives the detail; the largest error is kept, and a NaN error sticks.
inline void merge_check(CheckResult& whole, const CheckResult& part) {
  if (!part.ok && whole.ok) whole.detail = part.detail;
  if (!part.ok) whole.ok = false;
  if (!std::isnan(whole.max_error) && !(part.max_error <= whole.max_error)) whole.max_error = part.max_error;
}

// A check over items [0, n) in parallel: body(begin, end, part) checks a contiguous range into its
// own CheckResult (starting ok); the parts merge in index order, so the failure reported is the
// first one, whatever thread found it. Expected values are computed here, item by item, rather
// than stored: a reference of the large buckets' outputs in double would take gigabytes.
template <typename Body>
CheckResult check_in_parallel(ThreadPool& cpu, int64_t n, Body&& body) {
  const int64_t chunks = std::clamp<int64_t>(n, 0, 256);
  std::vector<CheckResult> parts(static_cast<size_t>(chunks), CheckResult{true, 0, {}});
  cpu.for_range(chunks, 1, [&](int64_t first, int64_t last) {
    for (int64_t k = first; k < last; ++k) body(n * k / chunks, n * (k + 1) / chunks, parts[static_cast<size_t>(k)]);
  });
  CheckResult whole{true, 0, {}};
  for (const CheckResult& part : parts) merge_check(whole, part);
  return whole;
}

}  // namespace moejit
