// Sharded expert parameters without MPI: a model built as rank q of an expert group of P holds the
// experts [q E/P, (q+1) E/P) of the one-process model (the same init), and checkpoints move between
// layouts: a one-process file loads into every shard, shard files with their index load back into one
// process or into another P, bit for bit. The reference is the one-process model's flat buffers,
// sliced by hand from the config's shapes.
#include <gtest/gtest.h>

#include <deque>
#include <random>

#include "../common/test_util.hpp"
#include "checkpoint.hpp"
#include "files.hpp"
#include "memory_estimate.hpp"
#include "model_config.hpp"
#include "moejit/error.hpp"
#include "reference_step_backend.hpp"

namespace moejit::runtime {
namespace {
namespace fs = std::filesystem;

// Rank q of a group of P, for layouts only: building a sharded model needs no collective.
class GroupPosition final : public Communicator {
 public:
  GroupPosition(int q, int P) : q_(q), P_(P) {}
  int rank() const override { return q_; }
  int size() const override { return P_; }
  std::string name() const override { return "layout only"; }
  void allreduce_sum(std::span<float>) override { fail(); }
  void allreduce_sum(std::span<double>) override { fail(); }
  std::vector<std::string> allgather(const std::string&) override { fail(); }
  void alltoallv(std::span<const float>, std::span<const int64_t>, std::span<const int64_t>, std::span<float>,
                 std::span<const int64_t>, std::span<const int64_t>) override {
    fail();
  }
  std::vector<int64_t> alltoall(std::span<const int64_t>) override { fail(); }
  std::unique_ptr<Communicator> split(int, int) override { fail(); }
  [[noreturn]] void abort(const std::string& message, int) override { throw Error(message); }

 private:
  [[noreturn]] static void fail() { throw Error("GroupPosition runs no collectives"); }
  int q_, P_;
};

// A model's flat buffers: parameters and AdamW moments.
struct Buffers {
  std::vector<float> params, m, v;
  CheckpointTensors view(const std::vector<ParamTensor>& tensors) {
    return {&tensors, params.data(), m.data(), v.data()};
  }
};

Buffers random_buffers(int64_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  Buffers b{std::vector<float>(size_t(n)), std::vector<float>(size_t(n)), std::vector<float>(size_t(n))};
  for (auto* v : {&b.params, &b.m, &b.v})
    for (float& x : *v) x = normal(rng);
  return b;
}

// The values of `shard`'s tensors cut from the one-process buffer `full` (laid out by `whole`).
std::vector<float> expected_shard(const std::vector<ParamTensor>& whole, const std::vector<float>& full,
                                  const std::vector<ParamTensor>& shard) {
  std::vector<float> want(size_t(shard.back().offset + shard.back().size), -1e30f);
  for (size_t i = 0; i < shard.size(); ++i) {
    const ParamTensor &s = shard[i], &w = whole[i];
    EXPECT_EQ(s.name, w.name);
    const int64_t from = w.offset + s.first_expert * s.expert_size();
    std::copy(full.begin() + from, full.begin() + from + s.size, want.begin() + s.offset);
  }
  return want;
}

struct ShardedExperts : ::testing::Test {
  ThreadPool par{1};
  ReferenceStepBackend<float> backend{par};
  ModelConfig config = find_model_config("micro-moe");
  test::TempDir dir;

