// `moejit plan` output: the JSON carries the exact counts and the budget arithmetic; the tables
// name what they show.
#include <gtest/gtest.h>

#include "plan_report.hpp"

namespace moejit {
namespace {

TEST(PlanReport, ConfigJsonCarriesExactCountsAndBudget) {
  const ModelConfig c = find_model_config("moe-7b");
  const ParamCounts p = count_params(c);
  const FlopsPerToken f = training_flops_per_token(c);
  const auto j = config_plan_json(c, Budget{316e9, 0});
  EXPECT_EQ(j["config"]["name"], "moe-7b");
  EXPECT_EQ(j["params"]["N"].get<int64_t>(), p.n);
  EXPECT_EQ(j["params"]["N_active"].get<int64_t>(), p.n_active);
  EXPECT_EQ(j["params"]["router_not_in_N"].get<int64_t>(), p.router);
  EXPECT_EQ(j["params"]["embeddings_not_in_N"].get<int64_t>(), p.embeddings);
  EXPECT_EQ(j["params"]["routed_expert"].get<int64_t>(), p.group(ParamGroup::routed_expert));
  EXPECT_DOUBLE_EQ(j["flops_per_token"]["M_train"].get<double>(), f.m_train);
  EXPECT_DOUBLE_EQ(j["compute"].get<double>(), f.m_train * 316e9);
  const auto by_compute = config_plan_json(c, Budget{0, 2.86e21});
  EXPECT_DOUBLE_EQ(by_compute["tokens"].get<double>(), 2.86e21 / f.m_train);
  EXPECT_FALSE(config_plan_json(c, Budget{}).contains("compute"));
}

TEST(PlanReport, TablesNameTheirNumbers) {
  const std::string t = config_plan_table(find_model_config("moe-2b"), Budget{299e9, 0});
  for (const char* s : {"2,150,659,456", "427,267,456", "19.87%", "router (not in N)", "M_train", "9.321e+20"}) {
    EXPECT_NE(t.find(s), std::string::npos) << s << "\n" << t;
  }
  DesignQuery q = design_query_for_baseline(find_model_config("tiny-dense"), 1e9, 0.2);
  q.max_results = 3;
  const auto designs = design_equal_resource(q);
  const DesignCandidate base = evaluate_design(find_model_config("tiny-dense"), q);
  const std::string d = design_plan_table(q, &base, designs);
  EXPECT_NE(d.find("tiny-dense"), std::string::npos) << d;
  for (const auto& x : designs) EXPECT_NE(d.find(x.config.name), std::string::npos) << d;
  const auto j = design_plan_json(q, &base, designs);
  EXPECT_EQ(j["designs"].size(), designs.size());
  EXPECT_EQ(j["baseline"]["config"]["name"], "tiny-dense");
  EXPECT_DOUBLE_EQ(j["query"]["compute"].get<double>(), q.compute);
}

}  // namespace
}  // namespace moejit
