// SwiGLU: the shared per-element code on the CPU, every config compiled for sm_80/sm_90a, and on a
// GPU every config vs a double-precision reference.
#include <gtest/gtest.h>

#include "../common/test_util.hpp"
#include "arch_limits.hpp"
#include "binary_cache.hpp"
#include "compile_pool.hpp"
#include "cuda_backend.hpp"
#include "nvrtc_compiler.hpp"
#include "swiglu/swiglu.h"
#include "swiglu/swiglu_spec.hpp"

namespace moejit {
namespace {

double silu(double g) {
  return g / (1.0 + std::exp(-g));
}

// (rows, 2F) -> (rows, F)
std::vector<double> reference_forward(const std::vector<float>& gate_up, int64_t rows, int64_t width) {
  std::vector<double> out(rows * width);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < width; ++c)
      out[r * width + c] = silu(gate_up[r * 2 * width + c]) * gate_up[r * 2 * width + width + c];
  return out;
}

// (rows, 2F), (rows, F) -> (rows, 2F)
std::vector<double> reference_backward(const std::vector<float>& gate_up, const std::vector<float>& dh, int64_t rows,
                                       int64_t width) {
  std::vector<double> out(rows * 2 * width);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < width; ++c) {
      double g = gate_up[r * 2 * width + c], u = gate_up[r * 2 * width + width + c], d = dh[r * width + c];
      double s = 1.0 / (1.0 + std::exp(-g));
      out[r * 2 * width + c] = d * u * (s + g * s * (1.0 - s));
      out[r * 2 * width + width + c] = d * g * s;
    }
  return out;
}

TEST(SwigluShared, Bf16ConversionMatchesTheReferenceRounding) {
  std::mt19937_64 rng(test::test_seed());
  auto values = test::random_floats(100000, rng, -1e4f, 1e4f);
  values.push_back(0.0f), values.push_back(-0.0f), values.push_back(1.0f + 1.0f / 256);  // a tie
  for (float x : values) ASSERT_EQ(from_float<bf16>(x).bits, test::reference_bf16_bits(x)) << x;
}

TEST(SwigluShared, PerVectorCodeMatchesDoubleReference) {
  std::mt19937_64 rng(test::test_seed());
  const int64_t rows = 7, width = 24;
  auto gu = test::random_floats(rows * 2 * width, rng, -8, 8), dh = test::random_floats(rows * width, rng);
  std::vector<float> out(rows * width, NAN), dgu(rows * 2 * width, NAN);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < width; c += 4) {
      swiglu_forward_vec<float, 4>(gu.data(), out.data(), r, c, width);
      swiglu_backward_vec<float, 4>(gu.data(), dh.data(), dgu.data(), r, c, width);
    }
  EXPECT_EQ(test::count_mismatches(reference_forward(gu, rows, width), out, 1e-6, 1e-5, "fwd"), 0u);
  EXPECT_EQ(test::count_mismatches(reference_backward(gu, dh, rows, width), dgu, 1e-6, 1e-5, "bwd"), 0u);
}

TEST(SwigluSpec, PrunesWhatCannotRunAndKeepsTheHeuristicValid) {
  auto device = arch_limits("sm_90a");
  SwigluSpec spec(false);
  Problem p(Family::swiglu_fwd, DType::f32, RowsShape{2, 1000}, 10);
  EXPECT_NE(spec.prune_reason(p, Config{{"vec", 8}, {"threads", 256}}, device), "");  // 32 bytes
  EXPECT_NE(spec.prune_reason(p, Config{{"vec", 16}, {"threads", 256}}, device), "");
  p.row_shape().width = 1001;
  EXPECT_NE(spec.prune_reason(p, Config{{"vec", 2}, {"threads", 256}}, device), "");
  for (int64_t width : {1, 2, 3, 8, 320, 1001, 1408})
    for (DType dtype : {DType::f32, DType::bf16}) {
      Problem q(Family::swiglu_fwd, dtype, RowsShape{2, width}, 10);
      EXPECT_EQ(spec.prune_reason(q, spec.heuristic(q, device), device), "") << q.to_string();
    }
}

