// Decision JSON: round trip, strict parsing with errors that name the field, merge_faster.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "decision.hpp"
#include "fixtures.hpp"
#include "moejit/error.hpp"

namespace moejit {
namespace {

using testing::kToy;
using testing::kToyFile;
using testing::make_decision;

std::string error_of(const nlohmann::json& j) {
  try {
    decision_from_json(j, "d");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(DecisionJson, RoundTripsExactly) {
  Decision d = make_decision(kToy, 1024, "a5_b4", 0.125);
  d.alternatives.push_back({"a4_b4", 0.25, d.provenance});
  EXPECT_EQ(decision_from_json(to_json(d), "d"), d);
  EXPECT_EQ(to_json(d)["key"], "swiglu_fwd/f32/topk2_width32_tb1024");
  EXPECT_EQ(to_json(d)["uri"], "swiglu_fwd/toy1/f32/topk2_width32_tb1024/a5_b4");
  // Named shape fields, not overloaded ones.
  EXPECT_EQ(to_json(d)["problem"]["shape"], (nlohmann::json{{"top_k", 2}, {"width", 32}}));
}

TEST(DecisionJson, ErrorsNameTheField) {
  const nlohmann::json good = to_json(make_decision(kToy, 1024, "a5_b4", 0.125));
  auto without = [&](const char* a, const char* b = nullptr) {
    nlohmann::json j = good;
    if (b)
      j[a].erase(b);
    else
      j.erase(a);
    return j;
  };
  EXPECT_EQ(error_of(without("validators", "arch")), "d.validators.arch: missing");
  EXPECT_EQ(error_of(without("config")), "d.config: missing");
  nlohmann::json j = good;
  j["problem"]["token_bucket"] = 1000;
  EXPECT_NE(error_of(j).find("not a power of two"), std::string::npos);
  j = good;
  j["validators"]["schema"] = 99;
  EXPECT_NE(error_of(j).find("d.validators.schema: version 99 is not supported"), std::string::npos);
  j = good;
  j["time_ms"] = "fast";
  EXPECT_EQ(error_of(j), "d.time_ms: expected a number");
  j = good;
  j["family"] = "../../etc/passwd";
  EXPECT_NE(error_of(j).find("d.family"), std::string::npos);
  j = good;
  j["key"] = "other";
  EXPECT_NE(error_of(j).find("does not match its problem"), std::string::npos);
  j = good;
  j["config"] = "BM128";
  EXPECT_NE(error_of(j).find("d.config: malformed config text"), std::string::npos);
  EXPECT_EQ(error_of(nlohmann::json::array()), "d: expected a JSON object");
}

TEST(DecisionMerge, FasterWinsAndTheLoserIsKept) {
  Decision slow = make_decision(kToy, 1024, "a4_b4", 0.2), fast = make_decision(kToy, 1024, "a5_b4", 0.1);
  fast.provenance.user = "other";
  for (const Decision& winner : {merge_faster(slow, fast), merge_faster(fast, slow)}) {
    EXPECT_EQ(winner.config.to_string(), "a5_b4");
    ASSERT_EQ(winner.alternatives.size(), 1u);
    EXPECT_EQ(winner.alternatives[0].config, "a4_b4");
    EXPECT_EQ(winner.alternatives[0].time_ms, 0.2);
    EXPECT_EQ(winner.alternatives[0].provenance.user, "tester");
  }
  // Idempotent: merging again records nothing new.
  Decision once = merge_faster(slow, fast);
  EXPECT_EQ(merge_faster(once, slow), once);
  EXPECT_EQ(merge_faster(once, once), once);
}

TEST(Validators, MismatchNamesWhatChanged) {
  Validators a = make_decision(kToy, 1, "a1", 1).validators, b = a;
  EXPECT_EQ(a.mismatch(b), "");
  b.template_hash = "ffff";
  EXPECT_NE(a.mismatch(b).find("template hash changed"), std::string::npos);
  b = a;
  b.driver = "13.1";
  EXPECT_NE(a.mismatch(b).find("driver version changed"), std::string::npos);
  EXPECT_TRUE(a.same_device(b));
  b.compute_units = 4;
  EXPECT_FALSE(a.same_device(b));
}

}  // namespace
}  // namespace moejit
