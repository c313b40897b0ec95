// Issue 20, finding 7: the training memory estimate, held to what a real run allocates (the heap's
// own count, an independent reference), and the refusal it gives when a run does not fit.
#include <gtest/gtest.h>
#include <malloc.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "../common/test_util.hpp"
#include "memory_estimate.hpp"
#include "moejit/error.hpp"
#include "param_count.hpp"
#include "trainer.hpp"

#if defined(__SANITIZE_ADDRESS__)
// The sanitizer runtime's count of live heap bytes (GCC ships no header declaring it).
extern "C" size_t __sanitizer_get_current_allocated_bytes();
#endif

namespace moejit::runtime {
namespace {
namespace fs = std::filesystem;

// Bytes in use on the heap (mmap'd blocks included); the sanitizer's count under ASan.
double heap_bytes() {
#if defined(__SANITIZE_ADDRESS__)
  return double(__sanitizer_get_current_allocated_bytes());
#else
  const struct mallinfo2 m = mallinfo2();
  return double(m.uordblks) + double(m.hblkhd);
#endif
}

TEST(MemoryEstimate, MatchesWhatATrainingStepAllocates) {
  test::TempDir dir;
  std::mt19937_64 rng(test::test_seed());
  std::string text;
  while (text.size() < 30000) text += char('a' + rng() % 26);
  std::ofstream(dir.path() / "corpus.txt") << text;
  for (const char* name : {"micro-moe", "micro-dense"}) {
    SCOPED_TRACE(name);
    TrainOptions o;
    o.config = find_model_config(name);
    o.data = (dir.path() / "corpus.txt").string();
    o.batch = 16;
    o.tokens = 4 * o.batch * o.config.seq_len;
    const double before = heap_bytes();
    double used = 0;
    {
      Trainer t(o);
      t.train_step();
      const double data = 4.0 * double(t.dataset().train.size() + t.dataset().val.size());
      used = heap_bytes() - before - data;
    }
    const MemoryEstimate e = estimate_training_memory(o.config, o.batch);
    EXPECT_GT(e.activations, e.weights / 4) << "batch 16 should weigh in";
    // The estimate lists the big buffers, not every small vector: within 15% of the heap (4% here).
    EXPECT_NEAR(e.total() / used, 1.0, 0.15) << "estimate " << e.total() << " B, heap grew by " << used << " B";
  }
}

TEST(MemoryEstimate, ActivationsGrowWithTheBatchWeightsDoNot) {
  const ModelConfig c = find_model_config("tiny-moe-r20");
  const MemoryEstimate one = estimate_training_memory(c, 1), eight = estimate_training_memory(c, 8);
  EXPECT_EQ(one.weights, eight.weights);
  EXPECT_NEAR(eight.activations / one.activations, 8.0, 1e-3);  // + a few per-expert constants
  EXPECT_GT(available_memory_bytes(), 0);
}

TEST(MemoryEstimate, RefusalNamesTheFiguresAndWhatToLower) {
  const ModelConfig c = find_model_config("micro-moe");
  const MemoryEstimate e = estimate_training_memory(c, 64);
  EXPECT_NO_THROW(check_memory(e, e.total() * 2, c.name, 64));
  EXPECT_NO_THROW(check_memory(e, 0, c.name, 64));  // unknown: no refusal
  const std::string m = test::error_of([&] { check_memory(e, e.total() / 2, c.name, 64); });
  EXPECT_NE(m.find("training micro-moe with --batch 64 needs about"), std::string::npos) << m;
  EXPECT_NE(m.find(e.activations > e.weights ? "lower --batch" : "smaller config"), std::string::npos) << m;
}

TEST(MemoryEstimate, RefusalOnAGpuSaysSo) {
  const ModelConfig c = find_model_config("micro-moe");
  const MemoryEstimate e = estimate_training_memory(c, 64);
  const std::string m = test::error_of([&] { check_memory(e, e.total() / 2, c.name, 64, "this GPU"); });
  EXPECT_NE(m.find("but this GPU has"), std::string::npos) << m;
}

// The line `train --backend cuda` prints first: each part, the total and the free memory, whose
// figures add up (parameters + optimizer + activations = total).
TEST(MemoryEstimate, SummaryNamesParametersOptimizerAndActivations) {
  const ModelConfig c = find_model_config("tiny-moe-r20");
  const MemoryEstimate e = estimate_training_memory(c, 8);
  EXPECT_DOUBLE_EQ(e.parameters() + e.optimizer() + e.activations, e.total());
  EXPECT_DOUBLE_EQ(e.parameters(), 2.0 * 4.0 * double(count_params(c).total));  // params, grads (fp32)
  const std::string s = memory_summary(e, 80.0 * (1 << 30), 8);
  for (const std::string part : {"memory: parameters and gradients ", ", AdamW state ", ", activations ",
                                 " at --batch 8; about ", " in all of 80.00 GiB free"})
    EXPECT_NE(s.find(part), std::string::npos) << s << " lacks '" << part << "'";
  EXPECT_EQ(memory_summary(e, 0, 8).find("free"), std::string::npos);  // unknown: not printed
}

// A device out-of-memory: the driver's words, the estimate, what to lower, and that nothing saved
// was touched; with one sequence per micro-batch, --batch cannot go lower.
TEST(MemoryEstimate, OutOfMemoryAdviceNamesBatchAndSequenceLength) {
  const ModelConfig c = find_model_config("tiny-moe-r20");
  const MemoryEstimate e = estimate_training_memory(c, 16);
  const std::string m = out_of_memory_advice("cuMemAlloc: CUDA_ERROR_OUT_OF_MEMORY", e, c.name, 16, 256);
  for (const std::string part :
       {"out of device memory training tiny-moe-r20 (cuMemAlloc: CUDA_ERROR_OUT_OF_MEMORY)", "lower --batch (now 16",
        "seq_len (now 256)", "Checkpoints already written are untouched"})
    EXPECT_NE(m.find(part), std::string::npos) << m << " lacks '" << part << "'";
  const std::string one = out_of_memory_advice("x", e, c.name, 1, 256);
  EXPECT_EQ(one.find("--batch"), std::string::npos) << one;
  EXPECT_NE(one.find("smaller config"), std::string::npos) << one;
}

}  // namespace
}  // namespace moejit::runtime
