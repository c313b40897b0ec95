// The MoE layer (float, through MoeKernels with the reference backend) against the naive per-token
// reference in double (naive_moe.hpp): forward output, router losses and every gradient; routings with
// empty experts.
#include "naive_moe.hpp"
#include "reference_step_backend.hpp"

namespace moejit::runtime {
namespace {

void check_against_naive(int64_t N, MoeDims d, bool skew, uint64_t seed) {
  SCOPED_TRACE("seed " + std::to_string(seed) + ", N " + std::to_string(N));
  d.coefs = {0.05, 0.01};
  const test_moe::Naive ref = test_moe::make_problem(N, d, skew, seed);
  ThreadPool par(2);
  ReferenceStepBackend<float> backend(par);
  // fp32 accumulation over C, De <= 64 terms
  test_moe::expect_matches(ref, test_moe::run_layer(backend, d, ref), skew, 1e-5, 1e-4);
}

TEST(MoeLayer, MatchesNaiveReferenceRandomRouting) {
  check_against_naive(37, {16, 8, 2, 12, 24}, false, test::test_seed());
}

TEST(MoeLayer, MatchesNaiveReferenceWithEmptyExperts) {
  check_against_naive(3, {16, 8, 2, 12, 24}, false, test::test_seed());  // 6 assignments, 8 experts
  check_against_naive(29, {16, 8, 3, 12, 24}, true, test::test_seed());
}

TEST(MoeLayer, MatchesNaiveReferenceWithoutSharedExpertTopOne) {
  check_against_naive(21, {8, 4, 1, 16, 0}, false, test::test_seed());
}

TEST(MoeLayer, TuningSummaryCountsEveryRungAndNamesFallbacks) {
  std::vector<KernelChoice> c = {
      {"a", "bm64", Rung::exact}, {"b", "bm32", Rung::nearest_bucket}, {"c", "bm16", Rung::exact}};
  EXPECT_EQ(summarize_tuning(c), "3 kernels tuned, 1 of them for another problem: 2 exact, 1 nearest_bucket");
  c.push_back({"d", "", Rung::heuristic});
  EXPECT_EQ(summarize_tuning(c), "1 of 4 kernels not tuned: d (heuristic); 3 tuned (2 exact, 1 nearest_bucket)");
  ThreadPool par(1);
  EXPECT_EQ(ReferenceMoeKernels<float>(par).kernel_choices().size(), size_t(kLayerSteps));
  EXPECT_EQ(summarize_tuning(ReferenceMoeKernels<float>(par).kernel_choices()),
            "14 of 14 kernels not tuned: gate_fwd (reference), plan (reference), permute_fwd (reference), "
            "up_swiglu (reference), and 10 more; 0 tuned");
  EXPECT_EQ(summarize_tuning(ReferenceStepBackend<float>(par).kernel_choices()), "no tuned kernels");
}

}  // namespace
}  // namespace moejit::runtime
