// Checkpoints as safetensors files: weights, AdamW m and v as F32 tensors ("param.<name>", "adam_m.<name>",
// "adam_v.<name>"), and the model's state that is not a parameter (the router biases: "state.<name>"); step, RNG state,
// data position, the model config and a checksum of the payload in the header's __metadata__ (string -> string, as the
// format requires). Written atomically.
#pragma once
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "model.hpp"

namespace moejit::runtime {

struct CheckpointTensors {  // views of equal-length flat buffers described by `tensors`
  const std::vector<ParamTensor>* tensors = nullptr;
  float* params = nullptr;
  float* adam_m = nullptr;  // may be null (eval loads weights only)
  float* adam_v = nullptr;
  const std::vector<ParamTensor>* state_tensors = nullptr;  // may be null or empty (no state)
  float* state = nullptr;
};

using Metadata = std::map<std::string, std::string>;

void save_checkpoint(const std::filesystem::path& path, const CheckpointTensors& t, const Metadata& metadata);

// Metadata only (cheap: reads the header). Throws Error("checkpoint <path> is corrupt: ...") when the
// file is not a readable moejit checkpoint.
Metadata read_checkpoint_metadata(const std::filesystem::path& path);

// Verifies the payload checksum and that every tensor of `t.tensors` is present with its shape, then
// fills the buffers. Throws Error naming the file and the problem; the buffers are untouched then.
Metadata load_checkpoint(const std::filesystem::path& path, const CheckpointTensors& t);

// <dir>/ckpt_step<8 digits>.safetensors, and the newest one in a directory (empty if none).
std::filesystem::path checkpoint_path(const std::filesystem::path& dir, int64_t step);
std::vector<std::filesystem::path> list_checkpoints(const std::filesystem::path& dir);  // oldest first

// ModelConfig <-> JSON text for the metadata (the trainer rebuilds the model from it in `eval`).
std::string config_to_json(const ModelConfig& c);
ModelConfig config_from_json(const std::string& text);

}  // namespace moejit::runtime
