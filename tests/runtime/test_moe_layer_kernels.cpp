// The MoE layer's kernel list: every step names a built-in family of the backend, with a Problem
// its spec can run (the heuristic config is not pruned), for the shapes of shipped MoE configs.
#include <gtest/gtest.h>

#include <set>

#include "arch_limits.hpp"
#include "moe_layer_steps.hpp"
#include "moejit/error.hpp"
#include "moejit/kernel_spec.hpp"

namespace moejit::runtime {
namespace {

DeviceDescription host_device() {
  DeviceDescription d;
  d.backend = "host";
  d.name = "test host";
  d.arch = "x86-64";
  d.features = "avx2,fma,avx512f";
  d.compute_units = 2;
  d.l2_bytes = 32 << 20;
  return d;
}

// (d_model, d_expert, E, top_k): the tiny default, moe-2b and a fine-grained public shape.
const LayerShape kShapes[] = {
    {DType::f32, 128, 64, 46, 4}, {DType::f32, 2048, 1408, 64, 8}, {DType::bf16, 2048, 768, 128, 8}};

TEST(MoeLayerKernels, FourteenStepsInOrderWithTheirProblems) {
  const LayerShape s{DType::f32, 128, 64, 46, 4};
  const auto kernels = moe_layer_kernels(s, 2048);
  ASSERT_EQ(kernels.size(), static_cast<size_t>(kLayerSteps));
  std::set<std::string> keys;
  for (int i = 0; i < kLayerSteps; ++i) {
    const LayerKernel& k = kernels[static_cast<size_t>(i)];
    EXPECT_EQ(static_cast<int>(k.step), i);
    EXPECT_EQ(k.problem.tokens, 2048);
    if (k.problem.family == Family::swiglu_bwd) {
      EXPECT_EQ(k.problem.row_shape().top_k, 4);
    } else if (family_info(k.problem.family).shape == ShapeKind::routing) {
      EXPECT_EQ(k.problem.routing(), (RoutingShape{46, 4, 128})) << to_string(k.step);
    } else {
      EXPECT_EQ(k.problem.gemm().experts, 46);
      EXPECT_EQ(k.problem.gemm().top_k, 4);
    }
    keys.insert(k.problem.key());
  }
  EXPECT_EQ(keys.size(), static_cast<size_t>(kLayerSteps)) << "two steps share a tuning key";
  const auto at = [&](LayerStep step) { return kernels[static_cast<size_t>(step)].problem; };
  // One name per operation: the fused up projection is grouped_gemm_up_swiglu on either backend.
  EXPECT_EQ(at(LayerStep::up_swiglu).family, Family::grouped_gemm_up_swiglu);
  EXPECT_EQ(at(LayerStep::up_swiglu).gemm(), (GemmShape{46, 4, 128, 64}));  // K = C, N = De
  for (LayerStep step : {LayerStep::down_fwd, LayerStep::down_dgrad, LayerStep::down_wgrad})
    EXPECT_EQ(at(step).gemm(), (GemmShape{46, 4, 64, 128})) << to_string(step);  // K = De, N = C
  for (LayerStep step : {LayerStep::up_dgrad, LayerStep::up_wgrad})
    EXPECT_EQ(at(step).gemm(), (GemmShape{46, 4, 128, 128})) << to_string(step);  // N = 2 De
  EXPECT_EQ(at(LayerStep::swiglu_bwd).row_shape(), (RowsShape{4, 64}));
  EXPECT_EQ(at(LayerStep::gate_bwd).family, Family::route_gate_bwd);
}

void expect_runnable(const std::string& backend, const DeviceDescription& device) {
  for (const LayerShape& shape : kShapes) {
    if (backend == "host" && shape.dtype != DType::f32) continue;  // host GEMMs are f32
    for (const LayerKernel& k : moe_layer_kernels(shape, 4096)) {
      SCOPED_TRACE(k.problem.to_string());
      const KernelSpec& spec = spec_for(k.problem.family, backend);
      EXPECT_TRUE(spec.supports_backend(backend));
      const Config c = spec.heuristic(k.problem, device);
      EXPECT_EQ(spec.prune_reason(k.problem, c, device), "") << c.to_string();
      EXPECT_FALSE(spec.space(k.problem, device).empty());
    }
  }
}

TEST(MoeLayerKernels, EveryHostStepIsRunnableByItsSpec) {
  expect_runnable("host", host_device());
}

TEST(MoeLayerKernels, EveryCudaStepIsRunnableByItsSpec) {
  expect_runnable("cuda", arch_limits("sm_90a"));
  expect_runnable("cuda", arch_limits("sm_80"));
}

TEST(MoeLayerKernels, BadShapeIsAClearError) {
  EXPECT_THROW(moe_layer_kernels({DType::f32, 128, 64, 4, 8}, 16), Error);  // top_k > E
  EXPECT_THROW(moe_layer_kernels({DType::f32, 128, 64, 46, 4}, -1), Error);
}

}  // namespace
}  // namespace moejit::runtime
