// GPU correctness of every grouped GEMM variant (fwd, up_swiglu, dgrad, wgrad) on both template
// paths (tc80 mma.sync, compiled for the local arch; tc90 wgmma + TMA on sm_90a) against a
// double-precision CPU reference on random bf16 data. Label `gpu`; skips without a driver.
//
// Tolerance (stated once, used everywhere): inputs are exact bf16, products are exact in fp32, so
// the kernel's error is fp32 accumulation plus one output rounding:
//   |out - ref| <= 2^-16 * sum|terms| + 2^-8 * |ref| (bf16 out) or 2^-20 * |ref| (f32 out) + 1e-6.
// H of up_swiglu is checked against swiglu applied (in double) to the GU the kernel stored, with
// 2^-7 * (|H| + 1e-3) (bf16 rounding of H and of silu's inputs).
// Outputs are poisoned with NaN bytes first; rows outside every segment must stay poisoned.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <thread>

#include "binary_cache.hpp"
#include "compile_pool.hpp"
#include "cuda_backend.hpp"
#include "cuda_driver.hpp"
#include "grouped_gemm/grouped_gemm_spec.hpp"
#include "moejit/error.hpp"

namespace moejit {
namespace {

using gg::kDgrad;
using gg::kFwd;
using gg::kUpSwiglu;
using gg::kWgrad;

struct Case {
  std::string name;
  int64_t k, n;
  std::vector<int> lens;   // rows per expert
  int lead = 0, tail = 0;  // rows before the first / after the last segment (never part of any segment)
};

std::vector<Case> cases() {
  std::mt19937 rng(1234);
  auto skewed = [&](int e, int tokens, int top_k) {  // Zipf-like loads, many experts empty
    std::vector<int> lens(e, 0);
    for (int t = 0; t < tokens * top_k; ++t) {
      const double u = std::uniform_real_distribution<double>(0, 1)(rng);
      lens[std::min<int>(e - 1, static_cast<int>(e * u * u * u))]++;
    }
    return lens;
  };
  std::vector<Case> v;
  // moe-shapes.md models at small token counts.
  v.push_back({"qwen3_30b_a3b_t64", 2048, 768, skewed(128, 64, 8), 0, 5});
  v.push_back({"paper_moe_2b_t96", 1408, 320, skewed(92, 96, 7), 3, 0});
  v.push_back({"paper_moe_7b_t64", 2048, 512, skewed(78, 64, 6), 0, 0});
  v.push_back({"olmoe_t32", 2048, 1024, skewed(64, 32, 8), 0, 0});
  v.push_back({"paper_moe_2b_e16_t64", 1408, 320, skewed(16, 64, 7), 0, 4});  // wgrad-sized
  // Nasty ones.
  v.push_back({"e1_one_token", 64, 64, {1}, 0, 0});
  v.push_back({"e1_odd_dims", 200, 136, {77}, 0, 3});  // K, N multiples of 8, not of any tile
  std::vector<int> sparse(256, 0);
  sparse[0] = 3, sparse[17] = 1, sparse[128] = 130, sparse[255] = 64;
  v.push_back({"e256_mostly_empty", 136, 264, sparse, 2, 7});
  v.push_back({"one_token_segments", 256, 72, std::vector<int>(16, 1), 0, 1});
  return v;
}

std::vector<bf16> random_bf16(size_t count, std::mt19937& rng) {
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<bf16> v(count);
  for (auto& x : v) x = from_float<bf16>(u(rng));
  return v;
}

double f(bf16 x) {
  return to_float(x);
}

// Runs fn(i) for i in [0, n) on every core (the references are the slow part of this test).
template <typename Fn>
void parallel_for(int64_t n, Fn fn) {
  const int64_t workers = std::max(1u, std::thread::hardware_concurrency());
  std::vector<std::thread> threads;
  for (int64_t w = 0; w < workers; ++w)
    threads.emplace_back([&, w] {
      for (int64_t i = w; i < n; i += workers) fn(i);
    });
  for (auto& t : threads) t.join();
}

struct Reference {
  std::vector<double> value, abs_sum;  // per output element
};

// Double-precision reference of one op. x: (rows, K), dy: (rows, N), w: (E, K, N or 2N).
Reference reference(int op, const Case& c, const std::vector<int>& off, const std::vector<bf16>& x,
                    const std::vector<bf16>& dy, const std::vector<bf16>& w, int64_t rows) {
  const int64_t k = c.k, n = c.n, e_count = static_cast<int64_t>(c.lens.size());
  Reference r;
  auto expert_of = [&](int64_t row) {
    for (int64_t e = 0; e < e_count; ++e)
      if (row >= off[e] && row < off[e + 1]) return e;
    return int64_t{-1};
  };
  if (op == kWgrad) {
    r.value.assign(e_count * k * n, 0), r.abs_sum.assign(e_count * k * n, 0);
    parallel_for(e_count * k, [&](int64_t ek) {
      const int64_t e = ek / k, kk = ek % k;
      for (int64_t t = off[e]; t < off[e + 1]; ++t)
        for (int64_t j = 0; j < n; ++j) {
          const double p = f(x[t * k + kk]) * f(dy[t * n + j]);
          r.value[ek * n + j] += p, r.abs_sum[ek * n + j] += std::abs(p);
        }
    });
    return r;
  }
  const int64_t out_cols = op == kDgrad ? k : (op == kUpSwiglu ? 2 * n : n);
  const int64_t wwidth = op == kUpSwiglu ? 2 * n : n;
  r.value.assign(rows * out_cols, 0), r.abs_sum.assign(rows * out_cols, 0);
  parallel_for(rows, [&](int64_t t) {
    const int64_t e = expert_of(t);
    if (e < 0) return;
    const bf16* we = w.data() + e * k * wwidth;
    for (int64_t j = 0; j < out_cols; ++j) {
      double s = 0, a = 0;
      if (op == kDgrad)
        for (int64_t q = 0; q < n; ++q) {
          const double p = f(dy[t * n + q]) * f(we[j * n + q]);
          s += p, a += std::abs(p);
        }
      else
        for (int64_t q = 0; q < k; ++q) {
          const double p = f(x[t * k + q]) * f(we[q * wwidth + j]);
          s += p, a += std::abs(p);
        }
      r.value[t * out_cols + j] = s, r.abs_sum[t * out_cols + j] = a;
    }
  });
  return r;
}

double tolerance(double ref, double abs_sum, DType out) {
  return std::ldexp(abs_sum, -16) + std::abs(ref) * (out == DType::bf16 ? std::ldexp(1.0, -8) : std::ldexp(1.0, -20)) +
         1e-6;
}

template <typename T>
std::vector<double> download(const DeviceBuffer& b) {
  std::vector<double> v;
  for (const T& x : b.to_host<T>()) v.push_back(to_float(x));
  return v;
}

class GroupedGemmGpu : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    if (!CudaDriver::available(&why)) GTEST_SKIP() << "no GPU: " << why;
    backend_ = std::make_unique<CudaBackend>();
  }

