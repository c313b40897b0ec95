#include "memory_estimate.hpp"

#include <sys/sysinfo.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <string>

#include "moejit/error.hpp"
#include "param_count.hpp"

namespace moejit::runtime {
namespace {

// Floats of a SwiGLU FFN of width F over N rows: gate_up (N, 2F), h (N, F) and their gradients.
double ffn_floats(double N, double F) {
  return 6 * N * F;
}

// Floats of one MoE layer's routing and expert buffers (moe_layer.hpp), forward and backward;
// A = N*K rows of the permuted buffers.
double moe_floats(double N, double C, const MoeConfig& m) {
  const double E = double(m.experts), K = double(m.top_k), De = double(m.d_expert), A = N * K;
  const double routing = 3 * N * E + N + 2 * E + 1;  // logits, probs, d_logits; lse; counts, offsets...
  const double per_choice = 5 * A;                   // index, weight, slot, row_source, d_weight
  const double rows = 4 * A * C + 6 * A * De;        // x_perm, y_perm, d_y_perm, d_x_perm; gate_up, h, grads
  return routing + per_choice + rows + ffn_floats(N, double(m.shared_width()));
}

std::string gib(double bytes) {
  char text[32];
  std::snprintf(text, sizeof text, "%.2f GiB", bytes / double(1 << 30));
  return text;
}

}  // namespace

MemoryEstimate estimate_training_memory(const ModelConfig& c, int64_t batch, int64_t expert_parallel) {
  MemoryEstimate e;
  const ParamCounts n = count_params(c);
  const double experts_elsewhere = double(n.group(ParamGroup::routed_expert)) * double(expert_parallel - 1);
  e.weights = 4.0 * 4.0 * (double(n.total) - experts_elsewhere / double(expert_parallel));
  const double B = double(batch), S = double(c.seq_len), N = B * S, C = double(c.d_model), H = double(c.heads),
               V = double(c.vocab);
  double floats = 7 * N * C + 3 * N * V;  // embedding out, final norm, logits, probs, d_logits, residual grads
  for (int64_t l = 0; l < c.layers; ++l) {
    floats += 8 * N * C + 2 * N + B * H * S * S;  // residuals, norms, qkv, attention probabilities, outputs
    floats += c.is_dense_layer(l) ? ffn_floats(N, double(c.d_ffn)) : moe_floats(N, C, *c.moe);
  }
  e.activations = 4.0 * floats;
  return e;
}

double available_memory_bytes() {
  double available = 0;
  std::ifstream meminfo("/proc/meminfo");
  for (std::string key; meminfo >> key;) {
    double kib = 0;
    meminfo >> kib;
    if (key == "MemAvailable:") available = kib * 1024;
    meminfo.ignore(256, '\n');
  }
  if (available == 0)
    if (struct sysinfo si{}; ::sysinfo(&si) == 0) available = double(si.freeram) * si.mem_unit;
  std::ifstream cgroup("/sys/fs/cgroup/memory.max");  // cgroup v2; "max" when unlimited
  double limit = 0;
  if (cgroup >> limit && limit > 0) available = available > 0 ? std::min(available, limit) : limit;
  return available;
}

void check_memory(const MemoryEstimate& e, double available, const std::string& config_name, int64_t batch,
                  const std::string& where) {
  if (available <= 0 || e.total() <= available) return;
  const bool activations_dominate = e.activations > e.weights;
  throw Error("training " + config_name + " with --batch " + std::to_string(batch) + " needs about " + gib(e.total()) +
              " (weights, gradients and AdamW state " + gib(e.weights) + ", activations " + gib(e.activations) +
              ") but " + where + " has " + gib(available) + " available: " +
              (activations_dominate && batch > 1 ? "lower --batch (activations grow with it; --grad-accum keeps the "
                                                   "tokens per step)"
                                                 : "pick a smaller config (moejit plan --list)"));
}

std::string memory_summary(const MemoryEstimate& e, double available, int64_t batch) {
  std::string s = "memory: parameters and gradients " + gib(e.parameters()) + ", AdamW state " + gib(e.optimizer()) +
                  ", activations " + gib(e.activations) + " at --batch " + std::to_string(batch) + "; about " +
                  gib(e.total()) + " in all";
  return s + (available > 0 ? " of " + gib(available) + " free" : "");
}

std::string out_of_memory_advice(const std::string& what, const MemoryEstimate& e, const std::string& config_name,
                                 int64_t batch, int64_t seq_len) {
  const std::string fix = batch > 1 ? "lower --batch (now " + std::to_string(batch) +
                                          "; --grad-accum keeps the tokens per step) or the config's seq_len (now " +
                                          std::to_string(seq_len) + ")"
                                    : "lower the config's seq_len (now " + std::to_string(seq_len) +
                                          ") or pick a smaller config (moejit plan --list)";
  return "out of device memory training " + config_name + " (" + what + "); the estimate was " + gib(e.total()) +
         " (weights, gradients and AdamW state " + gib(e.weights) + ", activations " + gib(e.activations) +
         "): " + fix + ". Checkpoints already written are untouched.";
}

}  // namespace moejit::runtime
