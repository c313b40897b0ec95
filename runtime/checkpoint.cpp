#include "checkpoint.hpp"

#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>

#include "files.hpp"
#include "hash.hpp"
#include "moejit/error.hpp"

namespace moejit::runtime {
namespace fs = std::filesystem;
using nlohmann::json;

static constexpr const char* kFormat = "moejit-checkpoint-1";
static constexpr const char* kIndexFormat = "moejit-checkpoint-index-1";

namespace {

// The tensor groups of a checkpoint: a name prefix, the tensors and their flat buffer (null: absent).
struct Group {
  const char* prefix;
  const std::vector<ParamTensor>* tensors;
  float* values;
};

std::vector<Group> groups_of(const CheckpointTensors& t) {
  std::vector<Group> g{
      {"param.", t.tensors, t.params}, {"adam_m.", t.tensors, t.adam_m}, {"adam_v.", t.tensors, t.adam_v}};
  if (t.state_tensors && !t.state_tensors->empty()) g.push_back({"state.", t.state_tensors, t.state});
  std::erase_if(g, [](const Group& x) { return !x.values; });
  return g;
}

}  // namespace

void save_checkpoint(const fs::path& path, const CheckpointTensors& t, const Metadata& metadata) {
  json header = json::object();
  std::string payload;
  size_t total = 0;
  for (const Group& g : groups_of(t))
    for (const auto& p : *g.tensors) total += size_t(p.size) * 4;
  payload.reserve(total);
  for (const Group& g : groups_of(t)) {
    for (const auto& p : *g.tensors) {
      size_t begin = payload.size();
      payload.append(reinterpret_cast<const char*>(g.values + p.offset), size_t(p.size) * 4);
      header[g.prefix + p.name] = {{"dtype", "F32"}, {"shape", p.shape}, {"data_offsets", {begin, payload.size()}}};
    }
  }
  json meta = metadata;
  meta["format"] = kFormat;
  meta["payload_xxh3"] = hash_hex(payload);
  header["__metadata__"] = meta;
  std::string text = header.dump();
  while ((8 + text.size()) % 8) text += ' ';  // the format suggests 8-byte aligned data
  uint64_t n = text.size();
  std::string bytes(reinterpret_cast<const char*>(&n), 8);  // little-endian on every host we build for
  bytes += text;
  bytes += payload;
  fs::create_directories(path.parent_path().empty() ? fs::path(".") : path.parent_path());
  write_file_atomic(path, bytes);
}

namespace {

struct Parsed {
  json header;
  std::string bytes;
  size_t data_start = 0;
};

Parsed parse(const fs::path& path) {
  auto corrupt = [&](const std::string& why) {
    return Error("checkpoint " + path.string() + " is corrupt: " + why +
                 ". Delete it to resume from the previous checkpoint in its directory.");
  };
  auto bytes = read_file(path);
  if (!bytes) throw Error("checkpoint " + path.string() + " does not exist");
  if (bytes->size() < 8) throw corrupt("shorter than the 8-byte header length");
  uint64_t n;
  std::memcpy(&n, bytes->data(), 8);
  if (n > bytes->size() - 8) throw corrupt("header length " + std::to_string(n) + " runs past the end of the file");
  Parsed p;
  try {
    p.header = json::parse(bytes->substr(8, n));
  } catch (const std::exception& e) {
    throw corrupt(std::string("header is not valid JSON (") + e.what() + ")");
  }
  if (!p.header.is_object() || !p.header.contains("__metadata__") ||
      p.header["__metadata__"].value("format", "") != kFormat)
    throw corrupt(std::string("not a ") + kFormat + " file");
  p.data_start = 8 + n;
  p.bytes = std::move(*bytes);
  std::string payload_hash = hash_hex(std::string_view(p.bytes).substr(p.data_start));
  if (payload_hash != p.header["__metadata__"].value("payload_xxh3", ""))
    throw corrupt("payload checksum mismatch (truncated or damaged tensor data)");
  return p;
}

Metadata metadata_of(const Parsed& p) {
  Metadata m;
  for (const auto& [k, v] : p.header["__metadata__"].items())
    if (v.is_string()) m[k] = v.get<std::string>();
  return m;
}

}  // namespace

std::vector<CheckpointFile> checkpoint_files(const fs::path& checkpoint) {
  if (!checkpoint.filename().string().ends_with(".index.json")) return {{checkpoint, 0, 0}};
  auto bad = [&](const std::string& why) {
    return Error("checkpoint index " + checkpoint.string() + " " + why +
                 ". Delete it to resume from the previous checkpoint in its directory.");
  };
  const auto text = read_file(checkpoint);
  if (!text) throw Error("checkpoint " + checkpoint.string() + " does not exist");
  const json index = json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (!index.is_object() || index.value("format", "") != kIndexFormat || !index.contains("files") ||
      !index["files"].is_array() || index["files"].empty())
    throw bad(std::string("is corrupt: not a ") + kIndexFormat + " file");
  std::vector<CheckpointFile> files;
  for (const json& f : index["files"]) {
    if (!f.is_object() || !f.contains("file") || !f["file"].is_string() || !f.contains("first_expert") ||
        !f["first_expert"].is_number_integer() || !f.contains("experts") || !f["experts"].is_number_integer())
      throw bad("is corrupt: a file entry lacks \"file\", \"first_expert\" or \"experts\"");
    const fs::path path = checkpoint.parent_path() / f["file"].get<std::string>();
    if (!fs::exists(path)) throw bad("names " + path.string() + ", which is missing");
    files.push_back({path, f["first_expert"].get<int64_t>(), f["experts"].get<int64_t>()});
  }
  return files;
}

Metadata read_checkpoint_metadata(const fs::path& checkpoint) {
  return metadata_of(parse(checkpoint_files(checkpoint).front().path));
}

namespace {

struct Copy {
  float* dst;
  const char* src;
  size_t bytes;
};

// The copies that fill `tensor` (at `dst`) from the files: a whole tensor from the first file that
// holds it; a per-expert tensor expert range by expert range from the files holding those experts
// (each file's per-expert tensors start at its first_expert). Validates before anything is copied.
void plan_copies(const std::string& key, const ParamTensor& tensor, float* dst,
                 const std::vector<CheckpointFile>& files, const std::vector<Parsed>& parsed,
                 std::vector<Copy>& copies) {
  const int64_t want_from = tensor.first_expert, want = tensor.per_expert() ? tensor.shape[0] : 1;
  int64_t covered = 0;
  bool found = false;
  for (size_t i = 0; i < files.size(); ++i) {
    const Parsed& p = parsed[i];
    const std::string name = files[i].path.string();
    if (!p.header.contains(key)) continue;
    found = true;
    const json& e = p.header[key];
    const auto shape = e["shape"].get<std::vector<int64_t>>();
    const bool same_slices = shape.size() == tensor.shape.size() && !shape.empty() &&
                             std::equal(shape.begin() + 1, shape.end(), tensor.shape.begin() + 1);
    if (e.value("dtype", "") != "F32" || !(tensor.per_expert() ? same_slices : shape == tensor.shape))
      throw Error("checkpoint " + name + ": tensor '" + key + "' has dtype/shape " + e["dtype"].dump() +
                  e["shape"].dump() + ", the model wants F32" + json(tensor.shape).dump());
    int64_t elements = 1;
    for (int64_t d : shape) elements *= d;
    auto off = e["data_offsets"].get<std::vector<size_t>>();
    if (off.size() != 2 || off[1] < off[0] || off[1] - off[0] != size_t(elements) * 4 ||
        p.data_start + off[1] > p.bytes.size())
      throw Error("checkpoint " + name + " is corrupt: bad data_offsets for '" + key + "'");
    const char* src = p.bytes.data() + p.data_start + off[0];
    if (!tensor.per_expert()) {
      copies.push_back({dst, src, off[1] - off[0]});
      return;
    }
    const int64_t first = files[i].first_expert, from = std::max(first, want_from),
                  to = std::min(first + shape[0], want_from + want), slice = tensor.expert_size();
    if (from >= to) continue;
    copies.push_back(
        {dst + (from - want_from) * slice, src + (from - first) * slice * 4, size_t((to - from) * slice) * 4});
    covered += to - from;
  }
  if (!found)
    throw Error("checkpoint " + files.front().path.string() + " has no tensor '" + key +
                "': it was written for a different model config");
  if (tensor.per_expert() && covered != want)
    throw Error("checkpoint " + files.front().path.string() + " and its shards do not hold experts [" +
                std::to_string(want_from) + ", " + std::to_string(want_from + want) + ") of '" + key +
                "' exactly once: its index is damaged or names files of another run");
}

// The files `t` needs: the first (every tensor that is not per-expert, the metadata) and those that
// hold experts of t's per-expert tensors; a shard's rank reads its own experts' files, not the model.
std::vector<CheckpointFile> files_needed(std::vector<CheckpointFile> files, const CheckpointTensors& t) {
  int64_t from = 0, to = 0;
  for (const Group& g : groups_of(t))
    for (const ParamTensor& x : *g.tensors)
      if (x.per_expert()) std::tie(from, to) = std::pair{x.first_expert, x.first_expert + x.shape[0]};
  for (size_t i = files.size(); i-- > 1;)
    if (files[i].experts > 0 && (files[i].first_expert >= to || files[i].first_expert + files[i].experts <= from))
      files.erase(files.begin() + std::ptrdiff_t(i));
  return files;
}

}  // namespace

Metadata load_checkpoint(const fs::path& checkpoint, const CheckpointTensors& t) {
  const std::vector<CheckpointFile> files = files_needed(checkpoint_files(checkpoint), t);
  std::vector<Parsed> parsed;
  for (const auto& f : files) parsed.push_back(parse(f.path));
  std::vector<Copy> copies;  // validate everything before touching any buffer
  for (const Group& g : groups_of(t))
    for (const auto& tensor : *g.tensors)
      plan_copies(g.prefix + tensor.name, tensor, g.values + tensor.offset, files, parsed, copies);
  for (const auto& c : copies) std::memcpy(c.dst, c.src, c.bytes);
  return metadata_of(parsed.front());
}

void save_checkpoint_index(const fs::path& index, int64_t step, int64_t ranks, int64_t expert_parallel,
                           const std::vector<CheckpointShard>& shards) {
  json files = json::array();
  for (const auto& s : shards)
    files.push_back({{"file", s.file.filename().string()},
                     {"first_expert", s.first_expert},
                     {"experts", s.experts},
                     {"tensors", s.tensors}});
  const json j = {{"format", kIndexFormat},
                  {"step", step},
                  {"ranks", ranks},
                  {"expert_parallel", expert_parallel},
                  {"files", files}};
  write_file_atomic(index, j.dump(1) + "\n");
}

namespace {

std::string step_stem(int64_t step) {
  char name[32];
  std::snprintf(name, sizeof name, "ckpt_step%08lld", static_cast<long long>(step));
  return name;
}

// "ckpt_step" + 8 digits + `suffix`.
bool is_checkpoint_name(const std::string& name, const std::string& suffix) {
  const size_t stem = std::string("ckpt_step").size() + 8;
  return name.size() == stem + suffix.size() && name.starts_with("ckpt_step") && name.ends_with(suffix) &&
         std::all_of(name.begin() + 9, name.begin() + long(stem), [](char c) { return c >= '0' && c <= '9'; });
}

}  // namespace

fs::path checkpoint_path(const fs::path& dir, int64_t step) {
  return dir / (step_stem(step) + ".safetensors");
}

fs::path checkpoint_shard_path(const fs::path& dir, int64_t step, int64_t shard, int64_t shards) {
  return dir / (step_stem(step) + ".shard" + std::to_string(shard) + "of" + std::to_string(shards) + ".safetensors");
}

fs::path checkpoint_index_path(const fs::path& dir, int64_t step) {
  return dir / (step_stem(step) + ".index.json");
}

std::vector<fs::path> list_checkpoints(const fs::path& dir) {
  std::vector<fs::path> v;
  if (!fs::is_directory(dir)) return v;
  for (const auto& e : fs::directory_iterator(dir)) {
    auto name = e.path().filename().string();
    if (is_checkpoint_name(name, ".safetensors") || is_checkpoint_name(name, ".index.json")) v.push_back(e.path());
  }
  // By step (the names share their length up to the suffix).
  std::sort(v.begin(), v.end());
  return v;
}

std::string config_to_json(const ModelConfig& c) {
  return to_json(c).dump();
}

ModelConfig config_from_json(const std::string& text) {
  return model_config_from_json(json::parse(text), "checkpoint metadata");
}

}  // namespace moejit::runtime