  // The configs exercised here: the heuristic and a small tile of each path the device offers.
  std::vector<Config> configs(const GroupedGemmSpec& spec, const Problem& p) const {
    const DeviceDescription& d = backend_->device();
    std::vector<Config> out{spec.heuristic(p, d),
                            Config{{"tc", 80}, {"bm", 64}, {"bn", 64}, {"bk", 64}, {"w", 4}, {"s", 3}},
                            Config{{"tc", 80}, {"bm", 128}, {"bn", 128}, {"bk", 32}, {"w", 8}, {"s", 4}}};
    if (d.arch == "sm_90a")
      for (const Config& c : spec.space(p, d))
        if (c.get("tc") == 90 && spec.prune_reason(p, c, d).empty()) out.push_back(c);
    std::vector<Config> unique;
    for (const Config& c : out)
      if (std::find(unique.begin(), unique.end(), c) == unique.end() && spec.prune_reason(p, c, d).empty())
        unique.push_back(c);
    return unique;
  }

  void run_op(int op, DType out_type, bool accumulate = false);

  std::unique_ptr<CudaBackend> backend_;
};

void GroupedGemmGpu::run_op(int op, DType out_type, bool accumulate) {
  CudaBackend& be = *backend_;
  GroupedGemmSpec spec(GroupedGemmSpec::family_of(op));
  {  // Compile every config once, in parallel; the loop below then hits the binary cache.
    const Problem any(spec.family(), out_type, GemmShape{1, 1, 64, 64}, 1);
    std::vector<Source> sources;
    for (const Config& config : configs(spec, any)) sources.push_back(spec.render(any, config, be.device()));
    ThreadPool pool;
    for (auto& f : compile_all(pool, BinaryCache::global(), be.compiler(), sources)) f.get();
  }
  for (const Case& c : cases()) {
    SCOPED_TRACE(c.name);
    // dW of the full model shapes would need GBs of host memory for the reference: wgrad runs the
    // smaller cases (still model widths, fewer experts).
    if (op == kWgrad && static_cast<int64_t>(c.lens.size()) * c.k * c.n > (int64_t{30} << 20)) continue;
    std::mt19937 rng(99);
    std::vector<int> off{c.lead};
    for (int l : c.lens) off.push_back(off.back() + l);
    const int64_t rows = off.back() + c.tail, e_count = static_cast<int64_t>(c.lens.size());
    const int64_t wwidth = op == kUpSwiglu ? 2 * c.n : c.n;
    const auto x = random_bf16(rows * c.k, rng), dy = random_bf16(rows * c.n, rng),
               w = random_bf16(e_count * c.k * wwidth, rng);
    const Reference ref = reference(op, c, off, x, dy, w, rows);

    const Problem p(spec.family(), out_type, GemmShape{e_count, 1, c.k, c.n}, rows);

    DeviceBuffer d_x = DeviceBuffer::from(be, x), d_dy = DeviceBuffer::from(be, dy), d_w = DeviceBuffer::from(be, w),
                 d_off = DeviceBuffer::from(be, off);
    const size_t out_elems = op == kWgrad ? e_count * c.k * c.n : rows * (op == kDgrad ? c.k : c.n);
    const size_t esize = dtype_bytes(out_type);
    DeviceBuffer d_out(be, out_elems * esize), d_gu(be, op == kUpSwiglu ? rows * 2 * c.n * esize : 0);
    std::vector<double> initial;  // wgrad accumulate: what dW held before
    if (accumulate) {
      std::vector<float> init(out_elems);
      std::uniform_real_distribution<float> u(-4, 4);
      for (auto& v : init) v = u(rng);
      ASSERT_EQ(out_type, DType::f32);
      initial.assign(init.begin(), init.end());
      d_out = DeviceBuffer::from(be, init);
    }

    for (const Config& config : configs(spec, p)) {
      SCOPED_TRACE(config.to_string());
      if (!accumulate)
        d_out.fill(0xFF);  // NaN in bf16 and f32
      else
        be.copy_to_device(d_out.get(), std::vector<float>(initial.begin(), initial.end()).data(), out_elems * 4);
      d_gu.fill(0xFF);
      const Source source = spec.render(p, config, be.device());
      auto kernel = be.load(be.build(source), source.entries.front());
      GroupedGemmArgs args;
      args.a = op == kDgrad ? d_dy.get() : d_x.get();
      args.b = op == kWgrad ? d_dy.get() : d_w.get();
      args.out = d_out.get();
      args.out_gate_up = d_gu.get();
      args.offsets = static_cast<const int*>(d_off.get());
      args.accumulate = accumulate;
      launch_grouped_gemm(*kernel, p, config, be.device(), args);
      be.synchronize();

      const std::vector<double> got = op == kUpSwiglu           ? std::vector<double>()
                                      : out_type == DType::bf16 ? download<bf16>(d_out)
                                                                : download<float>(d_out);
      int64_t bad = 0;
      auto check = [&](double value, double want, double tol, const std::string& what) {
        if (std::abs(value - want) <= tol) return;  // NaN fails here too
        if (++bad <= 5) ADD_FAILURE() << what << ": got " << value << " want " << want << " tol " << tol;
      };
      auto segment_row = [&](int64_t t) { return t >= off.front() && t < off.back(); };
      if (op == kWgrad) {
        for (size_t i = 0; i < out_elems; ++i) {
          const double base = accumulate ? initial[i] : 0.0;
          check(got[i], base + ref.value[i], tolerance(ref.value[i], ref.abs_sum[i], out_type) + std::abs(base) * 1e-6,
                "dW[" + std::to_string(i) + "]");
        }
      } else if (op == kUpSwiglu) {
        const auto gu = out_type == DType::bf16 ? download<bf16>(d_gu) : download<float>(d_gu);
        const auto h = out_type == DType::bf16 ? download<bf16>(d_out) : download<float>(d_out);
        for (int64_t t = 0; t < rows; ++t)
          for (int64_t j = 0; j < 2 * c.n; ++j) {
            const size_t i = t * 2 * c.n + j;
            if (!segment_row(t)) {
              if (!std::isnan(gu[i]) && ++bad <= 5) ADD_FAILURE() << "GU row " << t << " outside every segment written";
              continue;
            }
            check(gu[i], ref.value[i], tolerance(ref.value[i], ref.abs_sum[i], out_type),
                  "GU[" + std::to_string(t) + "][" + std::to_string(j) + "]");
          }
        for (int64_t t = 0; t < rows; ++t)
          for (int64_t j = 0; j < c.n; ++j) {
            const size_t i = t * c.n + j;
            if (!segment_row(t)) {
              if (!std::isnan(h[i]) && ++bad <= 5) ADD_FAILURE() << "H row " << t << " outside every segment written";
              continue;
            }
            const double g = gu[t * 2 * c.n + j], u = gu[t * 2 * c.n + c.n + j];
            const double want = g / (1 + std::exp(-g)) * u;
            check(h[i], want, std::ldexp(std::abs(want) + 1e-3, -7),
                  "H[" + std::to_string(t) + "][" + std::to_string(j) + "]");
          }
      } else {
        const int64_t cols = op == kDgrad ? c.k : c.n;
        for (int64_t t = 0; t < rows; ++t)
          for (int64_t j = 0; j < cols; ++j) {
            const size_t i = t * cols + j;
            if (!segment_row(t)) {
              if (!std::isnan(got[i]) && ++bad <= 5) ADD_FAILURE() << "row " << t << " outside every segment written";
              continue;
            }
            check(got[i], ref.value[i], tolerance(ref.value[i], ref.abs_sum[i], out_type),
                  "out[" + std::to_string(t) + "][" + std::to_string(j) + "]");
          }
      }
      EXPECT_EQ(bad, 0) << bad << " elements wrong";
    }
  }
}

TEST_F(GroupedGemmGpu, ForwardBf16) {
  run_op(kFwd, DType::bf16);
}
TEST_F(GroupedGemmGpu, ForwardF32) {
  run_op(kFwd, DType::f32);
}
TEST_F(GroupedGemmGpu, UpProjectionSwiglu) {
  run_op(kUpSwiglu, DType::bf16);
}
TEST_F(GroupedGemmGpu, Dgrad) {
  run_op(kDgrad, DType::bf16);
}
TEST_F(GroupedGemmGpu, WgradZeroesEmptyExperts) {
  run_op(kWgrad, DType::f32);
}
TEST_F(GroupedGemmGpu, WgradAccumulates) {
  run_op(kWgrad, DType::f32, true);
}
TEST_F(GroupedGemmGpu, WgradBf16) {
  run_op(kWgrad, DType::bf16);
}

}  // namespace
}  // namespace moejit
