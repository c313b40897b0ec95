// Shared test helpers: random inputs, poisoned outputs, tolerant comparison, temp directories.
#pragma once
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "moejit/error.hpp"

namespace moejit::test {

// The message of the moejit::Error `fn` throws, or "" if it throws none.
template <typename Fn>
std::string error_of(Fn fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// A fresh seed per run (printed on failure through SCOPED_TRACE by callers), overridable with
// MOEJIT_TEST_SEED to reproduce.
inline uint64_t test_seed() {
  if (const char* s = std::getenv("MOEJIT_TEST_SEED")) return std::strtoull(s, nullptr, 10);
  return std::random_device{}();
}

inline std::vector<float> random_floats(size_t n, std::mt19937_64& rng, float lo = -3.0f, float hi = 3.0f) {
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

// |got - ref| <= atol + rtol * |ref|, NaN never passes. Returns the number of mismatches and
// reports the first few.
inline size_t count_mismatches(const std::vector<double>& ref, const std::vector<float>& got, double atol, double rtol,
                               const std::string& what) {
  size_t bad = 0;
  if (ref.size() != got.size()) {
    ADD_FAILURE() << what << ": size " << got.size() << " != " << ref.size();
    return ref.size() + 1;
  }
  for (size_t i = 0; i < ref.size(); ++i) {
    double g = got[i];
    if (!(std::abs(g - ref[i]) <= atol + rtol * std::abs(ref[i]))) {
      if (bad++ < 5) ADD_FAILURE() << what << "[" << i << "]: got " << g << ", want " << ref[i];
    }
  }
  return bad;
}

class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "moejit-test-XXXXXX").string();
    path_ = mkdtemp(pattern.data());
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

}  // namespace moejit::test

namespace moejit::test {

// Reference bf16 rounding, written independently of templates/common/host_device.h: pick the nearer
// of the two bf16 neighbours (truncations) in double, ties to the even one.
inline uint16_t reference_bf16_bits(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  if (std::isnan(x)) return static_cast<uint16_t>((u >> 16) | 0x40);
  uint32_t lo = u & 0xffff0000u, hi = lo + 0x10000u;
  float flo, fhi;
  std::memcpy(&flo, &lo, 4);
  std::memcpy(&fhi, &hi, 4);
  double dlo = std::abs(double(x) - double(flo)), dhi = std::abs(double(fhi) - double(x));
  if (dlo < dhi || (dlo == dhi && ((lo >> 16) & 1) == 0)) return static_cast<uint16_t>(lo >> 16);
  return static_cast<uint16_t>(hi >> 16);
}

inline float bf16_bits_to_float(uint16_t b) {
  uint32_t u = uint32_t(b) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

}  // namespace moejit::test
