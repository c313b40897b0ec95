// The data-parallel checks that need no MPI: the decision-mismatch message (a pure function of the
// ranks' decision texts) and the one-process communicator. Over real ranks: mpi_collectives_main.cpp
// and test_distributed.py.
#include <gtest/gtest.h>

#include "data_parallel.hpp"

namespace moejit::runtime {
namespace {

std::vector<KernelChoice> choices(const std::string& up_config) {
  return {{"gate_fwd", "w4", std::nullopt}, {"up_swiglu", up_config, std::nullopt}, {"down_fwd", "", std::nullopt}};
}

TEST(DataParallel, SameDecisionsOnEveryRankPass) {
  const std::string text = decisions_text(choices("bm32_bn64"));
  EXPECT_EQ(text, "gate_fwd w4\nup_swiglu bm32_bn64\ndown_fwd reference\n");
  EXPECT_EQ(decision_mismatch({text, text, text}), "");
  EXPECT_EQ(decision_mismatch({text}), "");
}

TEST(DataParallel, MismatchNamesFirstRankAndKernelWithBothConfigs) {
  const std::string a = decisions_text(choices("bm32_bn64")), b = decisions_text(choices("bm64_bn64"));
  const std::string why = decision_mismatch({a, a, b, b});
  EXPECT_NE(why.find("rank 2 would run kernel up_swiglu with config bm64_bn64, rank 0 with bm32_bn64"),
            std::string::npos)
      << why;
  EXPECT_NE(why.find("same MOEJIT_CACHE_DIR"), std::string::npos) << why;
}

TEST(DataParallel, MismatchWhenOneRankHasAnExtraKernel) {
  auto more = choices("bm32_bn64");
  more.push_back({"combine_fwd", "w8", std::nullopt});
  const std::string why = decision_mismatch({decisions_text(choices("bm32_bn64")), decisions_text(more)});
  EXPECT_NE(why.find("rank 1 would run kernel combine_fwd with config w8, rank 0 with (no decision)"),
            std::string::npos)
      << why;
}

TEST(DataParallel, ExpertParallelLeavesPerRankExpertGemmsOutOfTheCheck) {
  const auto all = choices("bm32_bn64");
  EXPECT_EQ(decisions_text(shared_decisions(all, false)), decisions_text(all));
  // up_swiglu and down_fwd run on each rank's own rows under expert parallelism; gate_fwd does not.
  EXPECT_EQ(decisions_text(shared_decisions(all, true)), "gate_fwd w4\n");
}

TEST(DataParallel, OneProcessCollectivesAreTheIdentity) {
  auto comm = make_single_process_communicator();
  EXPECT_EQ(comm->size(), 1);
  std::vector<float> v = {1.5f, -2.f};
  comm->allreduce_sum(std::span<float>(v));
  EXPECT_EQ(v, (std::vector<float>{1.5f, -2.f}));
  EXPECT_EQ(comm->allgather("x"), std::vector<std::string>{"x"});
  EXPECT_NO_THROW(verify_same_decisions(*comm, choices("a")));
}

}  // namespace
}  // namespace moejit::runtime
