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

Metadata read_checkpoint_metadata(const fs::path& path) {
  return metadata_of(parse(path));
}

Metadata load_checkpoint(const fs::path& path, const CheckpointTensors& t) {
  Parsed p = parse(path);
  struct Copy {
    float* dst;
    size_t src, bytes;
  };
  std::vector<Copy> copies;  // validate everything before touching any buffer
  for (const Group& g : groups_of(t)) {
    for (const auto& tensor : *g.tensors) {
      std::string key = g.prefix + tensor.name;
      if (!p.header.contains(key))
        throw Error("checkpoint " + path.string() + " has no tensor '" + key +
                    "': it was written for a different model config");
      const json& e = p.header[key];
      if (e.value("dtype", "") != "F32" || e["shape"].get<std::vector<int64_t>>() != tensor.shape)
        throw Error("checkpoint " + path.string() + ": tensor '" + key + "' has dtype/shape " + e["dtype"].dump() +
                    e["shape"].dump() + ", the model wants F32" + json(tensor.shape).dump());
      auto off = e["data_offsets"].get<std::vector<size_t>>();
      if (off.size() != 2 || off[1] < off[0] || off[1] - off[0] != size_t(tensor.size) * 4 ||
          p.data_start + off[1] > p.bytes.size())
        throw Error("checkpoint " + path.string() + " is corrupt: bad data_offsets for '" + key + "'");
      copies.push_back({g.values + tensor.offset, p.data_start + off[0], off[1] - off[0]});
    }
  }
  for (const auto& c : copies) std::memcpy(c.dst, p.bytes.data() + c.src, c.bytes);
  return metadata_of(p);
}

fs::path checkpoint_path(const fs::path& dir, int64_t step) {
  char name[64];
  std::snprintf(name, sizeof name, "ckpt_step%08lld.safetensors", static_cast<long long>(step));
  return dir / name;
}

std::vector<fs::path> list_checkpoints(const fs::path& dir) {
  std::vector<fs::path> v;
  if (!fs::is_directory(dir)) return v;
  for (const auto& e : fs::directory_iterator(dir)) {
    auto name = e.path().filename().string();
    if (name.starts_with("ckpt_step") && name.ends_with(".safetensors")) v.push_back(e.path());
  }
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
