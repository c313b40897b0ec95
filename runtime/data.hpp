// Training data: llm.c-style token shards, the byte-level tokenizer, the default corpus (Debian's
// fortunes files, installed by scripts/setup.sh) with a deterministic held-out split, and the
// sequential batch reader whose position is saved in checkpoints.
#pragma once
#include <cstdint>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

namespace moejit::runtime {

// Shard format (llm.c): a header of 256 int32 { magic 20240520, version, token count, 0... } then the
// tokens: version 1 = uint16 (llm.c's), version 2 = uint32 (moejit's, for vocabularies > 65,536).
inline constexpr int32_t kShardMagic = 20240520;
inline constexpr int32_t kShardVersionU16 = 1;
inline constexpr int32_t kShardVersionU32 = 2;
void write_token_shard(const std::filesystem::path& path, const std::vector<uint32_t>& tokens, int32_t version);
// Throws Error naming the file and what is wrong (magic, version, truncated).
std::vector<uint32_t> read_token_shard(const std::filesystem::path& path);

// Bytes are tokens 0..255; 256 ends a document. Vocabulary 257.
inline constexpr uint32_t kEot = 256;
inline constexpr int kByteVocab = 257;
std::vector<uint32_t> encode_bytes(const std::string& text);
std::string decode_bytes(const std::vector<uint32_t>& tokens);  // EOT becomes "\n%\n"

struct Dataset {
  std::string description;
  std::vector<uint32_t> train, val;
  bool byte_level = false;  // tokens are bytes (+ EOT): the loss in bits is bits per byte
  uint32_t max_token() const;
};

// The fortunes text files of `dir` (sorted by name; entries separated by lines "%"), every 20th entry
// held out for validation. dir empty: $MOEJIT_FORTUNES_DIR, else /usr/share/games/fortunes.
Dataset load_fortunes(std::filesystem::path dir = {});
// PATH: a directory of *.bin shards (names containing "val" are validation, the rest training), one
// .bin shard (its last 5% is validation), a directory of fortune files, or one text file (its last 5%
// is validation); empty: the default fortunes corpus.
Dataset load_dataset(const std::filesystem::path& path);

// Mean -sum p log2 p of the unigram distribution of `tokens`, in nats: a model that ignores context
// cannot beat it.
double unigram_entropy_nats(const std::vector<uint32_t>& tokens);

// Reads B sequences of S+1 consecutive tokens per batch, llm.c style, advancing by B*S. At the end of
// the data a new epoch starts at a random offset in [0, S) (rng), so sequence boundaries move.
class BatchReader {
 public:
  BatchReader(const std::vector<uint32_t>& tokens, int64_t B, int64_t S);
  // inputs, targets (B, S).
  void next(std::vector<int32_t>& inputs, std::vector<int32_t>& targets, std::mt19937_64& rng);
  int64_t position() const { return pos_; }
  int64_t epoch() const { return epoch_; }
  void seek(int64_t position, int64_t epoch) { pos_ = position, epoch_ = epoch; }

 private:
  const std::vector<uint32_t>& tokens_;
  int64_t B_, S_, pos_ = 0, epoch_ = 0;
};

}  // namespace moejit::runtime
