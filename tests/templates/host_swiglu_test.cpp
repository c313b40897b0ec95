// SwiGLU through the host backend: the same swiglu.h math the GPU runs, in the host loop wrapper,
// every config (vec x threads) in f32 and bf16, vs a double reference.
// Tolerance: f32 abs 1e-5 + 1e-5 * |ref|; bf16 outputs are rounded to 8 bits: 1e-6 + 2^-7 * |ref|.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

#include "common/host_device.h"  // bf16 conversions, bit-exact with the kernels'
#include "host_backend.hpp"
#include "swiglu/swiglu_spec.hpp"

using namespace moejit;

namespace {

HostBackend& backend() {
  static HostBackend b(nullptr, 2);
  return b;
}

// Host values exactly representable in the storage type.
float stored(float x, DType dtype) {
  return dtype == DType::bf16 ? to_float(from_float<bf16>(x)) : x;
}

std::vector<uint8_t> encode(const std::vector<float>& v, DType dtype) {
  std::vector<uint8_t> bytes(v.size() * dtype_bytes(dtype));
  for (size_t i = 0; i < v.size(); ++i) {
    if (dtype == DType::bf16) {
      bf16 b = from_float<bf16>(v[i]);
      std::memcpy(bytes.data() + 2 * i, &b, 2);
    } else {
      std::memcpy(bytes.data() + 4 * i, &v[i], 4);
    }
  }
  return bytes;
}

std::vector<float> decode(const std::vector<uint8_t>& bytes, DType dtype) {
  std::vector<float> v(bytes.size() / dtype_bytes(dtype));
  for (size_t i = 0; i < v.size(); ++i) {
    if (dtype == DType::bf16) {
      bf16 b;
      std::memcpy(&b, bytes.data() + 2 * i, 2);
      v[i] = to_float(b);
    } else {
      std::memcpy(&v[i], bytes.data() + 4 * i, 4);
    }
  }
  return v;
}

class HostSwiglu : public ::testing::TestWithParam<DType> {};

TEST_P(HostSwiglu, EveryConfigForwardAndBackwardAgree) {
  const DType dtype = GetParam();
  // 37 tokens x top-3 = 111 rows: not a multiple of the 16-row work item.
  Problem p(Family::swiglu_fwd, dtype, RowsShape{3, 24}, 37);
  const int64_t rows = p.rows(), F = p.row_shape().width;
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> dist(-4, 4);
  std::vector<float> gu(rows * 2 * F), dh(rows * F);
  for (auto& x : gu) x = stored(dist(rng), dtype);
  for (auto& x : dh) x = stored(dist(rng), dtype);
  const double eps = dtype == DType::bf16 ? 1.0 / 128 : 1e-5, abs_tol = dtype == DType::bf16 ? 1e-6 : 1e-5;

  for (bool backward : {false, true}) {
    const SwigluSpec spec(backward);
    int checked = 0;
    p.family = spec.family();
    ASSERT_TRUE(spec.supports_backend("host"));
    for (const auto& config : spec.space(p, backend().device())) {
      if (!spec.prune_reason(p, config, backend().device()).empty()) continue;  // e.g. vec 8 x f32 > 16 bytes
      ++checked;
      auto kernel = backend().load(backend().build(spec.render(p, config, backend().device())), SwigluSpec::kHostEntry);
      const auto in = encode(gu, dtype), grad = encode(dh, dtype);
      std::vector<uint8_t> out((backward ? 2 : 1) * rows * F * dtype_bytes(dtype), 0xFF);  // NaN poison
      if (backward)
        launch_swiglu_bwd(*kernel, p, config, backend().device(), in.data(), grad.data(), out.data());
      else
        launch_swiglu_fwd(*kernel, p, config, backend().device(), in.data(), out.data());
      const auto got = decode(out, dtype);
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t j = 0; j < F; ++j) {
          const double g = gu[r * 2 * F + j], u = gu[r * 2 * F + F + j], s = 1 / (1 + std::exp(-g));
          std::vector<std::pair<double, float>> checks;
          if (backward) {
            const double d = dh[r * F + j];
            checks = {{d * u * s * (1 + g * (1 - s)), got[r * 2 * F + j]}, {d * g * s, got[r * 2 * F + F + j]}};
          } else {
            checks = {{g * s * u, got[r * F + j]}};
          }
          for (auto [want, value] : checks)
            ASSERT_TRUE(std::abs(value - want) <= abs_tol + eps * std::abs(want))
                << spec.family() << " " << config.to_string() << " row " << r << " col " << j << ": got " << value
                << ", want " << want;
        }
    }
    EXPECT_GE(checked, 6) << spec.family();
  }
}

INSTANTIATE_TEST_SUITE_P(DTypes, HostSwiglu, ::testing::Values(DType::f32, DType::bf16),
                         [](const auto& param_info) { return std::string(to_string(param_info.param)); });

}  // namespace
