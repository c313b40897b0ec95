#include "data.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>

#include "files.hpp"
#include "moejit/error.hpp"

namespace moejit::runtime {
namespace fs = std::filesystem;

void write_token_shard(const fs::path& path, const std::vector<uint32_t>& tokens, int32_t version) {
  if (version != kShardVersionU16 && version != kShardVersionU32)
    throw Error("token shard version must be 1 (uint16) or 2 (uint32)");
  std::vector<int32_t> header(256, 0);
  header[0] = kShardMagic;
  header[1] = version;
  header[2] = int32_t(tokens.size());
  std::string bytes(reinterpret_cast<const char*>(header.data()), 256 * 4);
  for (uint32_t t : tokens) {
    if (version == kShardVersionU16) {
      if (t > 0xffff) throw Error("token " + std::to_string(t) + " does not fit a uint16 shard: use version 2");
      uint16_t v = uint16_t(t);
      bytes.append(reinterpret_cast<const char*>(&v), 2);
    } else {
      bytes.append(reinterpret_cast<const char*>(&t), 4);
    }
  }
  write_file_atomic(path, bytes);
}

std::vector<uint32_t> read_token_shard(const fs::path& path) {
  auto bytes = read_file(path);
  auto bad = [&](const std::string& what) {
    return Error("token shard " + path.string() + ": " + what +
                 " (expected llm.c format: 256 int32 header {20240520, version 1|2, count}, then tokens)");
  };
  if (!bytes) throw Error("token shard " + path.string() + " does not exist");
  if (bytes->size() < 256 * 4) throw bad("shorter than its 1024-byte header");
  int32_t header[256];
  std::memcpy(header, bytes->data(), sizeof header);
  if (header[0] != kShardMagic) throw bad("bad magic " + std::to_string(header[0]));
  int32_t version = header[1];
  if (version != kShardVersionU16 && version != kShardVersionU32)
    throw bad("unknown version " + std::to_string(version));
  size_t width = version == kShardVersionU16 ? 2 : 4, count = size_t(uint32_t(header[2]));
  if (bytes->size() != 1024 + count * width)
    throw bad("header says " + std::to_string(count) + " tokens but the file holds " +
              std::to_string((bytes->size() - 1024) / width));
  std::vector<uint32_t> tokens(count);
  const char* p = bytes->data() + 1024;
  for (size_t i = 0; i < count; ++i) {
    if (width == 2) {
      uint16_t v;
      std::memcpy(&v, p + 2 * i, 2);
      tokens[i] = v;
    } else {
      std::memcpy(&tokens[i], p + 4 * i, 4);
    }
  }
  return tokens;
}

std::vector<uint32_t> encode_bytes(const std::string& text) {
  std::vector<uint32_t> t(text.size());
  for (size_t i = 0; i < text.size(); ++i) t[i] = uint8_t(text[i]);
  return t;
}

std::string decode_bytes(const std::vector<uint32_t>& tokens) {
  std::string s;
  for (uint32_t t : tokens) {
    if (t == kEot)
      s += "\n%\n";
    else if (t < 256)
      s += char(t);
    else
      s += "?";
  }
  return s;
}

uint32_t Dataset::max_token() const {
  uint32_t m = 0;
  for (uint32_t t : train) m = std::max(m, t);
  for (uint32_t t : val) m = std::max(m, t);
  return m;
}

static bool is_fortune_file(const fs::directory_entry& e) {
  // Data files have no extension; *.dat are strfile indexes, *.u8 links to the same text.
  return e.is_regular_file() && !e.path().has_extension();
}

Dataset load_fortunes(fs::path dir) {
  if (dir.empty()) {
    const char* env = std::getenv("MOEJIT_FORTUNES_DIR");
    dir = env && *env ? fs::path(env) : fs::path("/usr/share/games/fortunes");
  }
  if (!fs::is_directory(dir))
    throw Error("default corpus not found: " + dir.string() +
                " is not a directory (install it with scripts/setup.sh, i.e. apt-get install fortunes, "
                "set MOEJIT_FORTUNES_DIR, or pass --data)");
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(dir))
    if (is_fortune_file(e)) files.push_back(e.path());
  std::sort(files.begin(), files.end());
  Dataset d;
  d.byte_level = true;
  size_t entries = 0;
  for (const auto& f : files) {
    std::ifstream in(f, std::ios::binary);
    std::string line, entry;
    auto flush = [&] {
      if (entry.empty()) return;
      auto& dst = (entries++ % 20 == 19) ? d.val : d.train;
      auto t = encode_bytes(entry);
      dst.insert(dst.end(), t.begin(), t.end());
      dst.push_back(kEot);
      entry.clear();
    };
    while (std::getline(in, line)) {
      if (line == "%")
        flush();
      else
        entry += line + "\n";
    }
    flush();
  }
  if (d.val.empty() || d.train.empty()) throw Error("no fortune entries found in " + dir.string());
  d.description = "fortunes (" + dir.string() + ", " + std::to_string(files.size()) + " files, " +
                  std::to_string(entries) + " entries, every 20th held out)";
  return d;
}

