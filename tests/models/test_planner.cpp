// Training FLOPs against the paper's compute figures, and the equal-resource planner against the
// paper's designs and a brute-force enumeration.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <set>
#include <tuple>

#include "model_config.hpp"
#include "moejit/error.hpp"
#include "planner.hpp"

namespace moejit {
namespace {

TEST(Flops, MTrainIsSixNActivePlusAttentionScoresAndThePartsAddUp) {
  for (const auto& name : list_model_configs()) {
    const ModelConfig c = find_model_config(name);
    const ParamCounts p = count_params(c);
    const FlopsPerToken f = training_flops_per_token(c);
    const double expected =
        6.0 * static_cast<double>(p.n_active) + 12.0 * static_cast<double>(c.layers * c.d_model * c.seq_len);
    EXPECT_DOUBLE_EQ(f.m_train, expected) << name;
    const double parts =
        f.attention_proj + f.attention_scores + f.dense_ffn + f.shared_expert + f.routed_expert + f.norm;
    EXPECT_NEAR(parts, f.m_train, 1e-9 * f.m_train) << name;
    EXPECT_DOUBLE_EQ(f.router, 6.0 * static_cast<double>(p.router)) << name;
    EXPECT_DOUBLE_EQ(tokens_for_compute(c, compute_for_tokens(c, 1e9)), 1e9) << name;
  }
}

// 7B: C ~ 2.86e21 with ~316B tokens. Allowed error: the quoted rounding of both numbers
// (0.5B of 316B and 0.005e21 of 2.86e21), about 0.33%.
TEST(Flops, Moe7bComputeMatchesThePaperWithinRounding) {
  const double c = compute_for_tokens(find_model_config("moe-7b"), 316e9);
  EXPECT_LE(std::abs(c / 2.86e21 - 1.0), 0.5 / 316 + 0.005 / 2.86) << c;
}

// 2B: paper.md quotes C ~ 9.1e20 with ~299B tokens. M_train(moe-2b) * 299B = 9.32e20, 2.4% above:
// 9.1e20 / M_train(moe-2b) = 292B, outside the rounding of "299B". The same 299B on moe-2b-alt
// gives 9.03e20 (0.8% off). We pin our numbers so a change is noticed, and keep the gap visible
// here rather than loosening the formula (the 7B row agrees to 0.2% with the same formula).
TEST(Flops, Moe2bComputeAgainstThePaper) {
  const double c = compute_for_tokens(find_model_config("moe-2b"), 299e9);
  EXPECT_NEAR(c / 9.1e20 - 1.0, 0.0243, 0.001) << c;
  EXPECT_NEAR(tokens_for_compute(find_model_config("moe-2b"), 9.1e20), 291.9e9, 0.1e9);
  const double alt = compute_for_tokens(find_model_config("moe-2b-alt"), 299e9);
  EXPECT_LE(std::abs(alt / 9.1e20 - 1.0), 0.01) << alt;
}

// Equal C: the dense baselines' tokens at the paper's budgets, and the MoE's tokens multiple.
TEST(Flops, EqualComputeGivesMoeMoreTokens) {
  const double c = 2.86e21;
  const double dense = tokens_for_compute(find_model_config("dense-7b"), c);
  const double moe = tokens_for_compute(find_model_config("moe-7b"), c);
  EXPECT_NEAR(dense, 68.0e9, 0.1e9);
  EXPECT_GT(moe / dense, 4.6);
  EXPECT_LT(moe / dense, 4.7);
}

DesignQuery paper_query(const char* baseline, double target_ra) {
  return design_query_for_baseline(find_model_config(baseline), 0, target_ra);
}

// Pinned to the paper's shape except D_se and K, the planner must find the paper's moe-2b / moe-7b
// from their dense baselines, with the exact counts of the shipped configs.
TEST(Planner, FindsThePaperDesignsFromTheirDenseBaselines) {
  struct Case {
    const char* dense;
    const char* moe;
  };
  for (const Case& tc : {Case{"dense-2b", "moe-2b"}, Case{"dense-7b", "moe-7b"}}) {
    const ModelConfig paper = find_model_config(tc.moe);
    DesignQuery q = paper_query(tc.dense, 0.2);
    q.layers = {paper.layers, paper.layers};
    q.d_model = {paper.d_model, paper.d_model};
    q.experts = {paper.moe->experts, paper.moe->experts};
    q.d_expert = {paper.moe->d_expert, paper.moe->d_expert};
    q.d_shared = {paper.moe->d_shared, paper.moe->d_shared};
    q.dense_ffn = paper.d_ffn;
    const auto designs = design_equal_resource(q);
    ASSERT_EQ(designs.size(), 1u) << tc.moe;
    const ModelConfig& got = designs[0].config;
    EXPECT_EQ(got.moe->top_k, paper.moe->top_k) << tc.moe << ": K solved for r_a = 20%";
    EXPECT_EQ(designs[0].counts.n, count_params(paper).n) << tc.moe;
    EXPECT_EQ(designs[0].counts.n_active, count_params(paper).n_active) << tc.moe;
    EXPECT_EQ(got.heads, paper.heads);
    EXPECT_EQ(got.moe->dense_layers, paper.moe->dense_layers);
  }
}

// Every design returned honours the query; tokens and epochs follow from equal C.
TEST(Planner, DesignsHonourTheQuery) {
  DesignQuery q = design_query_for_baseline(find_model_config("tiny-dense"), 1e9, 0.2);
  q.d_model = {64, 256};
  q.unique_tokens = 2e8;
  q.max_results = 50;
  const auto designs = design_equal_resource(q);
  ASSERT_FALSE(designs.empty());
  std::map<std::pair<int64_t, int64_t>, int> per_shape;
  double last_score = -1;
  for (const auto& d : designs) {
    const ModelConfig& c = d.config;
    SCOPED_TRACE(c.name);
    EXPECT_EQ(d.counts.n, count_params(c).n);
    EXPECT_LE(std::abs(d.n_error), q.n_tolerance);
    EXPECT_LE(std::abs(d.ra_error), q.ra_tolerance);
    EXPECT_NEAR(d.counts.activation_rate() - 0.2, d.ra_error, 1e-12);
    EXPECT_TRUE(q.layers.contains(c.layers) && q.d_model.contains(c.d_model) && q.experts.contains(c.moe->experts) &&
                q.top_k.contains(c.moe->top_k) && q.d_expert.contains(c.moe->d_expert) &&
                q.d_shared.contains(c.moe->d_shared));
    EXPECT_EQ(c.heads * c.head_dim, c.d_model);
    EXPECT_EQ(c.moe->d_expert % 64, 0);
    EXPECT_EQ(c.moe->d_shared % 64, 0);
    EXPECT_EQ(c.d_ffn % 64, 0);
    EXPECT_NEAR(d.tokens * d.flops.m_train, q.compute, 1e-9 * q.compute);
    EXPECT_NEAR(d.epochs, d.tokens / 2e8, 1e-12 * d.epochs);
    EXPECT_LE(++per_shape[std::make_pair(c.layers, c.d_model)], static_cast<int>(q.per_shape));
    const double score = std::abs(d.ra_error) / 0.2 + std::abs(d.n_error);
    EXPECT_GE(score, last_score - 1e-15) << "designs must come best first";
    last_score = score;
  }
}

// Brute force over a small space with count_params alone: for each (L, d, E, D_e, D_se) take the K
// whose r_a is nearest the target, keep what meets both tolerances. The planner, asked for all of
// them, must return the same set.
TEST(Planner, MatchesBruteForceOnASmallSpace) {
  DesignQuery q = design_query_for_baseline(find_model_config("tiny-dense"), 0, 0.25);
  q.layers = {4, 6};
  q.d_model = {128, 192};
  q.experts = {8, 16};
  q.top_k = {1, 8};
  q.d_expert = {64, 256};
  q.d_shared = {0, 512};
  q.n_tolerance = 0.02;
  q.ra_tolerance = 0.02;
  q.max_results = 1'000'000;
  q.per_shape = 1'000'000;
  std::set<std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t, int64_t>> expected, got;
  const ModelConfig moe_template = find_model_config("tiny-moe-r20");  // 1 dense layer, same vocab/seq/head_dim
  for (int64_t l = 4; l <= 6; ++l)
    for (int64_t d = 128; d <= 192; d += 64)
      for (int64_t e = 8; e <= 16; ++e)
        for (int64_t de = 64; de <= 256; de += 64)
          for (int64_t se = 0; se <= 512; se += 64) {
            double best_err = 1e9;
            int64_t best_k = 0;
            ParamCounts best;
            for (int64_t k = 1; k <= std::min<int64_t>(8, e); ++k) {
              ModelConfig c = moe_template;
              c.layers = l, c.d_model = d, c.heads = d / c.head_dim, c.d_ffn = (d * 8 / 3 + 32) / 64 * 64;
              c.moe->experts = e, c.moe->top_k = k, c.moe->d_expert = de;
              c.moe->shared_experts = se > 0, c.moe->d_shared = se;
              const ParamCounts p = count_params(c);
              const double err = std::abs(p.activation_rate() - 0.25);
              if (err < best_err) best_err = err, best_k = k, best = p;
            }
            const double n_err = static_cast<double>(best.n) / static_cast<double>(q.target_n) - 1;
            if (best_err <= 0.02 && std::abs(n_err) <= 0.02) expected.insert({l, d, e, best_k, de, se});
          }
  for (const auto& dsg : design_equal_resource(q)) {
    const ModelConfig& c = dsg.config;
    got.insert({c.layers, c.d_model, c.moe->experts, c.moe->top_k, c.moe->d_expert, c.moe->d_shared});
  }
  EXPECT_FALSE(expected.empty());
  EXPECT_EQ(got, expected);
}

TEST(Planner, BadQueriesFailClearly) {
  DesignQuery q = paper_query("dense-2b", 0.2);
  q.target_ra = 1.5;
  EXPECT_THROW(design_equal_resource(q), Error);
  q = paper_query("dense-2b", 0.2);
  q.layers = {10, 5};
  EXPECT_THROW(design_equal_resource(q), Error);
  q = paper_query("dense-2b", 0.2);
  q.width_multiple = 0;
  EXPECT_THROW(design_equal_resource(q), Error);
  EXPECT_THROW(design_query_for_baseline(find_model_config("mixtral-8x7b"), 0, 0.2), Error);
}

}  // namespace
}  // namespace moejit
