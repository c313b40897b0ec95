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
  Problem p{"grouped_gemm_fwd", DType::bf16, 128, 8, 2048, 768, 3000};
  EXPECT_EQ(p.to_string(), "grouped_gemm_fwd[bf16,E=128,k=8,d=2048,f=768,t=3000]");
  EXPECT_EQ(p.key(), "grouped_gemm_fwd[bf16,E=128,k=8,d=2048,f=768,tb=4096]");
  Problem q = p;
  q.tokens = 4000;
  EXPECT_EQ(p.key(), q.key());
  EXPECT_THROW(parse_dtype("fp8"), Error);
  EXPECT_EQ(parse_dtype("fp32"), DType::f32);
}

}  // namespace moejit
