// launch_grouped_gemm without a GPU: a recording Kernel checks the launch shape and the kernel
// parameters of the tc80 path, and the errors for configs or arguments that cannot run.
#include <gtest/gtest.h>

#include <cstring>

#include "arch_limits.hpp"
#include "grouped_gemm/grouped_gemm_spec.hpp"
#include "moejit/error.hpp"

namespace moejit {
namespace {

class RecordingKernel final : public Kernel {
 public:
  void launch(const LaunchDims& dims, void** args) override {
    ++launches;
    last = dims;
    std::memcpy(&params, args[0], sizeof params);
  }
  const std::string& name() const override { return name_; }
  int launches = 0;
  LaunchDims last;
  gg::Params params;

 private:
  std::string name_ = "recording";
};

Problem problem(int op, int64_t tokens) {
  return Problem(GroupedGemmSpec::family_of(op), DType::bf16, GemmShape{64, 8, 2048, 1024}, tokens);
}

GroupedGemmArgs fake_args() {
  static char memory[64];  // never dereferenced: the recording kernel does not run
  GroupedGemmArgs a;
  a.a = memory, a.b = memory + 16, a.out = memory + 32, a.out_gate_up = memory + 48;
  a.offsets = reinterpret_cast<const int*>(memory);
  return a;
}

TEST(GroupedGemmLaunch, Tc80LaunchesAPersistentGridWithTheCallsParameters) {
  const DeviceDescription a100 = arch_limits("sm_80");
  const Config c = GroupedGemmSpec::tc80_heuristic(a100);
  for (int op : {gg::kFwd, gg::kUpSwiglu, gg::kDgrad, gg::kWgrad}) {
    RecordingKernel k;
    GroupedGemmArgs args = fake_args();
    args.accumulate = op == gg::kWgrad;
    launch_grouped_gemm(k, problem(op, 4096), c, a100, args);
    ASSERT_EQ(k.launches, 1);
    EXPECT_EQ(k.last.block[0], 256u);
    EXPECT_EQ(k.last.shared_bytes, GroupedGemmSpec::shared_bytes(op, c));
    EXPECT_GE(k.last.grid[0], 1u);
    EXPECT_LE(k.last.grid[0], static_cast<unsigned>(a100.compute_units * 8));
    EXPECT_EQ(k.params.dims.k, 2048);
    EXPECT_EQ(k.params.dims.n, 1024);
    EXPECT_EQ(k.params.dims.num_experts, 64);
    EXPECT_EQ(k.params.offsets, args.offsets);
    EXPECT_EQ(k.params.in.a, static_cast<const bf16*>(args.a));
    EXPECT_EQ(k.params.accumulate, op == gg::kWgrad ? 1 : 0);
  }
  // Tiny calls never launch more CTAs than there can be tiles.
  RecordingKernel k;
  launch_grouped_gemm(k, problem(gg::kFwd, 1), c, a100, fake_args());
  const int64_t max_tiles = (1 + 64) * (1024 / 128);  // (ceil(8 rows / 128) + E) * N tiles
  EXPECT_LE(k.last.grid[0], static_cast<unsigned>(max_tiles));
}

TEST(GroupedGemmLaunch, NoRowsNoLaunchExceptWgrad) {
  const DeviceDescription a100 = arch_limits("sm_80");
  const Config c = GroupedGemmSpec::tc80_heuristic(a100);
  RecordingKernel fwd, wgrad;
  launch_grouped_gemm(fwd, problem(gg::kFwd, 0), c, a100, fake_args());
  EXPECT_EQ(fwd.launches, 0);
  launch_grouped_gemm(wgrad, problem(gg::kWgrad, 0), c, a100, fake_args());  // writes zero dW
  EXPECT_EQ(wgrad.launches, 1);
}

TEST(GroupedGemmLaunch, RefusesWhatCannotRun) {
  const DeviceDescription a100 = arch_limits("sm_80");
  RecordingKernel k;
  // tc90 on sm_80.
  EXPECT_THROW(launch_grouped_gemm(k, problem(gg::kFwd, 64), GroupedGemmSpec::tc90_heuristic(), a100, fake_args()),
               Error);
  // Missing GU output for the fused up projection.
  GroupedGemmArgs args = fake_args();
  args.out_gate_up = nullptr;
  EXPECT_THROW(launch_grouped_gemm(k, problem(gg::kUpSwiglu, 64), GroupedGemmSpec::tc80_heuristic(a100), a100, args),
               Error);
  // Null offsets.
  args = fake_args();
  args.offsets = nullptr;
  EXPECT_THROW(launch_grouped_gemm(k, problem(gg::kFwd, 64), GroupedGemmSpec::tc80_heuristic(a100), a100, args), Error);
  EXPECT_EQ(k.launches, 0);
}

}  // namespace
}  // namespace moejit
