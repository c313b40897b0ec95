// Checkpoints as safetensors files: weights, AdamW m and v as F32 tensors ("param.<name>", "adam_m.<name>",
// "adam_v.<name>"), and the model's state that is not a parameter (the router biases: "state.<name>"); step, RNG state,
// data position, the model config and a checksum of the payload in the header's __metadata__ (string -> string, as the
// format requires). Written atomically.
//
// A run with sharded experts (expert parallel over P ranks) writes one such file per expert shard and
// an index naming them, written last (docs/checkpoints.md): ckpt_step<N>.shard<q>of<P>.safetensors
// hold the per-expert tensors of experts [q E/P, (q+1) E/P), shard 0 also every other tensor;
// ckpt_step<N>.index.json names the files, the rank layout and which tensors each holds. A loader
// takes every per-expert tensor's experts from whichever files hold them, so a checkpoint of any
// layout loads into any other (one process included).
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

// Per-expert tensors are written as the buffers hold them: the experts [first_expert, + shape[0]).
void save_checkpoint(const std::filesystem::path& path, const CheckpointTensors& t, const Metadata& metadata);

// One file of a checkpoint and the experts its per-expert tensors hold: [first_expert, + experts)
// (experts 0: all of them, a one-file checkpoint). The first file holds every other tensor.
struct CheckpointFile {
  std::filesystem::path path;
  int64_t first_expert = 0, experts = 0;
};
// The files of a checkpoint: the file itself, or those its index (*.index.json) names. Throws Error
// when the index is unreadable or names a file that is missing.
std::vector<CheckpointFile> checkpoint_files(const std::filesystem::path& checkpoint);

// Metadata only (a file or an index: its first file's). Throws Error("checkpoint <path> is corrupt:
// ...") when it is not a readable moejit checkpoint.
Metadata read_checkpoint_metadata(const std::filesystem::path& checkpoint);

// Verifies the payload checksums and that every tensor of `t.tensors` is present with its shape (a
// per-expert tensor: each of its experts in one of the files), then fills the buffers. Throws Error
// naming the file and the problem; the buffers are untouched then. `checkpoint`: a file or an index;
// of an index's files only the first and those holding experts of `t` are read.
Metadata load_checkpoint(const std::filesystem::path& checkpoint, const CheckpointTensors& t);

// The sharded layout: shard `shard` of `shards` holds `tensors` (names without the "param." prefix),
// its per-expert ones for experts [first_expert, first_expert + experts).
struct CheckpointShard {
  std::filesystem::path file;  // its path; the index stores the file name (beside the index)
  int64_t first_expert = 0, experts = 0;
  std::vector<std::string> tensors;
};
// Writes the index atomically; call it after every shard is written.
void save_checkpoint_index(const std::filesystem::path& index, int64_t step, int64_t ranks, int64_t expert_parallel,
                           const std::vector<CheckpointShard>& shards);

// <dir>/ckpt_step<8 digits>.safetensors (one file), .shard<q>of<P>.safetensors and .index.json (sharded).
std::filesystem::path checkpoint_path(const std::filesystem::path& dir, int64_t step);
std::filesystem::path checkpoint_shard_path(const std::filesystem::path& dir, int64_t step, int64_t shard,
                                            int64_t shards);
std::filesystem::path checkpoint_index_path(const std::filesystem::path& dir, int64_t step);
// The checkpoints in a directory, oldest first: single files and indexes (a shard is part of its
// index's checkpoint; shards without an index, a crash before it was written, are not listed).
std::vector<std::filesystem::path> list_checkpoints(const std::filesystem::path& dir);

// ModelConfig <-> JSON text for the metadata (the trainer rebuilds the model from it in `eval`).
std::string config_to_json(const ModelConfig& c);
ModelConfig config_from_json(const std::string& text);

}  // namespace moejit::runtime
