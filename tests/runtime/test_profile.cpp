// The profiler's two clocks: the host's, and a device timer's marks (the cuda backend's CUDA events)
// read at settle(); a scope the timer cannot mark (a graph-replayed step) keeps the host's time.
#include <gtest/gtest.h>

#include <thread>

#include "profile.hpp"

namespace moejit::runtime {
namespace {

// Mark k is at time k seconds; marks are refused while `refuse` is set. Counts resets.
class FakeTimer final : public DeviceTimer {
 public:
  int mark() override { return refuse ? -1 : next++; }
  double seconds(int from, int to) override { return double(to - from); }
  void reset() override { ++resets; }
  bool refuse = false;
  int next = 0, resets = 0;
};

TEST(Profiler, DeviceTimedScopesCountOnceSettledHostTimedOnesAtOnce) {
  Profiler p;
  FakeTimer timer;
  p.use_device_timer(&timer);
  {
    auto outer = timed(&p, "layer");     // marks 0 and 3
    { auto inner = timed(&p, "gemm"); }  // marks 1 and 2
  }
  EXPECT_TRUE(p.entries().empty()) << "device times are read only at settle()";
  timer.refuse = true;
  {
    auto t = timed(&p, "replayed");
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  ASSERT_EQ(p.entries().count("replayed"), 1u);
  EXPECT_GE(p.entries().at("replayed").seconds, 0.002);
  p.settle();
  EXPECT_EQ(p.entries().at("layer").seconds, 3.0);
  EXPECT_EQ(p.entries().at("gemm").seconds, 1.0);
  EXPECT_EQ(p.entries().at("gemm").calls, 1);
  EXPECT_EQ(timer.resets, 1);  // settle frees the marks for reuse
  timer.refuse = false;
  { auto t = timed(&p, "gemm"); }
  p.clear();  // settles first, so no mark is left pending
  EXPECT_TRUE(p.entries().empty());
  p.settle();
  EXPECT_TRUE(p.entries().empty());
}

TEST(Profiler, WithoutATimerEveryScopeIsHostTime) {
  Profiler p;
  { auto t = timed(&p, "x"); }
  { auto t = timed(nullptr, "ignored"); }
  p.settle();
  ASSERT_EQ(p.entries().size(), 1u);
  EXPECT_EQ(p.entries().at("x").calls, 1);
}

}  // namespace
}  // namespace moejit::runtime
