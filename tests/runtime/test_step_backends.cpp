// One training step through the model on the host backend equals the same step on the reference
// backend: the loss and every gradient, on a dense and an MoE config, with a routing that leaves
// experts empty and one skewed onto a few experts (step_compare.hpp). Both backends run fp32; they
// differ in how the kernels order their sums, hence the small tolerances.
#include <gtest/gtest.h>

#include <cstdlib>

#include "host_step_backend.hpp"
#include "step_compare.hpp"

namespace moejit::runtime {
namespace {

using test_step::Case;

constexpr test_step::Tolerance kTolerance{2e-5, 2e-4, 1e-5};

void check_case(const Case& k, uint64_t seed) {
  setenv("MOEJIT_CACHE_DIR", MOEJIT_TEST_JIT_CACHE, 1);
  test::TempDir tuning;  // no decisions: every kernel on its heuristic config
  ThreadPool par(2);
  HostStepBackend host(par, {.kernel_threads = 0, .tuning_dir = tuning.path()});
  test_step::expect_step_equals_reference(host, k, seed, kTolerance);
}

TEST(StepBackends, HostStepEqualsReferenceStepDense) {
  check_case({"micro-dense", 2, 48, false}, test::test_seed());
  check_case({"micro-dense", 2, 48, false, 0, /*tie_embeddings=*/true, "rope"}, test::test_seed() + 1);
}

TEST(StepBackends, HostStepEqualsReferenceStepMoe) {
  const uint64_t seed = test::test_seed();
  check_case({"micro-moe", 2, 48, false}, seed);
  check_case({"micro-moe", 1, 3, false}, seed + 1);  // 6 choices over 8 experts: some stay empty
  check_case({"micro-moe", 2, 48, true}, seed + 2);  // skewed onto experts 0 and 1
}

// Sigmoid scores, selection bias, 4 groups / top 2, renormalised, scaled, 2 shared experts; and with a
// capacity that drops choices, and RoPE; and with the sequence-wise aux loss.
TEST(StepBackends, HostStepEqualsReferenceStepDeepSeekV3Style) {
  const uint64_t seed = test::test_seed();
  check_case({"micro-dsv3", 2, 48, false}, seed);
  check_case({"micro-dsv3", 2, 48, false, 0.5, false, "rope"}, seed + 1);
  check_case({"micro-dsv3", 2, 48, false, 0, false, "alibi", 0.05}, seed + 2);
}

}  // namespace
}  // namespace moejit::runtime
