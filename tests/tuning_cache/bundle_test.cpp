// Bundles: export -> import on a clean cache gives identical lookups; merge keeps the faster and
// records both; malformed, truncated or wrong-schema bundles are refused and never touch the store.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "bundle.hpp"
#include "files.hpp"
#include "fixtures.hpp"
#include "lookup.hpp"
#include "moejit/error.hpp"
#include "toy_backend.hpp"
#include "validators.hpp"

namespace moejit {
namespace {

using testing::kToy;
using testing::kToyFile;
using testing::make_decision;
using testing::TempDir;

std::string parse_error(const std::string& text) {
  try {
    parse_bundle(text, "b.json");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Bundle, ExportThenImportOnACleanCacheGivesIdenticalLookups) {
  toy::reset_world();
  toy::ToyBackend backend;
  toy::ToySpec spec;
  TempDir a("bundle-a"), b("bundle-b");
  std::vector<Decision> decisions;
  for (int64_t bucket : {1, 64, 4096}) {
    Decision d;
    d.problem = toy::toy_problem(bucket);
    d.config = Config{{"a", bucket % 7 + 1}, {"b", 2}};
    d.time_ms = 0.01 * static_cast<double>(bucket);
    d.validators = current_validators(spec, d.problem, d.config, backend.device(), backend.compiler());
    d.provenance = Provenance::here("exhaustive");
    decisions.push_back(d);
  }
  Decision other_device = decisions[1];
  other_device.validators.device = "Toy CPU Pro";
  other_device.problem.tokens = 65536;
  decisions.push_back(other_device);
  TuningStore(a.path).record(decisions);

  const std::string text = render_bundle(export_bundle(TuningStore(a.path)));
  Bundle bundle = parse_bundle(text, "bundle");
  EXPECT_EQ(bundle.decisions.size(), 4u);
  EXPECT_FALSE(bundle.exported.user.empty());
  TuningStore clean(b.path);
  auto report = import_bundle(clean, bundle);
  EXPECT_EQ(report.added, 4);
  EXPECT_TRUE(report.conflicts.empty());

  TuningLookup la{TuningStore(a.path)}, lb{TuningStore(b.path)};
  for (int64_t tokens : {1, 3, 60, 100, 1000, 4000, 9000, 65536}) {
    LookupResult ra = la.lookup(spec, toy::toy_problem(tokens), backend);
    LookupResult rb = lb.lookup(spec, toy::toy_problem(tokens), backend);
    EXPECT_EQ(ra.config, rb.config) << tokens;
    EXPECT_EQ(ra.rung, rb.rung) << tokens;
    EXPECT_EQ(ra.decision, rb.decision) << tokens;
  }
  // Importing the same bundle again changes nothing.
  EXPECT_EQ(import_bundle(clean, bundle).unchanged, 4);
}

TEST(Bundle, MergeConflictKeepsTheFasterAndRecordsBoth) {
  Bundle a, b;
  a.exported = Provenance::here("export");
  b.exported = a.exported;
  b.exported.user = "bob";
  a.decisions = {make_decision(kToy, 1024, "a4_b4", 0.2), make_decision(kToy, 1, "a1_b1", 0.5)};
  b.decisions = {make_decision(kToy, 1024, "a5_b4", 0.1), make_decision(kToy, 2, "a1_b2", 0.5)};
  b.decisions[0].provenance.user = "bob";
  std::vector<std::string> conflicts;
  Bundle merged = merge_bundles(a, b, &conflicts);
  ASSERT_EQ(conflicts.size(), 1u);
  EXPECT_NE(conflicts[0].find("a4_b4"), std::string::npos);
  EXPECT_NE(conflicts[0].find("keeps a5_b4"), std::string::npos);
  ASSERT_EQ(merged.decisions.size(), 3u);
  const Decision& won = merged.decisions[0];
  EXPECT_EQ(won.config.to_string(), "a5_b4");
  EXPECT_EQ(won.provenance.user, "bob");
  ASSERT_EQ(won.alternatives.size(), 1u);
  EXPECT_EQ(won.alternatives[0].config, "a4_b4");
  EXPECT_EQ(won.alternatives[0].time_ms, 0.2);
  EXPECT_EQ(merged.sources.size(), 2u);
  // The merged bundle survives its own round trip, and merge order does not change the winner.
  EXPECT_EQ(parse_bundle(render_bundle(merged), "m").decisions, merged.decisions);
  EXPECT_EQ(merge_bundles(b, a, nullptr).decisions[0].config.to_string(), "a5_b4");
}

TEST(Bundle, BadBundlesAreRefusedWithClearErrorsAndTheStoreIsUntouched) {
  TempDir dir("bundle-bad");
  TuningStore store(dir.path);
  store.record({make_decision(kToy, 1024, "a5_b4", 0.1)});
  const std::string before = *read_file(dir.path / kToyFile);

  Bundle good;
  good.exported = Provenance::here("export");
  good.decisions = {make_decision(kToy, 1024, "a1_b1", 0.05), make_decision(kToy, 2048, "a1_b1", 0.05)};
  const std::string text = render_bundle(good);

  EXPECT_NE(parse_error(text.substr(0, text.size() / 2)).find("b.json: not valid JSON"), std::string::npos);
  EXPECT_NE(parse_error("{\"decisions\": []}").find("not a moejit bundle"), std::string::npos);
  nlohmann::json j = nlohmann::json::parse(text);
  j["moejit_bundle"] = 1;  // an older moejit's bundle
  EXPECT_NE(parse_error(j.dump()).find("bundle schema 1 is not supported"), std::string::npos);
  EXPECT_NE(parse_error(j.dump()).find("moejit tune --model"), std::string::npos);
  j = nlohmann::json::parse(text);
  j["decisions"][1]["validators"].erase("template_hash");
  EXPECT_EQ(parse_error(j.dump()), "b.json.decisions[1].validators.template_hash: missing");
  j = nlohmann::json::parse(text);
  j["exported"]["date"] = 5;
  EXPECT_EQ(parse_error(j.dump()), "b.json.exported.date: expected a string");

  // Every truncation of a good bundle is refused (and nothing crashes); the store never changes
  // because parsing completes before import_bundle touches it.
  for (size_t n = 0; n < text.size(); n += 7) {
    try {
      import_bundle(store, parse_bundle(text.substr(0, n), "cut"));
      ADD_FAILURE() << "a bundle cut at " << n << " bytes was accepted";
    } catch (const Error&) {
    }
  }
  EXPECT_EQ(*read_file(dir.path / kToyFile), before);
}

}  // namespace
}  // namespace moejit