  // The model of shard q of P. Its MoE layers keep a reference to their group, so the positions
  // live as long as the fixture.
  std::unique_ptr<Model<float>> model(int q, int P) {
    if (P == 1) return std::make_unique<Model<float>>(config, backend);
    return std::make_unique<Model<float>>(config, backend, &positions.emplace_back(q, P));
  }
  std::deque<GroupPosition> positions;
  // Writes the checkpoint of a P-way sharded run (the trainer's layout: shard 0 also holds every
  // tensor that is not per-expert) from the shards' buffers; returns the index.
  fs::path save_shards(int P, std::vector<Buffers>& shards) {
    std::vector<CheckpointShard> files;
    for (int q = 0; q < P; ++q) {
      std::vector<ParamTensor> kept = model(q, P)->tensors();
      if (q > 0) std::erase_if(kept, [](const ParamTensor& t) { return !t.per_expert(); });
      const fs::path file = checkpoint_shard_path(dir.path(), 7, q, P);
      save_checkpoint(file, shards[size_t(q)].view(kept), {{"step", "7"}});
      CheckpointShard s{file, q * config.moe->experts / P, config.moe->experts / P, {}};
      for (const auto& t : kept) s.tensors.push_back(t.name);
      files.push_back(s);
    }
    const fs::path index = checkpoint_index_path(dir.path(), 7);
    save_checkpoint_index(index, 7, P, P, files);
    return index;
  }
};

TEST_F(ShardedExperts, AShardHoldsItsExpertsOfTheOneProcessInit) {
  auto whole = model(0, 1);
  std::mt19937_64 rng(5);
  whole->init(rng);
  const std::vector<float> full = whole->read_params();
  const int64_t E = config.moe->experts;
  for (int P : {2, 4}) {
    for (int q = 0; q < P; ++q) {
      auto shard = model(q, P);
      std::mt19937_64 same(5);
      shard->init(same);
      const ParamTensor& up = shard->tensor("layers.1.moe.w_up");
      EXPECT_EQ(up.shape[0], E / P);
      EXPECT_EQ(up.first_expert, q * E / P);
      EXPECT_TRUE(up.sharded());
      EXPECT_FALSE(shard->tensor("layers.1.moe.w_router").per_expert());
      EXPECT_EQ(shard->read_params(), expected_shard(whole->tensors(), full, shard->tensors())) << q << " of " << P;
      EXPECT_LT(shard->param_count(), whole->param_count());
    }
  }
}

TEST_F(ShardedExperts, TheMemoryEstimateCountsTheRanksExpertsOnly) {
  for (int P : {1, 2, 4}) {
    const double weights = estimate_training_memory(config, 1, P).weights;
    EXPECT_EQ(weights, 16.0 * double(model(0, P)->param_count())) << "P = " << P;  // params, grads, m, v
  }
}

TEST_F(ShardedExperts, CheckpointsMoveBetweenLayoutsBitForBit) {
  auto whole = model(0, 1);
  Buffers original = random_buffers(whole->param_count(), 17);
  const fs::path single = checkpoint_path(dir.path(), 7);
  save_checkpoint(single, original.view(whole->tensors()), {{"step", "7"}});
  // One file -> 4 shards -> (their files) -> 2 shards and one process.
  std::vector<Buffers> four;
  for (int q = 0; q < 4; ++q) {
    auto shard = model(q, 4);
    Buffers b = random_buffers(shard->param_count(), 99);  // poison: every value must be overwritten
    load_checkpoint(single, b.view(shard->tensors()));
    for (auto [got, want] : {std::pair{&b.params, &original.params}, {&b.m, &original.m}, {&b.v, &original.v}})
      ASSERT_EQ(*got, expected_shard(whole->tensors(), *want, shard->tensors())) << "shard " << q;
    four.push_back(std::move(b));
  }
  const fs::path index = save_shards(4, four);
  EXPECT_EQ(list_checkpoints(dir.path()), (std::vector<fs::path>{index, single}));
  Buffers back = random_buffers(whole->param_count(), 98);
  EXPECT_EQ(load_checkpoint(index, back.view(whole->tensors()))["step"], "7");
  EXPECT_EQ(back.params, original.params);
  EXPECT_EQ(back.m, original.m);
  EXPECT_EQ(back.v, original.v);
  for (int q = 0; q < 2; ++q) {
    auto shard = model(q, 2);
    Buffers b = random_buffers(shard->param_count(), 97);
    load_checkpoint(index, b.view(shard->tensors()));
    EXPECT_EQ(b.params, expected_shard(whole->tensors(), original.params, shard->tensors())) << "shard " << q;
  }
}

TEST_F(ShardedExperts, AShardReadsOnlyTheFilesOfItsExperts) {
  std::vector<Buffers> four;
  for (int q = 0; q < 4; ++q) four.push_back(random_buffers(model(q, 4)->param_count(), uint64_t(q)));
  const fs::path index = save_shards(4, four);
  // Damage shard 3's tensor data: the ranks of experts 0..3 (shards 0, 1) never read it.
  const fs::path damaged = checkpoint_shard_path(dir.path(), 7, 3, 4);
  std::string bytes = *read_file(damaged);
  bytes.back() ^= 0x40;
  write_file_atomic(damaged, bytes);
  auto first_half = model(0, 2);
  Buffers b = random_buffers(first_half->param_count(), 5);
  load_checkpoint(index, b.view(first_half->tensors()));
  // Its w_up: shard 0's experts, then shard 1's; wte from shard 0.
  const auto quarter = model(0, 4);
  const ParamTensor &up = first_half->tensor("layers.1.moe.w_up"), &up4 = quarter->tensor("layers.1.moe.w_up");
  std::vector<float> want(four[0].params.begin() + up4.offset, four[0].params.begin() + up4.offset + up4.size);
  want.insert(want.end(), four[1].params.begin() + up4.offset, four[1].params.begin() + up4.offset + up4.size);
  EXPECT_EQ(std::vector<float>(b.params.begin() + up.offset, b.params.begin() + up.offset + up.size), want);
  const ParamTensor& wte = first_half->tensor("wte");
  EXPECT_TRUE(std::equal(b.params.begin(), b.params.begin() + wte.size, four[0].params.begin()));
  auto second_half = model(1, 2);
  Buffers c = random_buffers(second_half->param_count(), 6);
  try {
    load_checkpoint(index, c.view(second_half->tensors()));
    ADD_FAILURE() << "a damaged shard loaded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("payload checksum mismatch"), std::string::npos) << e.what();
  }
}

TEST_F(ShardedExperts, AMissingShardIsAClearErrorAndShardsWithoutIndexAreNoCheckpoint) {
  std::vector<Buffers> two;
  for (int q = 0; q < 2; ++q) two.push_back(random_buffers(model(q, 2)->param_count(), uint64_t(q)));
  const fs::path index = save_shards(2, two);
  fs::remove(checkpoint_shard_path(dir.path(), 7, 1, 2));
  auto whole = model(0, 1);
  Buffers b = random_buffers(whole->param_count(), 3);
  const Buffers before = b;
  try {
    load_checkpoint(index, b.view(whole->tensors()));
    ADD_FAILURE() << "a missing shard loaded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("shard1of2.safetensors, which is missing"), std::string::npos) << e.what();
  }
  EXPECT_EQ(b.params, before.params);  // untouched
  // A crash after the shards, before the index: the shards alone are not a checkpoint.
  fs::remove(index);
  EXPECT_TRUE(list_checkpoints(dir.path()).empty());
}

}  // namespace
}  // namespace moejit::runtime
