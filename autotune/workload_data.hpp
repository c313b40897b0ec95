// Helpers the workloads share for their host-side data: reproducible counter-based random bits
// (same inputs on every run of a tune, generated in parallel) and reading one element of a
// tensor stored in a Problem's dtype.
#pragma once
#include <cstdint>
#include <cstring>
#include <vector>

#include "common/host_device.h"
#include "moejit/problem.hpp"

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

}  // namespace moejit
