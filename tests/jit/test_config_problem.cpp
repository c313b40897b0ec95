#include <gtest/gtest.h>

#include "moejit/config.hpp"
#include "moejit/error.hpp"
#include "moejit/problem.hpp"

namespace moejit {

TEST(Config, TextRoundTripsInDeclarationOrder) {
  Config c{{"bm", 128}, {"bn", 256}, {"bk", 64}, {"s", 4}, {"w", 8}};
  EXPECT_EQ(c.to_string(), "bm128_bn256_bk64_s4_w8");
  EXPECT_EQ(Config::parse(c.to_string()), c);
  EXPECT_EQ(Config().to_string(), "default");
  EXPECT_TRUE(Config::parse("default").empty());
}

TEST(Config, RejectsBadNamesAndText) {
  Config c;
  EXPECT_THROW(c.set("Bm", 1), Error);
  EXPECT_THROW(c.set("b2", 1), Error);
  EXPECT_THROW(c.set("bm", -1), Error);
  for (const char* bad : {"", "bm", "128", "bm128__bn4", "bm12x", "bm-1", "bm99999999999999999999"})
    EXPECT_THROW(Config::parse(bad), Error) << bad;
  const Config one{{"bm", 1}};
  EXPECT_THROW(one.get("bn"), Error);
  EXPECT_EQ(one.get_or("bn", 7), 7);
}

TEST(Problem, TokenBucketsArePowersOfTwoClamped) {
  EXPECT_EQ(token_bucket(0), 1);
  EXPECT_EQ(token_bucket(1), 1);
  EXPECT_EQ(token_bucket(3), 4);
  EXPECT_EQ(token_bucket(4096), 4096);
  EXPECT_EQ(token_bucket(4097), 8192);
  EXPECT_EQ(token_bucket(1 << 20), kMaxTokenBucket);
}

TEST(Problem, KeyUsesTheBucketAndPrintsEveryField) {
  Problem p(Family::grouped_gemm_fwd, DType::bf16, GemmShape{128, 8, 2048, 768}, 3000);
  EXPECT_EQ(p.to_string(), "grouped_gemm_fwd/bf16/e128_topk8_k2048_n768_t3000");
  EXPECT_EQ(p.key(), "grouped_gemm_fwd/bf16/e128_topk8_k2048_n768_tb4096");
  Problem q = p;
  q.tokens = 4000;
  EXPECT_EQ(p.key(), q.key());
  EXPECT_THROW(parse_dtype("fp8"), Error);
  EXPECT_EQ(parse_dtype("fp32"), DType::f32);
}

TEST(Problem, EveryShapeKindPrintsNamedFieldsAndParsesBack) {
  const Problem problems[] = {
      Problem(Family::grouped_gemm_dgrad, DType::bf16, GemmShape{128, 8, 768, 2048}, 3000),
      Problem(Family::route_plan, DType::f32, RoutingShape{92, 7, 1408}, 1),
      Problem(Family::swiglu_bwd, DType::bf16, RowsShape{6, 512}, 65536),
  };
  EXPECT_EQ(problems[1].to_string(), "route_plan/f32/e92_topk7_width1408_t1");
  EXPECT_EQ(problems[2].key(), "swiglu_bwd/bf16/topk6_width512_tb65536");
  for (const Problem& p : problems) {
    EXPECT_EQ(Problem::parse(p.to_string()), p) << p.to_string();
    Problem bucketed = p;
    bucketed.tokens = token_bucket(p.tokens);
    EXPECT_EQ(Problem::parse(p.key()), bucketed) << p.key();
  }
  EXPECT_EQ(problems[0].rows(), 3000 * 8);
  EXPECT_EQ(problems[1].rows(), 1);
  EXPECT_EQ(problems[0].gemm().k, 768);
  EXPECT_THROW(problems[0].routing(), Error);  // the shape is typed: no reading GEMM fields as routing
}

TEST(Problem, ShapeMustBeTheFamilysKindAndTextMustBeWellFormed) {
  EXPECT_THROW(Problem(Family::swiglu_fwd, DType::f32, GemmShape{1, 1, 8, 8}, 1), Error);
  for (const char* bad : {"", "swiglu_fwd", "swiglu_fwd/f32/topk2_width8", "swiglu_fwd/f32/topk2_width8_x4",
                          "swiglu_fwd/f32/topk2_wide8_t4", "swiglu_fwd/f32/topk2_width8_extra1_t4",
                          "swiglu_fwd/f32/topk2_width-8_t4", "swiglu_fwd/fp8/topk2_width8_t4",
                          "host_grouped_gemm_fwd/f32/e1_topk1_k8_n8_t4", "route_plan/f32/topk2_width8_t4"})
    EXPECT_THROW(Problem::parse(bad), Error) << bad;
  try {
    Problem::parse("route_plan/f32/e8_topk2_t4");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("e<n>_topk<n>_width<n>"), std::string::npos) << e.what();
  }
}

TEST(KernelUri, FixedFieldOrderWithAnyForMissingFields) {
  EXPECT_EQ(kernel_uri("grouped_gemm_fwd", "sm_90a", "bf16", "any", "tc90_bm128_bn128_s4"),
            "grouped_gemm_fwd/sm_90a/bf16/any/tc90_bm128_bn128_s4");
  EXPECT_EQ(kernel_uri("route_plan", "sm_80", "", "e64_topk8", "warps8"), "route_plan/sm_80/any/e64_topk8/warps8");
}

}  // namespace moejit
