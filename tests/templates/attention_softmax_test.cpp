// The causal ALiBi row softmax (templates/attention/attention_softmax.h): the shared per-row code on
// the CPU against a double reference, forward and backward, in place; the GPU wrapper compiled for
// sm_80 and sm_90a without spills (it runs only where a GPU is lent: the runtime's GPU backend).
#include <gtest/gtest.h>

#include "../common/nvrtc_check.hpp"
#include "../common/test_util.hpp"
#include "arch_limits.hpp"
#include "attention/attention_softmax.h"

namespace moejit {
namespace {

TEST(AttentionSoftmax, RowsMatchADoubleReferenceForwardAndBackwardInPlace) {
  std::mt19937_64 rng(test::test_seed());
  const int64_t S = 37;
  const float scale = 0.125f;
  for (int heads : {1, 4})
    for (int head = 0; head < heads; ++head) {
      const float slope = alibi_slope_f32(head, heads);
      EXPECT_NEAR(slope, std::pow(2.0, -8.0 * (head + 1) / heads), 1e-6 * slope);
      for (int64_t t : {int64_t(0), int64_t(1), int64_t(17), S - 1}) {
        SCOPED_TRACE("head " + std::to_string(head) + "/" + std::to_string(heads) + ", row " + std::to_string(t));
        std::vector<float> row = test::random_floats(S, rng, -6.0f, 6.0f), d_probs = test::random_floats(S, rng);
        // double reference
        std::vector<double> p(S, 0.0), ds(S, 0.0);
        double mx = -1e300, sum = 0, dot = 0;
        for (int64_t s = 0; s <= t; ++s) mx = std::max(mx, double(scale) * row[s] - double(slope) * double(t - s));
        for (int64_t s = 0; s <= t; ++s) sum += p[s] = std::exp(double(scale) * row[s] - double(slope) * (t - s) - mx);
        for (int64_t s = 0; s <= t; ++s) dot += (p[s] /= sum) * d_probs[s];
        for (int64_t s = 0; s <= t; ++s) ds[s] = scale * p[s] * (d_probs[s] - dot);
        // the shared code, in place, on rows poisoned past t
        for (int64_t s = t + 1; s < S; ++s) row[s] = std::nanf("");
        alibi_softmax_row(SingleLane{}, row.data(), row.data(), t, S, scale, slope);
        EXPECT_EQ(test::count_mismatches(p, row, 1e-7, 1e-5, "probs"), 0u);
        alibi_softmax_row_bwd(SingleLane{}, row.data(), d_probs.data(), d_probs.data(), t, S, scale);
        EXPECT_EQ(test::count_mismatches(ds, d_probs, 1e-7, 1e-5, "d_scores"), 0u);
      }
    }
}

TEST(AttentionSoftmax, GpuWrapperCompilesForSm80AndSm90aWithoutSpills) {
  test::TempDir dir;
  BinaryCache cache(dir.path());
  std::vector<Source> sources;
  for (const char* type : {"float", "moejit::bf16"})
    for (int warps : {4, 8}) {
      Source s;
      s.family = "attention_softmax";
      s.config = std::string(type[0] == 'f' ? "f32" : "bf16") + "_w" + std::to_string(warps);
      s.file_name = "attention_softmax." + s.config + ".cu";
      s.code = "#include \"attention/attention_softmax_cuda.cuh\"\n";
      const std::string args = std::string("<") + type + ", " + std::to_string(warps) + ">";
      s.entries = {"moejit::alibi_softmax_fwd_kernel" + args, "moejit::alibi_softmax_bwd_kernel" + args};
      sources.push_back(s);
    }
  for (const char* arch : {"sm_80", "sm_90a"}) test::expect_compiles_without_spills(arch, sources, cache, 64);
}

}  // namespace
}  // namespace moejit
