#include <gtest/gtest.h>

#include "ptxas_report.hpp"

namespace moejit {

TEST(PtxasReport, ParsesEveryEntryFunction) {
  const std::string log =
      "ptxas info    : 0 bytes gmem\n"
      "ptxas info    : Compiling entry function '_Z1aPf' for 'sm_90a'\n"
      "ptxas info    : Function properties for _Z1aPf\n"
      "ptxas         .     24 bytes stack frame, 8 bytes spill stores, 12 bytes spill loads\n"
      "ptxas info    : Used 168 registers, used 1 barriers, 49152 bytes smem, 360 bytes cmem[0]\n"
      "ptxas info    : Compiling entry function '_Z1bPf' for 'sm_90a'\n"
      "ptxas info    : Function properties for _Z1bPf\n"
      "ptxas         .     0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads\n"
      "ptxas info    : Used 10 registers, 380 bytes cmem[0]\n";
  auto r = parse_ptxas_report(log);
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].function, "_Z1aPf");
  EXPECT_EQ(r[0].registers, 168);
  EXPECT_EQ(r[0].shared_bytes, 49152);
  EXPECT_EQ(r[0].stack_bytes, 24);
  EXPECT_EQ(r[0].spill_store_bytes, 8);
  EXPECT_EQ(r[0].spill_load_bytes, 12);
  EXPECT_EQ(r[0].constant_bytes, 360);
  EXPECT_TRUE(r[0].has_spills());
  EXPECT_EQ(r[1].function, "_Z1bPf");
  EXPECT_EQ(r[1].registers, 10);
  EXPECT_EQ(r[1].shared_bytes, 0);
  EXPECT_FALSE(r[1].has_spills());
}

}  // namespace moejit