TEST(SwigluSpec, EveryConfigCompilesForSm80AndSm90aWithoutSpills) {
  test::TempDir dir;
  BinaryCache cache(dir.path());
  ThreadPool pool;
  for (const char* arch : {"sm_80", "sm_90a"}) {
    NvrtcCompiler compiler(arch);
    auto device = arch_limits(arch);
    std::vector<Source> sources;
    for (bool backward : {false, true}) {
      SwigluSpec spec(backward);
      for (DType dtype : {DType::bf16, DType::f32}) {
        Problem p(spec.family(), dtype, RowsShape{8, 1408}, 4096);
        for (const auto& c : spec.space(p, device))
          if (spec.prune_reason(p, c, device).empty()) sources.push_back(spec.render(p, c, device));
      }
    }
    EXPECT_EQ(sources.size(), 2u * (16 + 12));
    auto futures = compile_all(pool, cache, compiler, sources);
    for (size_t i = 0; i < futures.size(); ++i) {
      auto binary = futures[i].get();
      const ResourceUsage* r = binary->resources_of(sources[i].entries[0]);
      ASSERT_NE(r, nullptr);
      EXPECT_FALSE(r->has_spills()) << binary->uri();
      EXPECT_LE(r->registers, 255);
    }
  }
}

// ---- GPU ----

class SwigluGpu : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    if (!CudaDriver::available(&why)) GTEST_SKIP() << "no GPU: " << why;
    backend_ = std::make_unique<CudaBackend>();
  }
  std::unique_ptr<CudaBackend> backend_;
};

template <typename T>
DeviceBuffer upload(Backend& backend, const std::vector<float>& values) {
  std::vector<T> data(values.size());
  for (size_t i = 0; i < values.size(); ++i) data[i] = from_float<T>(values[i]);
  return DeviceBuffer::from(backend, data);
}

template <typename T>
std::vector<float> download(const DeviceBuffer& buffer) {
  std::vector<float> out;
  for (const T& x : buffer.to_host<T>()) out.push_back(to_float(x));
  return out;
}

// Inputs rounded to the storage type so the reference sees exactly what the kernel sees.
std::vector<float> representable(std::vector<float> v, DType dtype) {
  if (dtype == DType::bf16)
    for (auto& x : v) x = test::bf16_bits_to_float(test::reference_bf16_bits(x));
  return v;
}

template <typename T>
void check_every_config(CudaBackend& backend, DType dtype, int64_t tokens, int64_t top_k, int64_t width) {
  std::mt19937_64 rng(test::test_seed());
  const double rtol = dtype == DType::bf16 ? 1.0 / 128 : 2e-6, atol = 1e-6;  // one bf16 rounding of the output
  for (bool backward : {false, true}) {
    SwigluSpec spec(backward);
    Problem p(spec.family(), dtype, RowsShape{top_k, width}, tokens);
    const int64_t rows = p.rows();
    auto gu = representable(test::random_floats(rows * 2 * width, rng, -6, 6), dtype);
    auto dh = representable(test::random_floats(rows * width, rng), dtype);
    auto ref = backward ? reference_backward(gu, dh, rows, width) : reference_forward(gu, rows, width);
    DeviceBuffer d_gu = upload<T>(backend, gu), d_dh = upload<T>(backend, dh);
    DeviceBuffer d_out(backend, ref.size() * sizeof(T));
    for (const auto& config : spec.space(p, backend.device())) {
      if (!spec.prune_reason(p, config, backend.device()).empty()) continue;
      SCOPED_TRACE(p.to_string() + " " + config.to_string());
      Source source = spec.render(p, config, backend.device());
      auto kernel = backend.load(backend.build(source), source.entries[0]);
      d_out.fill(0xff);  // NaN poison
      if (backward)
        launch_swiglu_bwd(*kernel, p, config, backend.device(), d_gu.get(), d_dh.get(), d_out.get());
      else
        launch_swiglu_fwd(*kernel, p, config, backend.device(), d_gu.get(), d_out.get());
      backend.synchronize();
      ASSERT_EQ(test::count_mismatches(ref, download<T>(d_out), atol, rtol, std::string(to_string(spec.family()))), 0u);
    }
  }
}

TEST_F(SwigluGpu, EveryConfigMatchesReferenceBf16) {
  check_every_config<bf16>(*backend_, DType::bf16, 333, 8, 1408);
  check_every_config<bf16>(*backend_, DType::bf16, 1, 1, 8);
}

TEST_F(SwigluGpu, EveryConfigMatchesReferenceF32) {
  check_every_config<float>(*backend_, DType::f32, 257, 6, 320);
  check_every_config<float>(*backend_, DType::f32, 3, 1, 3);  // odd width: only vec1 survives
}

}  // namespace
}  // namespace moejit
