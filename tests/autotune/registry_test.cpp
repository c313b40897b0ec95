// The kernel-family registry is complete: every family of the table (jit/family.cpp) has, on each
// backend it declares, a KernelSpec (templates/registry.cpp) and a tuning workload
// (autotune/workloads.cpp), and serves at least one step of the MoE layer
// (templates/moe_layer_steps.cpp). "skipped (no workload registered)" cannot happen.
#include <gtest/gtest.h>

#include <set>

#include "moe_layer_steps.hpp"
#include "moejit/error.hpp"
#include "moejit/kernel_spec.hpp"
#include "workload.hpp"

namespace moejit {
namespace {

TEST(FamilyRegistry, TableIsInEnumOrderWithUniqueNames) {
  ASSERT_EQ(all_families().size(), static_cast<size_t>(kFamilyCount));
  std::set<std::string_view> names;
  for (size_t i = 0; i < all_families().size(); ++i) {
    const FamilyInfo& f = all_families()[i];
    EXPECT_EQ(static_cast<size_t>(f.id), i) << f.name;
    EXPECT_TRUE(names.insert(f.name).second) << "duplicate name " << f.name;
    EXPECT_EQ(find_family(f.name), f.id);
    EXPECT_TRUE(f.on_host || f.on_cuda) << f.name << " runs nowhere";
    EXPECT_FALSE(f.summary.empty()) << f.name;
  }
}

TEST(FamilyRegistry, EveryDeclaredBackendHasASpecAndAWorkload) {
  int pairs = 0;
  for (const FamilyInfo& f : all_families())
    for (std::string_view backend : kBackendNames) {
      SCOPED_TRACE(std::string(f.name) + " on " + std::string(backend));
      if (!implemented_on(f.id, backend)) {
        EXPECT_THROW(spec_for(f.id, backend), Error);
        EXPECT_THROW(make_workload(f.id, backend), Error);
        continue;
      }
      const KernelSpec& spec = spec_for(f.id, backend);
      EXPECT_EQ(spec.family(), f.id);
      EXPECT_TRUE(spec.supports_backend(backend));
      EXPECT_NE(make_workload(f.id, backend), nullptr);
      ++pairs;
    }
  EXPECT_EQ(static_cast<size_t>(pairs), registered_specs().size());
}

TEST(FamilyRegistry, EveryFamilyServesALayerStepInItsShapeKind) {
  const LayerShape layer{DType::f32, 64, 32, 8, 2};
  std::set<Family> served;
  for (const LayerKernel& k : moe_layer_kernels(layer, 100)) {
    EXPECT_EQ(k.problem.family, family_of(k.step));
    EXPECT_EQ(kind_of(k.problem.shape), family_info(k.problem.family).shape) << to_string(k.step);
    served.insert(k.problem.family);
  }
  for (const FamilyInfo& f : all_families())
    EXPECT_EQ(served.count(f.id) == 1, f.standalone.empty())
        << f.name << (f.standalone.empty() ? " serves no layer step" : " is marked standalone but serves a step");
}

TEST(FamilyRegistry, UnknownNamesAndBackendsAreClearErrors) {
  try {
    parse_family("host_grouped_gemm_swiglu");
    FAIL() << "schema 1's host family name parsed";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("known: swiglu_fwd"), std::string::npos) << e.what();
  }
  try {
    spec_for(Family::grouped_gemm_fwd, "tpu");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("implemented on: host, cuda"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace moejit