// Validation reads sequences of at least one input and one target token: fewer is no split.
static constexpr size_t kMinSplitTokens = 2;

static void split_tail(Dataset& d, std::vector<uint32_t> all, const fs::path& path) {
  const size_t n_val = std::max<size_t>(kMinSplitTokens, all.size() / 20);
  if (all.size() < n_val + kMinSplitTokens)
    throw Error("--data " + path.string() + " holds " + std::to_string(all.size()) +
                " tokens: too few to hold out validation data (at least " + std::to_string(n_val + kMinSplitTokens) +
                "; training needs at least --batch x seq_len + 1 more): give a larger file");
  d.val.assign(all.end() - static_cast<std::ptrdiff_t>(n_val), all.end());
  all.resize(all.size() - n_val);
  d.train = std::move(all);
}

Dataset load_dataset(const fs::path& path) {
  if (path.empty()) return load_fortunes();
  if (!fs::exists(path)) throw Error("--data " + path.string() + " does not exist");
  Dataset d;
  if (fs::is_directory(path)) {
    std::vector<fs::path> shards;
    for (const auto& e : fs::directory_iterator(path))
      if (e.is_regular_file() && e.path().extension() == ".bin") shards.push_back(e.path());
    if (shards.empty()) return load_fortunes(path);
    std::sort(shards.begin(), shards.end());
    for (const auto& s : shards) {
      auto t = read_token_shard(s);
      auto& dst = s.filename().string().find("val") != std::string::npos ? d.val : d.train;
      dst.insert(dst.end(), t.begin(), t.end());
    }
    if (d.train.empty() || d.val.size() < kMinSplitTokens)
      throw Error("--data " + path.string() +
                  ": need training shards and validation shards (names containing 'val') "
                  "holding at least " +
                  std::to_string(kMinSplitTokens) + " tokens; found " + std::to_string(d.train.size()) +
                  " training and " + std::to_string(d.val.size()) + " validation tokens");
    d.description = "token shards in " + path.string();
  } else if (path.extension() == ".bin") {
    split_tail(d, read_token_shard(path), path);
    d.description = "token shard " + path.string() + " (last 5% held out)";
  } else {
    auto text = read_file(path);
    split_tail(d, encode_bytes(*text), path);
    d.byte_level = true;
    d.description = "text " + path.string() + " (bytes, last 5% held out)";
  }
  return d;
}

double unigram_entropy_nats(const std::vector<uint32_t>& tokens) {
  std::map<uint32_t, size_t> counts;
  for (uint32_t t : tokens) ++counts[t];
  double h = 0, n = double(tokens.size());
  for (const auto& [t, c] : counts) h -= double(c) / n * std::log(double(c) / n);
  return h;
}

BatchReader::BatchReader(const std::vector<uint32_t>& tokens, int64_t B, int64_t S) : tokens_(tokens), B_(B), S_(S) {
  if (int64_t(tokens.size()) < B * S + 1)
    throw Error("dataset of " + std::to_string(tokens.size()) + " tokens is smaller than one batch (" +
                std::to_string(B * S + 1) + "): use a smaller --batch or --seq-len, or more data");
}

void BatchReader::next(std::vector<int32_t>& inputs, std::vector<int32_t>& targets, std::mt19937_64& rng) {
  const int64_t n = B_ * S_;
  if (pos_ + n + 1 > int64_t(tokens_.size())) {
    ++epoch_;
    pos_ = int64_t(rng() % uint64_t(std::min<int64_t>(S_, int64_t(tokens_.size()) - n)));
  }
  inputs.resize(n);
  targets.resize(n);
  for (int64_t i = 0; i < n; ++i) {
    inputs[i] = int32_t(tokens_[pos_ + i]);
    targets[i] = int32_t(tokens_[pos_ + i + 1]);
  }
  pos_ += n;
}

}  // namespace moejit::runtime
