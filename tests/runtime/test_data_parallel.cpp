// The data-parallel checks that need no MPI: the decision-mismatch message (a pure function of the
// ranks' decision texts), the one-process communicator, the gradient groups the backward finishes
// and the reducer that sums them (over a recording communicator). Over real ranks:
// mpi_collectives_main.cpp and test_distributed.py.
#include <gtest/gtest.h>

#include <stdexcept>
#include <thread>

#include "backend_choice.hpp"
#include "data_parallel.hpp"
#include "gradient_reducer.hpp"
#include "model.hpp"
#include "model_config.hpp"

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

// Every tensor in exactly one range of exactly one group: layer l's group holds only "layers.<l>."
// tensors, the last group the rest; split_experts keeps the expert tensors' ranges apart.
TEST(DataParallel, GradientGroupsCoverEveryTensorOnceInBackwardOrder) {
  ThreadPool par(1);
  const auto backend = make_step_backend("reference", par);
  const ModelConfig config = find_model_config("tiny-moe-r20");
  Model<float> model(config, *backend);
  for (bool split : {false, true}) {
    SCOPED_TRACE(split ? "split experts" : "one communicator");
    const auto groups = gradient_groups(model.tensors(), config.layers, split);
    ASSERT_EQ(groups.size(), size_t(config.layers) + 1);
    std::vector<int> owner(size_t(model.param_count()), -1);
    for (size_t g = 0; g < groups.size(); ++g)
      for (const ParamRange& r : groups[g])
        for (int64_t i = r.offset; i < r.offset + r.size; ++i) {
          ASSERT_EQ(owner[size_t(i)], -1) << "element " << i << " in two ranges";
          owner[size_t(i)] = int(g);
        }
    for (const ParamTensor& t : model.tensors()) {
      const std::string prefix = t.name.rfind("layers.", 0) == 0 ? t.name.substr(0, t.name.find('.', 7) + 1) : "";
      const int want = prefix.empty() ? config.layers : std::stoi(prefix.substr(7));
      for (int64_t i = t.offset; i < t.offset + t.size; ++i) ASSERT_EQ(owner[size_t(i)], want) << t.name;
    }
    int expert_ranges = 0;
    for (const auto& group : groups)
      for (const ParamRange& r : group) expert_ranges += r.per_expert;
    EXPECT_EQ(expert_ranges > 0, split);
    if (!split) {  // a layer's tensors are adjacent (the rest's are not: the embedding comes first)
      for (int l = 0; l < config.layers; ++l) EXPECT_EQ(groups[size_t(l)].size(), 1u) << "layer " << l << " not merged";
    }
  }
}

TEST(DataParallel, TheCommunicationThreadNeedsACoreTheRanksLeaveIdle) {
  EXPECT_TRUE(spare_core_for_communication(1, 1, 2));
  EXPECT_FALSE(spare_core_for_communication(2, 1, 2));  // 2 ranks of 1 thread on 2 cores: every core busy
  EXPECT_FALSE(spare_core_for_communication(4, 1, 2));  // oversubscribed
  EXPECT_TRUE(spare_core_for_communication(8, 15, 128));
  EXPECT_FALSE(spare_core_for_communication(8, 16, 128));
  EXPECT_TRUE(spare_core_for_communication(0, 1, 2));  // an MPI that did not say: one rank
}

// Two ranks that hold the same gradients: a sum doubles them. Records each call's size and thread;
// throws once when asked to.
class RecordingComm final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 2; }
  std::string name() const override { return "recording"; }
  void allreduce_sum(std::span<float> data) override {
    if (fail_next.exchange(false)) throw std::runtime_error("planted failure");
    std::this_thread::sleep_for(std::chrono::milliseconds(1));  // long enough that the caller runs ahead
    for (float& x : data) x *= 2;
    std::lock_guard lock(mutex);
    calls.push_back({data.size(), std::this_thread::get_id()});
  }
  void allreduce_sum(std::span<double>) override {}
  std::vector<std::string> allgather(const std::string& text) override { return {text, text}; }
  void alltoallv(std::span<const float>, std::span<const int64_t>, std::span<const int64_t>, std::span<float>,
                 std::span<const int64_t>, std::span<const int64_t>) override {}
  std::vector<int64_t> alltoall(std::span<const int64_t> send) override { return {send.begin(), send.end()}; }
  std::unique_ptr<Communicator> split(int, int) override { return nullptr; }
  [[noreturn]] void abort(const std::string& message, int) override { throw std::runtime_error(message); }

  std::mutex mutex;
  std::vector<std::pair<size_t, std::thread::id>> calls;
  std::atomic<bool> fail_next = false;
};

TEST(GradientReducer, OverlappedSumsEqualTheSequentialOnesAndRunOnTheirOwnThread) {
  ThreadPool par(1);
  const auto backend = make_step_backend("reference", par);
  const int64_t n = 3 * kGradientBucketFloats + 17;  // a range of several buckets
  std::vector<std::vector<float>> results;
  std::vector<std::vector<size_t>> sizes;
  for (bool overlap : {false, true}) {
    Buffer grads = backend->alloc(DType::f32, n);
    float* g = grads.as<float>();
    for (int64_t i = 0; i < n; ++i) g[i] = float(i % 1000) * 0.25f - 7.0f;
    RecordingComm comm;
    GradientReducer reducer(*backend, grads, overlap);
    EXPECT_EQ(reducer.overlapping(), overlap);
    reducer.post(comm, n - 100, 100);  // the order posted, not the offsets, decides the order summed
    reducer.post(comm, 0, n - 100);
    if (!overlap) {
      EXPECT_TRUE(comm.calls.empty()) << "summed before wait()";
    }
    reducer.wait();
    ASSERT_EQ(comm.calls.size(), 4u);  // 100, then 3 buckets
    std::vector<size_t> s;
    for (const auto& [size, thread] : comm.calls) {
      s.push_back(size);
      EXPECT_EQ(thread != std::this_thread::get_id(), overlap);
    }
    sizes.push_back(s);
    results.emplace_back(g, g + n);
    EXPECT_GT(reducer.last_busy_seconds(), 0.0);
  }
  EXPECT_EQ(sizes[0], sizes[1]);
  EXPECT_EQ(sizes[0].front(), 100u);
  EXPECT_EQ(results[0], results[1]);
  EXPECT_EQ(results[0][5], 2 * (5 * 0.25f - 7.0f));
}

TEST(GradientReducer, AFailedSumIsRethrownByWaitAndTheReducerGoesOn) {
  ThreadPool par(1);
  const auto backend = make_step_backend("reference", par);
  for (bool overlap : {false, true}) {
    Buffer grads = backend->alloc(DType::f32, 64);
    RecordingComm comm;
    GradientReducer reducer(*backend, grads, overlap);
    comm.fail_next = true;
    reducer.post(comm, 0, 32);
    reducer.post(comm, 32, 32);  // skipped after the failure
    EXPECT_THROW(reducer.wait(), std::runtime_error);
    EXPECT_TRUE(comm.calls.empty());
    reducer.post(comm, 0, 64);
    EXPECT_NO_THROW(reducer.wait());
    EXPECT_EQ(comm.calls.size(), 1u);
  }
}

}  // namespace
}  // namespace moejit::runtime
