// EnqueueLog, the check that a replayed CUDA graph's step enqueues what its capture did (the GPU
// replay itself is CudaStepGpu.GraphReplayEqualsEagerBitForBit, label gpu).
#include <gtest/gtest.h>

#include <functional>

#include "enqueue_log.hpp"
#include "moejit/error.hpp"

namespace moejit {
namespace {

using Mode = EnqueueLog::Mode;

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(EnqueueLog, RunEnqueuesAndKeepsNothing) {
  EnqueueLog log;
  EXPECT_EQ(log.mode(), Mode::run);
  EXPECT_TRUE(log.admit(signature_of({1, 2}), "a"));
  EXPECT_EQ(log.recorded(), 0u);
}

TEST(EnqueueLog, ReplayOfTheSameOpsEnqueuesNothingAndPasses) {
  EnqueueLog log;
  log.start(Mode::record);
  for (uint64_t op : {7, 8, 9}) EXPECT_TRUE(log.admit(signature_of({op, 64}), "op " + std::to_string(op)));
  log.finish();
  EXPECT_EQ(log.recorded(), 3u);
  for (int replay = 0; replay < 2; ++replay) {
    log.start(Mode::check);
    for (uint64_t op : {7, 8, 9}) EXPECT_FALSE(log.admit(signature_of({op, 64}), "op"));
    EXPECT_NO_THROW(log.finish());
    EXPECT_EQ(log.mode(), Mode::run);
  }
}

TEST(EnqueueLog, ReplayThatDivergesNamesTheOpAndTheWayOut) {
  EnqueueLog log;
  log.start(Mode::record);
  log.admit(signature_of({1, 64}), "rmsnorm");
  log.admit(signature_of({2, 64}), "matmul");
  log.finish();
  log.start(Mode::check);
  log.admit(signature_of({1, 64}), "rmsnorm");
  const std::string other = error_of([&] { log.admit(signature_of({2, 128}), "matmul, larger grid"); });
  EXPECT_NE(other.find("op 1: matmul, larger grid, captured: matmul"), std::string::npos) << other;
  EXPECT_NE(other.find("MOEJIT_NO_GRAPH=1"), std::string::npos) << other;
  log.start(Mode::check);  // fewer ops than captured
  log.admit(signature_of({1, 64}), "rmsnorm");
  EXPECT_NE(error_of([&] { log.finish(); }).find("the end of the step, captured: matmul"), std::string::npos);
  log.start(Mode::check);  // more ops than captured
  log.admit(signature_of({1, 64}), "rmsnorm");
  log.admit(signature_of({2, 64}), "matmul");
  EXPECT_NE(error_of([&] { log.admit(signature_of({3}), "extra"); }).find("graph ends before"), std::string::npos);
}

TEST(EnqueueLog, SignaturesTellWordsAndTheirOrderApart) {
  EXPECT_EQ(signature_of({1, 2, 3}), signature_of({1, 2, 3}));
  EXPECT_NE(signature_of({1, 2, 3}), signature_of({3, 2, 1}));
  EXPECT_NE(signature_of({1, 2}), signature_of({1, 2, 0}));
  EXPECT_NE(signature_of({uint64_t(1) << 40}), signature_of({uint64_t(1) << 41}));
}

}  // namespace
}  // namespace moejit
