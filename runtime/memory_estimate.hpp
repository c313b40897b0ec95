// How much memory a training run takes, estimated from the config before anything is allocated, so
// that a run too large for this machine is refused with the figure and what to lower instead of
// ending in std::bad_alloc (or the OOM killer) after the data and weights are loaded.
#pragma once
#include <cstdint>
#include <string>

#include "model_config.hpp"

namespace moejit::runtime {

struct MemoryEstimate {
  double weights = 0;      // params, grads, AdamW m and v: 4 float copies of every parameter
  double activations = 0;  // what forward keeps for backward plus backward's buffers, at `batch`
  double total() const { return weights + activations; }
  double parameters() const { return weights / 2; }  // params and their gradients
  double optimizer() const { return weights / 2; }   // AdamW's m and v
};

// Bytes, in double so that absurd configs give absurd numbers instead of overflowing. Mirrors the
// buffers of runtime/model.cpp, ffn.hpp and moe_layer.hpp (fp32); a test holds it to the heap.
// `expert_parallel` P: a rank holds 1/P of the routed experts' weights (sharded).
MemoryEstimate estimate_training_memory(const ModelConfig& config, int64_t batch, int64_t expert_parallel = 1);

// MemAvailable of /proc/meminfo, capped by the cgroup's memory.max; 0 when unknown.
double available_memory_bytes();

// Throws Error when `estimate` exceeds `available` (> 0), with both figures and the fix: a smaller
// --batch when activations dominate, else a smaller config. `where`: "this machine", "this GPU".
void check_memory(const MemoryEstimate& estimate, double available, const std::string& config_name, int64_t batch,
                  const std::string& where = "this machine");

// The line a device backend prints at the start of a run: parameters and gradients, optimizer state
// and activations at `batch`, their total, and `available` (free device memory; 0: unknown).
std::string memory_summary(const MemoryEstimate& estimate, double available, int64_t batch);

// The error for an out-of-memory the device reported (`what`: the driver's message) during training
// at `batch` x `seq_len`: the figures, and what to lower (--batch, the config's seq_len; a smaller
// config when even one sequence is too much). Nothing was saved yet at that point, or checkpoints are
// written atomically: the message says they are untouched.
std::string out_of_memory_advice(const std::string& what, const MemoryEstimate& estimate,
                                 const std::string& config_name, int64_t batch, int64_t seq_len);

}  // namespace moejit::runtime
