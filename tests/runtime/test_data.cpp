// Token shards (llm.c format, uint16 and uint32), the byte tokenizer, the fortunes split.
#include <gtest/gtest.h>

#include <fstream>

#include "../common/test_util.hpp"
#include "data.hpp"
#include "files.hpp"
#include "moejit/error.hpp"

namespace moejit::runtime {
namespace {

using test::error_of;

TEST(Data, ShardRoundTripBothVersions) {
  test::TempDir dir;
  std::mt19937_64 rng(test::test_seed());
  std::vector<uint32_t> small(1000), large(1000);
  for (auto& t : small) t = uint32_t(rng() % 65536);
  for (auto& t : large) t = uint32_t(rng() % 200000);
  write_token_shard(dir.path() / "a.bin", small, kShardVersionU16);
  write_token_shard(dir.path() / "b.bin", large, kShardVersionU32);
  EXPECT_EQ(read_token_shard(dir.path() / "a.bin"), small);
  EXPECT_EQ(read_token_shard(dir.path() / "b.bin"), large);
  EXPECT_EQ(std::filesystem::file_size(dir.path() / "a.bin"), 1024u + 2 * small.size());  // llm.c layout
  EXPECT_THROW(write_token_shard(dir.path() / "c.bin", large, kShardVersionU16), Error);
}

TEST(Data, BadShardsGiveClearErrors) {
  test::TempDir dir;
  write_token_shard(dir.path() / "a.bin", {1, 2, 3}, kShardVersionU16);
  auto bytes = *read_file(dir.path() / "a.bin");
  write_file_atomic(dir.path() / "short.bin", bytes.substr(0, bytes.size() - 1));
  std::string bad_magic = bytes;
  bad_magic[0] ^= 1;
  write_file_atomic(dir.path() / "magic.bin", bad_magic);
  auto message = [&](const char* name) { return error_of([&] { read_token_shard(dir.path() / name); }); };
  EXPECT_NE(message("short.bin").find("header says 3 tokens"), std::string::npos) << message("short.bin");
  EXPECT_NE(message("magic.bin").find("bad magic"), std::string::npos) << message("magic.bin");
  EXPECT_NE(message("none.bin").find("does not exist"), std::string::npos);
}

// Issue 20, finding 1: empty or near-empty data is an error naming the file, not a crash in the
// train/validation split; the smallest splittable file splits with >= 2 tokens on each side.
TEST(Data, TooLittleDataToSplitIsAClearError) {
  test::TempDir dir;
  write_file_atomic(dir.path() / "empty.txt", "");
  write_file_atomic(dir.path() / "three.txt", "abc");
  write_token_shard(dir.path() / "empty.bin", {}, kShardVersionU16);
  std::filesystem::create_directories(dir.path() / "shards");
  write_token_shard(dir.path() / "shards" / "train.bin", {1, 2, 3}, kShardVersionU16);
  write_token_shard(dir.path() / "shards" / "val.bin", {4}, kShardVersionU16);
  auto message = [&](const std::string& name) { return error_of([&] { load_dataset(dir.path() / name); }); };
  EXPECT_NE(message("empty.txt").find("empty.txt holds 0 tokens"), std::string::npos) << message("empty.txt");
  EXPECT_NE(message("three.txt").find("holds 3 tokens: too few"), std::string::npos) << message("three.txt");
  EXPECT_NE(message("empty.bin").find("empty.bin holds 0 tokens"), std::string::npos) << message("empty.bin");
  EXPECT_NE(message("shards").find("found 3 training and 1 validation tokens"), std::string::npos) << message("shards");
  write_file_atomic(dir.path() / "four.txt", "abcd");
  const Dataset d = load_dataset(dir.path() / "four.txt");
  EXPECT_EQ(d.train, (std::vector<uint32_t>{'a', 'b'}));
  EXPECT_EQ(d.val, (std::vector<uint32_t>{'c', 'd'}));
}

TEST(Data, ByteTokenizerAndDirectoryOfShards) {
  EXPECT_EQ(encode_bytes("Hi\n"), (std::vector<uint32_t>{'H', 'i', '\n'}));
  EXPECT_EQ(decode_bytes({'a', kEot, 'b'}), "a\n%\nb");
  test::TempDir dir;
  write_token_shard(dir.path() / "corpus_train_000.bin", {1, 2, 3, 4}, kShardVersionU16);
  write_token_shard(dir.path() / "corpus_val_000.bin", {5, 6}, kShardVersionU16);
  Dataset d = load_dataset(dir.path());
  EXPECT_EQ(d.train, (std::vector<uint32_t>{1, 2, 3, 4}));
  EXPECT_EQ(d.val, (std::vector<uint32_t>{5, 6}));
  EXPECT_FALSE(d.byte_level);
}

TEST(Data, FortunesSplitIsDeterministicAndHeldOut) {
  test::TempDir dir;
  std::ofstream(dir.path() / "quotes") << "one\n%\ntwo\nlines\n%\n";
  std::string many;
  for (int i = 0; i < 40; ++i) many += "entry " + std::to_string(i) + "\n%\n";
  std::ofstream(dir.path() / "more") << many;
  std::ofstream(dir.path() / "more.dat") << "binary index, skipped";
  Dataset a = load_fortunes(dir.path()), b = load_fortunes(dir.path());
  EXPECT_EQ(a.train, b.train);
  EXPECT_EQ(a.val, b.val);
  // 42 entries, every 20th (indices 19, 39) held out; "more" sorts before "quotes".
  EXPECT_EQ(decode_bytes(a.val), "entry 19\n\n%\nentry 39\n\n%\n");
  EXPECT_EQ(decode_bytes(a.train).find("entry 19\n"), std::string::npos);
  EXPECT_NE(decode_bytes(a.train).find("two\nlines\n"), std::string::npos);
  EXPECT_THROW(load_fortunes(dir.path() / "missing"), Error);
}

TEST(Data, BatchReaderIsSequentialAndResumable) {
  std::vector<uint32_t> tokens(100);
  for (uint32_t i = 0; i < 100; ++i) tokens[i] = i;
  BatchReader r(tokens, 2, 5);
  std::mt19937_64 rng(1);
  std::vector<int32_t> in, tg;
  r.next(in, tg, rng);
  EXPECT_EQ(in, (std::vector<int32_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));
  EXPECT_EQ(tg[9], 10);
  for (int i = 0; i < 12; ++i) r.next(in, tg, rng);  // wraps into epoch 1
  EXPECT_EQ(r.epoch(), 1);
  BatchReader copy(tokens, 2, 5);
  copy.seek(r.position(), r.epoch());
  std::mt19937_64 rng2 = rng;
  std::vector<int32_t> in2, tg2;
  r.next(in, tg, rng);
  copy.next(in2, tg2, rng2);
  EXPECT_EQ(in, in2);
}

}  // namespace
}  // namespace moejit::runtime
