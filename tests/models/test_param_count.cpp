// Exact parameter counts: model_tensor_shapes() against closed forms written independently here,
// and the paper's N, N_a, r_a within 1%.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "../common/test_util.hpp"
#include "model_config.hpp"
#include "moejit/error.hpp"
#include "param_count.hpp"

namespace moejit {
namespace {

// Independent reference: the paper's formulas, term by term, plus what the paper rounds away
// (RMSNorm weights: 2 per layer + 1 final; the router; embeddings and LM head).
struct Reference {
  int64_t n = 0, n_active = 0, router = 0, embeddings = 0, total = 0;
};

Reference reference_counts(const ModelConfig& c) {
  Reference r;
  const int64_t d = c.d_model;
  int64_t e = 0, k = 0, routed_width = 0, active_width = 0;
  if (c.moe) {
    e = c.moe->experts, k = c.moe->top_k;
    routed_width = c.moe->shared_experts * c.moe->d_shared + e * c.moe->d_expert;  // mu * D_m
    active_width = c.moe->shared_experts * c.moe->d_shared + k * c.moe->d_expert;  // beta * D_m
  }
  if (c.scope == ModelScope::moe_layer) {
    r.n = 3 * d * routed_width;
    r.n_active = 3 * d * active_width;
    r.router = d * e;
    r.total = r.n + r.router;
    return r;
  }
  const int64_t moe_layers = c.moe ? c.layers - static_cast<int64_t>(c.moe->dense_layers.size()) : 0;
  const int64_t dense_layers = c.layers - moe_layers;
  const int64_t attention = 4 * d * d;  // heads * head_dim == d_model
  const int64_t norms = 2 * d * c.layers + d;
  r.n = (attention + 3 * d * c.d_ffn) * dense_layers + (attention + 3 * d * routed_width) * moe_layers + norms;
  r.n_active = (attention + 3 * d * c.d_ffn) * dense_layers + (attention + 3 * d * active_width) * moe_layers + norms;
  r.router = d * e * moe_layers;
  r.embeddings = c.vocab * d * (c.tie_embeddings ? 1 : 2);
  r.total = r.n + r.router + r.embeddings;
  return r;
}

TEST(ParamCount, EveryShippedConfigMatchesTheClosedFormExactly) {
  for (const auto& name : list_model_configs()) {
    const ModelConfig c = find_model_config(name);
    const ParamCounts p = count_params(c);
    const Reference r = reference_counts(c);
    EXPECT_EQ(p.n, r.n) << name;
    EXPECT_EQ(p.n_active, r.n_active) << name;
    EXPECT_EQ(p.router, r.router) << name;
    EXPECT_EQ(p.embeddings, r.embeddings) << name;
    EXPECT_EQ(p.total, r.total) << name;
  }
}

// The runtime hook: the tensors a model instance allocates are model_tensor_shapes(); summing
// their dims here, group by group, must give count_params.
TEST(ParamCount, TensorShapesSumToTheCounts) {
  for (const auto& name : list_model_configs()) {
    const ModelConfig c = find_model_config(name);
    const ParamCounts p = count_params(c);
    int64_t sum = 0, by_group[kParamGroupCount] = {};
    std::set<std::string> names;
    for (const auto& t : model_tensor_shapes(c)) {
      int64_t n = 1;
      for (int64_t dim : t.dims) {
        EXPECT_GT(dim, 0) << t.name;
        n *= dim;
      }
      sum += n;
      by_group[static_cast<int>(t.group)] += n;
      EXPECT_TRUE(names.insert(t.name).second) << "duplicate tensor name " << t.name;
      if (t.group == ParamGroup::routed_expert) {
        ASSERT_EQ(t.dims.size(), 3u) << t.name;
        EXPECT_EQ(t.dims[0], c.moe->experts) << t.name;
      }
    }
    EXPECT_EQ(sum, p.total) << name;
    for (int g = 0; g < kParamGroupCount; ++g) EXPECT_EQ(by_group[g], p.by_group[g]) << name << " group " << g;
  }
}

// Issue 20, finding 7: dimensions whose products leave int64 are an error naming the tensor, not a
// wrapped count ("attention 0").
TEST(ParamCount, OverflowingDimensionsAreAnErrorNotAWrappedCount) {
  ModelConfig c = find_model_config("micro-dense");
  c.d_model = c.head_dim = int64_t{1} << 32;
  c.heads = 1;
  c.d_ffn = int64_t{1} << 32;
  const std::string why = test::error_of([&] { count_params(c); });
  EXPECT_NE(why.find("the size of tensor layers.0.attn.wq does not fit a 64-bit integer"), std::string::npos) << why;
  c = find_model_config("micro-dense");
  c.vocab = int64_t{1} << 56;  // embedding and LM head are 2^62 each: each fits, their sum does not
  EXPECT_THROW(count_params(c), Error);
  c = find_model_config("micro-moe");
  c.heads = int64_t{1} << 40;
  c.head_dim = int64_t{1} << 40;
  EXPECT_THROW(validate(c, "test"), Error);  // heads * head_dim overflows before it is compared
}

TEST(ParamCount, TensorLayoutOfOneMoeLayer) {
  const ModelConfig c = find_model_config("moe-2b");
  std::map<std::string, std::vector<int64_t>> dims;
  for (const auto& t : model_tensor_shapes(c)) dims[t.name] = t.dims;
  EXPECT_EQ(dims.at("embedding"), (std::vector<int64_t>{65536, 1408}));
  EXPECT_EQ(dims.at("layers.0.ffn.w_gate"), (std::vector<int64_t>{1408, 3904}));
  EXPECT_EQ(dims.at("layers.1.attn.wq"), (std::vector<int64_t>{1408, 1408}));
  EXPECT_EQ(dims.at("layers.1.moe.router"), (std::vector<int64_t>{1408, 92}));
  EXPECT_EQ(dims.at("layers.1.moe.shared.w_up"), (std::vector<int64_t>{1408, 2240}));
  EXPECT_EQ(dims.at("layers.15.moe.experts.w_down"), (std::vector<int64_t>{92, 320, 1408}));
  EXPECT_EQ(dims.at("lm_head"), (std::vector<int64_t>{1408, 65536}));
  EXPECT_EQ(dims.count("layers.0.moe.router"), 0u);
}

TEST(ParamCount, TiedEmbeddingsDropTheLmHead) {
  ModelConfig c = find_model_config("tiny-dense");
  const ParamCounts untied = count_params(c);
  c.tie_embeddings = true;
  const ParamCounts tied = count_params(c);
  EXPECT_EQ(untied.embeddings - tied.embeddings, c.vocab * c.d_model);
  EXPECT_EQ(untied.n, tied.n);
}

void expect_within(double value, double paper, double rel, const std::string& what) {
  EXPECT_LE(std::abs(value / paper - 1.0), rel) << what << ": ours " << value << " vs paper " << paper;
}

// paper.md's table. Norms count in N (about 0.002% at 2B); the router does not (paper definition).
TEST(ParamCount, ReproducesThePaperWithinOnePercent) {
  struct Row {
    const char* name;
    double n, n_active, ra;  // 0 = not quoted
  };
  for (const Row& row :
       {Row{"moe-2b", 2.15e9, 429e6, 0.199}, Row{"moe-2b-alt", 2.15e9, 0, 0}, Row{"dense-2b", 2.15e9, 2.15e9, 1.0},
        Row{"moe-7b", 6.52e9, 1.31e9, 0.2007}, Row{"dense-7b", 6.48e9, 6.48e9, 1.0}}) {
    const ParamCounts p = count_params(find_model_config(row.name));
    expect_within(static_cast<double>(p.n), row.n, 0.01, std::string(row.name) + " N");
    if (row.n_active > 0)
      expect_within(static_cast<double>(p.n_active), row.n_active, 0.01, std::string(row.name) + " N_a");
    if (row.ra > 0) expect_within(p.activation_rate(), row.ra, 0.01, std::string(row.name) + " r_a");
  }
}

// The tiny CPU family: 1-20M parameters, the same N within 1%, activation rates 10/20/40% +-1 point.
TEST(ParamCount, TinyFamilyHasEqualNAndSpreadActivationRates) {
  const int64_t dense_n = count_params(find_model_config("tiny-dense")).n;
  EXPECT_GE(dense_n, 1'000'000);
  EXPECT_LE(dense_n, 20'000'000);
  for (auto [name, ra] :
       {std::pair{"tiny-moe-r10", 0.10}, std::pair{"tiny-moe-r20", 0.20}, std::pair{"tiny-moe-r40", 0.40}}) {
    const ParamCounts p = count_params(find_model_config(name));
    expect_within(static_cast<double>(p.n), static_cast<double>(dense_n), 0.01, std::string(name) + " N vs tiny-dense");
    EXPECT_NEAR(p.activation_rate(), ra, 0.01) << name;
    EXPECT_LE(p.total, 20'000'000) << name;
  }
}

}  // namespace
}  // namespace moejit
