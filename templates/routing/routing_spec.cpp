#include "routing/routing_spec.hpp"

#include <algorithm>
#include <cmath>

#include "moejit/error.hpp"

namespace moejit {
namespace {

constexpr int kPlanOffsetsBlockMin = 32;
constexpr int kBiasUpdateBlock = 128;
constexpr int kMaxValuesPerLane = 32;  // beyond this the gating registers spill
constexpr int64_t kPlanSharedLimit = 48 * 1024;

bool is_host(const DeviceDescription& device) {
  return device.backend == "host";
}
bool gate_kind(Family k) {
  return k == Family::route_gate_fwd || k == Family::route_gate_bwd;
}
bool scatter_kind(Family k) {
  return k == Family::route_permute_fwd || k == Family::route_combine_bwd;
}
const char* device_type(DType dtype) {
  return dtype == DType::bf16 ? "moejit::bf16" : "float";
}
std::string str(int64_t v) {
  return std::to_string(v);
}
int64_t ceil_div(int64_t a, int64_t b) {
  return (a + b - 1) / b;
}
int plan_offsets_block(int64_t experts) {
  return static_cast<int>(std::max<int64_t>(kPlanOffsetsBlockMin, ceil_div(experts, 32) * 32));
}
int64_t plan_chunk(const Config& config) {
  return 32 * config.get("warps");
}
// Host worker-thread counts worth trying: 1, powers of two, and every hardware thread.
std::vector<int64_t> host_thread_counts(const DeviceDescription& device) {
  const int64_t most = std::max(1, device.compute_units);
  std::vector<int64_t> counts;
  for (int64_t t = 1; t < most; t *= 2) counts.push_back(t);
  counts.push_back(most);
  return counts;
}
// The config text of a rendered source: `threads` is a launch parameter only (the host code does
// not depend on it), so every thread count shares one binary.
std::string code_config(const Config& config) {
  Config code;
  for (const auto& [name, value] : config.params())
    if (name != "threads") code.set(name, value);
  return code.to_string();
}

// The template arguments of each entry, CUDA name first, then the host loop's.
struct EntryText {
  std::string cuda, host;
};

std::vector<EntryText> entry_texts(Family kind, const Problem& p, const Config& c) {
  const std::string ek = str(p.routing().experts) + ", " + str(p.routing().top_k);
  switch (kind) {
    case Family::route_gate_fwd:
    case Family::route_gate_bwd: {
      const std::string name(to_string(kind));  // the kernel templates carry the family's name
      return {{name + "_kernel<" + ek + ", " + str(c.get("lanes")) + ", " + str(c.get("tokens")) + ">",
               name + "_host<" + ek + ">"}};
    }
    case Family::route_plan:
      return {{"route_count_kernel<" + ek + ", " + str(c.get("warps")) + ">",
               "route_count_host<" + ek + ", " + str(plan_chunk(c)) + ">"},
              {"route_offsets_kernel<" + ek + ", " + str(plan_offsets_block(p.routing().experts)) + ">",
               "route_offsets_host<" + ek + ">"},
              {"route_slots_kernel<" + ek + ", " + str(c.get("warps")) + ">",
               "route_slots_host<" + ek + ", " + str(plan_chunk(c)) + ">"},
              {"route_bias_update_kernel<" + str(p.routing().experts) + ", " + str(kBiasUpdateBlock) + ">",
               "route_bias_update_host<" + str(p.routing().experts) + ">"},
              {"route_seq_aux_kernel<" + ek + ", " + str(plan_offsets_block(p.routing().experts)) + ">",
               "route_seq_aux_host<" + ek + ">"}};
    default: {
      const std::string name = scatter_kind(kind) ? "route_scatter" : "route_gather";
      const std::string t = device_type(p.dtype), vec = str(c.get("vec")), k = str(p.routing().top_k),
                        d = str(p.routing().width);
      return {{name + "_kernel<" + t + ", " + vec + ", " + k + ", " + str(c.get("lanes")) + ", " + str(c.get("rows")) +
                   ", " + d + ">",
               name + "_host<" + t + ", " + vec + ", " + k + ", " + d + ">"}};
    }
  }
}

}  // namespace

RoutingSpec::RoutingSpec(Family family) : kind_(family) {
  if (family_info(family).shape != ShapeKind::routing)
    throw Error(std::string(to_string(family)) + " is not a routing family");
}

std::vector<Config> RoutingSpec::space(const Problem& problem, const DeviceDescription& device) const {
  std::vector<Config> configs;
  if (is_host(device)) {  // one lane per token; the tunables are the vector width and the threads
    for (int64_t threads : host_thread_counts(device)) {
      if (gate_kind(kind_)) {
        configs.push_back(Config{{"lanes", 1}, {"tokens", 1}, {"threads", threads}});
      } else if (kind_ == Family::route_plan) {
        for (int64_t warps : {1, 8}) configs.push_back(Config{{"warps", warps}, {"threads", threads}});
      } else {
        // The host rows move whole rows (scatter_row / gather_row): vec only sizes the padding
        // zeroing, so one width is enough.
        configs.push_back(
            Config{{"vec", heuristic(problem, device).get("vec")}, {"lanes", 1}, {"rows", 1}, {"threads", threads}});
      }
    }
    return configs;
  }
  if (gate_kind(kind_)) {
    for (int64_t lanes : {1, 2, 4, 8, 16, 32})
      for (int64_t threads : {64, 128, 256}) configs.push_back(Config{{"lanes", lanes}, {"tokens", threads / lanes}});
  } else if (kind_ == Family::route_plan) {
    for (int64_t warps : {1, 2, 4, 8}) configs.push_back(Config{{"warps", warps}});
  } else {
    for (int64_t vec : {1, 2, 4, 8})
      for (int64_t lanes : {8, 16, 32})
        for (int64_t rows : {1, 2, 4, 8}) configs.push_back(Config{{"vec", vec}, {"lanes", lanes}, {"rows", rows}});
  }
  (void)problem;
  return configs;
}

std::string RoutingSpec::prune_reason(const Problem& problem, const Config& config,
                                      const DeviceDescription& device) const {
  const int64_t experts = problem.routing().experts, k = problem.routing().top_k;
  if (experts < 1 || experts > kMaxRoutedExperts)
    return "E " + str(experts) + " outside [1, " + str(kMaxRoutedExperts) + "]";
  if (k < 1 || k > kMaxTopK || k > experts) return "top_k " + str(k) + " outside [1, min(E, " + str(kMaxTopK) + ")]";
  if (is_host(device)) {
    const int64_t threads = config.get_or("threads", 1);
    if (threads < 1 || (device.compute_units > 0 && threads > device.compute_units))
      return "threads " + str(threads) + " outside [1, the device's " + str(device.compute_units) +
             " hardware threads]";
  } else if (config.has("threads")) {
    return "threads is a host parameter (GPU launches size their grid from the problem)";
  }
  if (gate_kind(kind_)) {
    const int64_t lanes = config.get("lanes"), threads = lanes * config.get("tokens");
    if (is_host(device) && lanes != 1) return "host gating runs one lane per token";
    if (!is_host(device) && (threads % 32 != 0 || threads > 1024))
      return "lanes*tokens must be a multiple of 32 <= 1024";
    if (ceil_div(experts, lanes) > kMaxValuesPerLane && !is_host(device))
      return "E/lanes = " + str(ceil_div(experts, lanes)) + " values per lane > " + str(kMaxValuesPerLane) +
             " (spills)";
    return {};
  }
  if (kind_ == Family::route_plan) {
    const int64_t shared = 2 * config.get("warps") * experts * 4;
    if (shared > std::min(kPlanSharedLimit,
                          device.shared_per_block_optin > 0 ? device.shared_per_block_optin : kPlanSharedLimit))
      return "shared memory " + str(shared) + " B for the chunk masks exceeds 48 KiB";
    return {};
  }
  const int64_t vec = config.get("vec"), lanes = config.get("lanes"), rows = config.get("rows");
  if (problem.routing().width <= 0) return "width must be positive";
  if (vec * static_cast<int64_t>(dtype_bytes(problem.dtype)) > 16) return "vector wider than 16 bytes";
  if (problem.routing().width % vec != 0)
    return "width " + str(problem.routing().width) + " % vec " + str(vec) + " != 0";
  if (is_host(device) && (lanes != 1 || rows != 1)) return "host rows run one lane per row";
  if (!is_host(device) && (lanes * rows) % 32 != 0) return "lanes*rows must be a multiple of 32";
  return {};
}

Config RoutingSpec::heuristic(const Problem& problem, const DeviceDescription& device) const {
  const int64_t threads = std::max(1, device.compute_units);
  if (gate_kind(kind_)) {
    if (is_host(device)) return Config{{"lanes", 1}, {"tokens", 1}, {"threads", threads}};
    // About 4 experts per lane: enough parallel reductions to hide shuffles, few registers.
    int64_t lanes = 1;
    while (lanes < 32 && lanes * 4 < problem.routing().experts) lanes *= 2;
    return Config{{"lanes", lanes}, {"tokens", std::max<int64_t>(1, 128 / lanes)}};
  }
  if (kind_ == Family::route_plan) {
    Config c{{"warps", problem.routing().experts > 256 ? 4 : 8}};
    if (is_host(device)) c.set("threads", threads);
    return c;
  }
  int64_t vec = 16 / static_cast<int64_t>(dtype_bytes(problem.dtype));
  while (vec > 1 && problem.routing().width % vec != 0) vec /= 2;
  if (is_host(device)) return Config{{"vec", vec}, {"lanes", 1}, {"rows", 1}, {"threads", threads}};
  return Config{{"vec", vec}, {"lanes", 32}, {"rows", 4}};
}

std::vector<std::string> RoutingSpec::entries(const Problem& problem, const Config& config,
                                              const std::string& backend) const {
  std::vector<std::string> names;
  int n = 0;
  for (const auto& text : entry_texts(kind_, problem, config))
    names.push_back(backend == "host" ? "moejit_" + std::string(to_string(kind_)) + "_" + str(n++)
                                      : "moejit::" + text.cuda);
  return names;
}

Source RoutingSpec::render(const Problem& problem, const Config& config, const DeviceDescription& device) const {
  if (std::string why = prune_reason(problem, config, device); !why.empty())
    throw Error("config " + config.to_string() + " cannot run " + problem.to_string() + ": " + why);
  const bool host = is_host(device);
  const RoutingShape& r = problem.routing();
  Source s;
  s.family = to_string(kind_);
  // E and top_k are compiled into every routing kernel, the row width and dtype into the row movers.
  const bool rows = !gate_kind(kind_) && kind_ != Family::route_plan;
  s.dtype = rows ? to_string(problem.dtype) : "any";
  s.shape = "e" + str(r.experts) + "_topk" + str(r.top_k) + (rows ? "_width" + str(r.width) : "");
  s.config = host ? code_config(config) : config.to_string();
  s.file_name = s.stem() + (host ? ".cpp" : ".cu");
  s.code = s.banner();
  s.entries = entries(problem, config, host ? "host" : "cuda");
  if (!host) {
    s.code += "#include \"routing/routing_cuda.cuh\"\n";
    return s;
  }
  s.code += "#include \"routing/routing_host.h\"\n";
  const auto texts = entry_texts(kind_, problem, config);
  for (size_t i = 0; i < texts.size(); ++i)
    s.code += "extern \"C\" void " + s.entries[i] +
              "(void** args, const moejit::HostLaunch* launch) { moejit::" + texts[i].host + "(args, launch); }\n";
  return s;
}

int64_t route_max_rows(const Problem& problem, int capacity, int pad_to) {
  int64_t kept = problem.tokens * problem.routing().top_k;
  if (capacity >= 0) kept = std::min<int64_t>(kept, static_cast<int64_t>(capacity) * problem.routing().experts);
  return kept + problem.routing().experts * std::max(0, pad_to - 1);
}

int route_capacity(double capacity_factor, const Problem& problem) {
  if (capacity_factor <= 0) return -1;
  return static_cast<int>(std::ceil(capacity_factor * static_cast<double>(problem.tokens * problem.routing().top_k) /
                                    problem.routing().experts));
}

size_t route_plan_workspace_bytes(const Problem& problem, const Config& config, int64_t seq_tokens) {
  const int64_t chunks = ceil_div(problem.tokens, plan_chunk(config));
  const int64_t sequences = seq_tokens > 0 ? problem.tokens / seq_tokens : 0;
  // chunk_counts (int), chunk_probs (float): chunks * E each; chunk_z: chunks; seq_contrib: sequences.
  return static_cast<size_t>(chunks * problem.routing().experts * 8 + chunks * 4 + sequences * 4);
}

float route_z_scale(float z_coef, int64_t tokens) {
  return tokens > 0 ? z_coef * 2.0f / static_cast<float>(tokens) : 0.0f;
}

namespace {
void check_problem(const Problem& p) {
  const std::string what(to_string(p.family));
  if (p.routing().experts < 1 || p.routing().experts > kMaxRoutedExperts || p.routing().top_k < 1 ||
      p.routing().top_k > std::min<int64_t>(p.routing().experts, kMaxTopK))
    throw Error(std::string(what) + ": unsupported routing problem " + p.to_string() +
                " (need 1 <= E <= 512, 1 <= top_k <= min(E, 16))");
}
void check_gate(const Problem& p, const GateParams& g) {
  check_problem(p);
  const std::string what(to_string(p.family));
  if (g.n_groups > 1) {
    if (g.n_groups > 32 || p.routing().experts % g.n_groups != 0)
      throw Error(std::string(what) + ": n_groups " + str(g.n_groups) + " must divide E " + str(p.routing().experts) +
                  " and be <= 32");
    if (g.topk_groups < 1 || g.topk_groups > g.n_groups ||
        static_cast<int64_t>(g.topk_groups) * (p.routing().experts / g.n_groups) < p.routing().top_k)
      throw Error(std::string(what) + ": topk_groups " + str(g.topk_groups) +
                  " must be in [1, n_groups] and keep at least top_k experts");
  }
}
LaunchDims dims_1d(int64_t blocks, int64_t threads) {
  LaunchDims d;
  d.grid[0] = static_cast<unsigned>(std::max<int64_t>(blocks, 1));
  d.block[0] = static_cast<unsigned>(threads);
  return d;
}
// A host config (it has `threads`) launches that many workers: grid[0] is the thread count there.
LaunchDims dims_of(const Config& config, int64_t blocks, int64_t threads) {
  if (config.has("threads")) return dims_1d(config.get("threads"), 1);
  return dims_1d(blocks, threads);
}
}  // namespace

void launch_route_gate_fwd(Kernel& kernel, const Problem& problem, const Config& config, const GateForwardArgs& a) {
  check_gate(problem, a.params);
  int64_t tokens = problem.tokens;
  if (tokens == 0) return;
  GateParams params = a.params;
  void* args[] = {const_cast<float**>(&a.logits),
                  const_cast<float**>(&a.bias),
                  &params,
                  const_cast<int**>(&a.index),
                  const_cast<float**>(&a.weight),
                  const_cast<float**>(&a.probs),
                  const_cast<float**>(&a.lse),
                  &tokens};
  const int64_t per_block = config.get("tokens");
  kernel.launch(dims_of(config, ceil_div(tokens, per_block), per_block * config.get("lanes")), args);
}

void launch_route_gate_bwd(Kernel& kernel, const Problem& problem, const Config& config, const GateBackwardArgs& a) {
  check_gate(problem, a.params);
  int64_t tokens = problem.tokens;
  if (tokens == 0) return;
  GateParams params = a.params;
  GateGradParams grad = a.grad;
  void* args[] = {const_cast<float**>(&a.logits),
                  const_cast<int**>(&a.index),
                  const_cast<float**>(&a.d_weight),
                  const_cast<float**>(&a.aux_scale),
                  &params,
                  &grad,
                  const_cast<float**>(&a.d_logits),
                  &tokens};
  const int64_t per_block = config.get("tokens");
  kernel.launch(dims_of(config, ceil_div(tokens, per_block), per_block * config.get("lanes")), args);
}

namespace {
void check_sequence_aux(const Problem& p, const PlanArgs& a, const Kernel* seq_aux) {
  if (!has_sequence_aux(a.loss)) return;
  const std::string what(to_string(p.family));
  if (p.tokens % a.loss.seq_tokens != 0)
    throw Error(what + ": the sequence-wise aux loss needs whole sequences: " + str(p.tokens) + " tokens are not a " +
                "multiple of seq_tokens " + str(a.loss.seq_tokens));
  if (!a.probs || !seq_aux)
    throw Error(what + ": the sequence-wise aux loss needs the router scores (PlanArgs::probs) and the plan's " +
                "route_seq_aux kernel (entry 4)");
}

// The sequence-wise aux loss: rows 1.. of aux_scale and one sum per sequence in the workspace.
void launch_route_seq_aux(Kernel& kernel, const Problem& problem, const PlanArgs& a, float* seq_contrib) {
  int64_t tokens = problem.tokens;
  LossParams loss = a.loss;
  void* args[] = {const_cast<int**>(&a.index),
                  const_cast<float**>(&a.probs),
                  &loss,
                  const_cast<float**>(&a.aux_scale),
                  &seq_contrib,
                  &tokens};
  kernel.launch(dims_1d(tokens / loss.seq_tokens, plan_offsets_block(problem.routing().experts)), args);
}
}  // namespace

void launch_route_plan(Kernel& count, Kernel& offsets, Kernel& slots, const Problem& problem, const Config& config,
                       const PlanArgs& a, Kernel* seq_aux) {
  check_problem(problem);
  check_sequence_aux(problem, a, seq_aux);
  int64_t tokens = problem.tokens;
  const int64_t chunk = plan_chunk(config), experts = problem.routing().experts;
  int chunks = static_cast<int>(ceil_div(tokens, chunk));
  int* chunk_counts = static_cast<int*>(a.workspace);
  float* chunk_probs = a.probs ? reinterpret_cast<float*>(chunk_counts + chunks * experts) : nullptr;
  float* chunk_z = a.lse ? reinterpret_cast<float*>(chunk_counts + 2 * chunks * experts) : nullptr;
  float* seq_contrib = nullptr;
  if (has_sequence_aux(a.loss) && tokens > 0) {
    seq_contrib = reinterpret_cast<float*>(chunk_counts + 2 * chunks * experts + chunks);
    launch_route_seq_aux(*seq_aux, problem, a, seq_contrib);
  }
  if (chunks > 0) {
    void* args[] = {const_cast<int**>(&a.index),
                    const_cast<float**>(&a.probs),
                    const_cast<float**>(&a.lse),
                    &chunk_counts,
                    &chunk_probs,
                    &chunk_z,
                    &tokens};
    count.launch(dims_of(config, chunks, chunk), args);
  }
  {
    int capacity = a.capacity, pad_to = std::max(1, a.pad_to);
    LossParams loss = a.loss;
    void* args[] = {&chunk_counts,
                    &chunk_probs,
                    &chunk_z,
                    &chunks,
                    &tokens,
                    &capacity,
                    &pad_to,
                    &loss,
                    const_cast<int**>(&a.counts),
                    const_cast<int**>(&a.dropped),
                    const_cast<int**>(&a.offsets),
                    const_cast<int**>(&a.row_source),
                    const_cast<float**>(&a.aux_scale),
                    const_cast<float**>(&a.losses),
                    &seq_contrib};
    offsets.launch(dims_1d(1, plan_offsets_block(experts)), args);
  }
  if (chunks > 0) {
    int capacity = a.capacity;
    void* args[] = {const_cast<int**>(&a.index),
                    &chunk_counts,
                    const_cast<int**>(&a.offsets),
                    &capacity,
                    const_cast<int**>(&a.slot),
                    const_cast<int**>(&a.row_source),
                    &tokens};
    slots.launch(dims_of(config, chunks, chunk), args);
  }
}

void launch_route_bias_update(Kernel& kernel, const Problem& problem, const int* counts, float* bias, float gamma) {
  check_problem(problem);
  int64_t tokens = problem.tokens;
  int top_k = static_cast<int>(problem.routing().top_k);
  void* args[] = {const_cast<int**>(&counts), &bias, &gamma, &tokens, &top_k};
  kernel.launch(dims_1d(ceil_div(problem.routing().experts, kBiasUpdateBlock), kBiasUpdateBlock), args);
}

void launch_route_scatter(Kernel& kernel, const Problem& problem, const Config& config, const ScatterArgs& a) {
  check_problem(problem);
  int64_t tokens = problem.tokens;
  if (tokens == 0) return;
  int experts = static_cast<int>(problem.routing().experts);
  const bool pad = a.offsets && a.row_source;
  const int* offsets = pad ? a.offsets : nullptr;
  const int* row_source = pad ? a.row_source : nullptr;
  void* args[] = {const_cast<void**>(&a.src),
                  const_cast<int**>(&a.slot),
                  const_cast<float**>(&a.weight),
                  const_cast<void**>(&a.y),
                  const_cast<void**>(&a.dst),
                  const_cast<float**>(&a.d_weight),
                  &offsets,
                  &row_source,
                  &experts,
                  &tokens};
  const int64_t rows = config.get("rows");
  LaunchDims dims = dims_of(config, ceil_div(tokens, rows), rows * config.get("lanes"));
  if (!config.has("threads")) dims.grid[1] = pad ? 2 : 1;
  kernel.launch(dims, args);
}

void launch_route_gather(Kernel& kernel, const Problem& problem, const Config& config, const GatherArgs& a) {
  check_problem(problem);
  int64_t tokens = problem.tokens;
  if (tokens == 0) return;
  void* args[] = {const_cast<void**>(&a.rows),   const_cast<int**>(&a.slot), const_cast<float**>(&a.weight),
                  const_cast<void**>(&a.shared), const_cast<void**>(&a.out), &tokens};
  const int64_t rows = config.get("rows");
  kernel.launch(dims_of(config, ceil_div(tokens, rows), rows * config.get("lanes")), args);
}

}  // namespace moejit
