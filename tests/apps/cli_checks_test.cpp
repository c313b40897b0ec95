// apps/cli_checks: numbers read whole, ranges, finite reals, shapes and token lists, against
// hand-written expectations (finding 5 of issue 20).
#include <gtest/gtest.h>

#include <string>

#include "cli_checks.hpp"
#include "moejit/error.hpp"

namespace moejit::cli {
namespace {

TEST(CliChecks, IntegersAreWholeDecimalAndInRange) {
  for (const char* bad : {"", "64abc", "2e3", "64.7", "0x10", " 5", "5 ", "--5", "+-5", "+", "9223372036854775808"})
    EXPECT_FALSE(integer_error(bad, 0, kMaxInt).empty()) << "'" << bad << "'";
  EXPECT_EQ(integer_error("0", 1, 10), "0 is out of range; want an integer in [1, 10]");
  EXPECT_EQ(integer_error("-5", 1, kMaxInt), "-5 is out of range; want a positive integer");
  EXPECT_EQ(integer_error("7", 1, 10), "");
  EXPECT_EQ(integer_error("+7", 1, 10), "");
  EXPECT_EQ(parse_integer("9223372036854775807", 0, kMaxInt, "x"), kMaxInt);
  EXPECT_THROW(parse_integer("11", 1, 10, "--n"), Error);

  // The validator rewrites what it accepts to plain decimal: CLI11 alone reads "010" as octal 8.
  std::string text = "010";
  EXPECT_EQ(integer_in(1, 100)(text), "");
  EXPECT_EQ(text, "10");
}

TEST(CliChecks, RealsAreFiniteAndInRange) {
  const CLI::Validator positive = real_in(0, kMaxReal, true);
  for (const char* bad : {"nan", "inf", "-inf", "0", "-1", "1e400", "3x", ""})
    EXPECT_FALSE(positive(std::string(bad)).empty()) << "'" << bad << "'";
  EXPECT_EQ(positive(std::string("3e-3")), "");
  EXPECT_EQ(real_in(0, 1, true, true)(std::string("1")), "1 is out of range; want a number in (0, 1)");
  EXPECT_EQ(real_in(0)(std::string("0")), "");
}

TEST(CliChecks, ShapesAndTokenLists) {
  EXPECT_EQ(parse_shape("2048,1408,64,8", DType::bf16), (LayerShape{DType::bf16, 2048, 1408, 64, 8}));
  for (const char* bad : {"64,32,8,2e3", "64abc,32,8,2", "64,32,8", "64,32,8,2,1", "64,32,8,9", "0,32,8,2",
                          "2097152,32,8,2", "64,,8,2", "64,32,8,2,"})
    EXPECT_THROW(parse_shape(bad, DType::f32), Error) << bad;
  EXPECT_EQ(parse_tokens("1,128,4096"), (std::vector<int64_t>{1, 128, 4096}));
  EXPECT_EQ(parse_tokens("all").size(), 17u);  // 1, 2, 4, ..., 65536
  for (const char* bad : {"64.7", "0", "-1", "64,", "", "1,,2", "2147483648"})
    EXPECT_THROW(parse_tokens(bad), Error) << "'" << bad << "'";
}

TEST(CliChecks, KernelFamiliesNameTheKnownOnes) {
  const std::string why = kernel_family()(std::string("nosuch"));
  EXPECT_NE(why.find("unknown kernel family 'nosuch' (known: "), std::string::npos) << why;
  EXPECT_NE(why.find("swiglu_fwd"), std::string::npos) << why;
  EXPECT_EQ(kernel_family()(std::string("swiglu_fwd")), "");
}

}  // namespace
}  // namespace moejit::cli
