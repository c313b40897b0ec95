#include <gtest/gtest.h>

#include "cuda_backend.hpp"
#include "cuda_driver.hpp"
#include "moejit/error.hpp"

namespace moejit {

TEST(CudaDriver, WithoutADriverTheBackendSaysSoClearly) {
  std::string why;
  if (CudaDriver::available(&why)) GTEST_SKIP() << "a CUDA driver is present; this checks the GPU-less path";
  EXPECT_FALSE(why.empty());
  try {
    CudaBackend backend;
    FAIL() << "expected UnavailableError";
  } catch (const UnavailableError& e) {
    EXPECT_NE(std::string(e.what()).find("no CUDA driver: GPU backend unavailable; host backend available"),
              std::string::npos)
        << e.what();
  }
  EXPECT_TRUE(list_cuda_devices().empty());
}

}  // namespace moejit
