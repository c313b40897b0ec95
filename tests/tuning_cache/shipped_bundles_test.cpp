// The bundles that ship with moejit (tuning_cache/bundles/*.json, the lookup's `shipped` rung): each
// parses, holds cuda decisions only (a CPU is not a device model worth shipping for), and every
// decision still renders, for its arch, to the template hash it was tuned with. A decision that
// fails here would be ignored on every user's machine: re-tune it and re-export the bundle
// (docs/tuning_cache.md, "Shipped bundles").
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdio>
#include <filesystem>

#include "arch_limits.hpp"
#include "bundle.hpp"
#include "files.hpp"
#include "moejit/kernel_spec.hpp"
#include "nvrtc_compiler.hpp"
#include "shipped.hpp"
#include "validators.hpp"

namespace moejit {
namespace {

TEST(ShippedBundles, ParseAndMatchTheCurrentTemplates) {
  const ShippedDecisions shipped = load_shipped(MOEJIT_SOURCE_SHIPPED_DIR);
  for (const std::string& why : shipped.rejected) ADD_FAILURE() << why;
  std::printf("%zu shipped bundle(s) in %s\n", shipped.bundles.size(), MOEJIT_SOURCE_SHIPPED_DIR);
  int checked = 0;
  for (const auto& [family, decisions] : shipped.by_family)
    for (const Decision& d : decisions) {
      SCOPED_TRACE(d.uri());
      ASSERT_EQ(d.validators.backend, "cuda");
      const DeviceDescription device = arch_limits(d.validators.arch);
      const NvrtcCompiler compiler(d.validators.arch);
      const KernelSpec& spec = spec_for(family, "cuda");
      EXPECT_EQ(template_hash(spec, d.problem, d.config, device, compiler), d.validators.template_hash)
          << "the template changed since this decision was tuned";
      EXPECT_EQ(spec.prune_reason(d.problem, d.config, device), "");
      ++checked;
    }
  std::printf("%d shipped decision(s) checked\n", checked);
}

// The check above is not vacuous: a bundle it reads is found and parsed (here, a written one).
TEST(ShippedBundles, TheLoaderReadsEveryJsonFileOfTheDirectory) {
  const auto dir = std::filesystem::temp_directory_path() / ("moejit-shipped-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  Bundle empty;
  empty.exported = Provenance::here("test");
  write_file_atomic(dir / "a.json", render_bundle(empty));
  write_file_atomic(dir / "README.md", "not a bundle");
  const ShippedDecisions shipped = load_shipped(dir);
  EXPECT_EQ(shipped.bundles.size(), 1u);
  EXPECT_TRUE(shipped.rejected.empty()) << shipped.rejected[0];
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace moejit
