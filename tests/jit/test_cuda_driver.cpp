#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <vector>

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

// One GPU per rank: an MPI launcher's local rank picks the device unless MOEJIT_DEVICE says.
TEST(CudaBackend, DefaultDeviceIsTheEnvironmentsThenTheLocalRanks) {
  const char* names[] = {"MOEJIT_DEVICE", "OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "SLURM_LOCALID"};
  std::vector<std::pair<std::string, std::string>> saved;
  for (const char* n : names)
    if (const char* v = std::getenv(n)) saved.emplace_back(n, v);
  for (const char* n : names) ::unsetenv(n);
  EXPECT_EQ(default_device_ordinal(8), 0);
  ::setenv("SLURM_LOCALID", "3", 1);
  EXPECT_EQ(default_device_ordinal(8), 3);
  ::setenv("OMPI_COMM_WORLD_LOCAL_RANK", "5", 1);
  EXPECT_EQ(default_device_ordinal(8), 5);
  EXPECT_EQ(default_device_ordinal(4), 1);  // more ranks than GPUs on the node: shared round-robin
  ::setenv("MOEJIT_DEVICE", "2", 1);
  EXPECT_EQ(default_device_ordinal(8), 2);
  for (const char* n : names) ::unsetenv(n);
  for (const auto& [n, v] : saved) ::setenv(n.c_str(), v.c_str(), 1);
}

}  // namespace moejit

namespace moejit {

// A library caller's stream (SessionOptions::cuda_stream): the backend queues on it and leaves it
// alive when it goes.
TEST(CudaBackendGpu, QueuesOnTheCallersStreamAndLeavesItAlive) {
  std::string why;
  if (!CudaDriver::available(&why)) GTEST_SKIP() << "no GPU: " << why << " (compiled, not run)";
  const CudaDriver& d = CudaDriver::get();
  CUstream mine = nullptr;
  {
    CudaBackend backend;
    backend.make_current();
    ASSERT_EQ(d.cuStreamCreate(&mine, CU_STREAM_DEFAULT), CUDA_SUCCESS);
    backend.use_stream(mine);
    EXPECT_EQ(backend.stream(), mine);
    void* p = backend.allocate(4096);
    backend.fill_bytes(p, 0x3f, 4096);  // queued on `mine`
    std::vector<uint8_t> back(4096, 0);
    backend.copy_to_host(back.data(), p, 4096);
    for (uint8_t b : back) ASSERT_EQ(b, 0x3f);
    backend.release(p);
    EXPECT_THROW(backend.use_stream(nullptr), Error);
  }
  EXPECT_EQ(d.cuStreamSynchronize(mine), CUDA_SUCCESS);  // still ours, still valid
  EXPECT_EQ(d.cuStreamDestroy(mine), CUDA_SUCCESS);
}

}  // namespace moejit
