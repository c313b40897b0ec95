#include "data_parallel.hpp"

#include <algorithm>
#include <sstream>

#include "hash.hpp"
#include "moe_layer_steps.hpp"
#include "moejit/error.hpp"

namespace moejit::runtime {

void allreduce_gradients(Communicator& comm, BackendMemory& memory, TypedPtr grads, int64_t n,
                         std::vector<float>& staging, int64_t bucket_floats) {
  if (comm.size() == 1 || n == 0) return;
  float* host = memory.host_memory() ? grads.as<float>() : nullptr;
  if (!host) staging.resize(size_t(std::min(n, bucket_floats)));
  for (int64_t begin = 0; begin < n; begin += bucket_floats) {
    const int64_t count = std::min(bucket_floats, n - begin);
    if (host) {
      comm.allreduce_sum(std::span<float>(host + begin, size_t(count)));
      continue;
    }
    memory.copy_to_host(staging.data(), grads.at(begin), count);
    comm.allreduce_sum(std::span<float>(staging.data(), size_t(count)));
    memory.copy_from_host(grads.at(begin), staging.data(), count);
  }
}

namespace {

// l for a tensor named "layers.<l>.<...>", else -1.
int layer_of(const std::string& name) {
  constexpr std::string_view prefix = "layers.";
  if (name.rfind(prefix, 0) != 0) return -1;
  const size_t dot = name.find('.', prefix.size());
  return std::stoi(name.substr(prefix.size(), dot - prefix.size()));
}

}  // namespace

bool spare_core_for_communication(int ranks_on_node, unsigned threads_per_rank, unsigned hardware_threads) {
  return int64_t(std::max(ranks_on_node, 1)) * (int64_t(threads_per_rank) + 1) <= int64_t(hardware_threads);
}

std::vector<std::vector<ParamRange>> gradient_groups(const std::vector<ParamTensor>& tensors, int layers,
                                                     bool split_experts) {
  std::vector<std::vector<ParamTensor>> members(size_t(layers) + 1);
  for (const ParamTensor& t : tensors) {
    const int l = layer_of(t.name);
    if (l >= layers)
      throw Error("gradient_groups: tensor " + t.name + " beyond the model's " + std::to_string(layers) + " layers");
    members[l < 0 ? size_t(layers) : size_t(l)].push_back(t);
  }
  std::vector<std::vector<ParamRange>> groups;
  for (const auto& group : members) groups.push_back(param_ranges(group, split_experts));
  return groups;
}

std::string decisions_text(const std::vector<KernelChoice>& choices) {
  std::string text;
  for (const auto& c : choices) text += c.kernel + " " + (c.config.empty() ? "reference" : c.config) + "\n";
  return text;
}

std::vector<KernelChoice> shared_decisions(std::vector<KernelChoice> choices, bool expert_parallel) {
  if (!expert_parallel) return choices;
  auto per_rank_rows = [](const KernelChoice& c) {
    for (LayerStep s : {LayerStep::up_swiglu, LayerStep::down_fwd, LayerStep::down_dgrad, LayerStep::down_wgrad,
                        LayerStep::swiglu_bwd, LayerStep::up_dgrad, LayerStep::up_wgrad})
      if (c.kernel == to_string(s)) return true;
    return false;
  };
  std::erase_if(choices, per_rank_rows);
  return choices;
}

namespace {

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

// "up_swiglu bm64_bn64" -> {"up_swiglu", "bm64_bn64"}; a missing line reads as "(none)".
std::pair<std::string, std::string> split(const std::vector<std::string>& v, size_t i) {
  if (i >= v.size()) return {"", "(no decision)"};
  const size_t space = v[i].find(' ');
  return {v[i].substr(0, space), space == std::string::npos ? "" : v[i].substr(space + 1)};
}

}  // namespace

std::string decision_mismatch(const std::vector<std::string>& per_rank) {
  if (per_rank.empty()) return {};
  const auto root = lines(per_rank[0]);
  for (size_t r = 1; r < per_rank.size(); ++r) {
    if (per_rank[r] == per_rank[0]) continue;
    const auto other = lines(per_rank[r]);
    size_t i = 0;
    while (i < root.size() && i < other.size() && root[i] == other[i]) ++i;
    const auto [kernel0, config0] = split(root, i);
    const auto [kernel_r, config_r] = split(other, i);
    const std::string kernel = kernel_r.empty() ? kernel0 : kernel_r;
    return "rank " + std::to_string(r) + " would run kernel " + kernel + " with config " + config_r + ", rank 0 with " +
           (kernel0 == kernel ? config0 : "(no decision)") +
           ": every rank must use the same kernel decisions; give all ranks one tuning cache "
           "(the same MOEJIT_CACHE_DIR, or `moejit cache import` rank 0's bundle on every machine)";
  }
  return {};
}

void verify_same_decisions(Communicator& comm, const std::vector<KernelChoice>& choices) {
  if (comm.size() == 1) return;
  const std::string text = decisions_text(choices);
  const auto hashes = comm.allgather(hash_hex(text));
  if (std::all_of(hashes.begin(), hashes.end(), [&](const std::string& h) { return h == hashes[0]; })) return;
  throw Error(decision_mismatch(comm.allgather(text)));
}

void verify_same_parameters(Communicator& comm, std::span<const float> params) {
  if (comm.size() == 1) return;
  const auto hashes =
      comm.allgather(hash_hex(std::string_view(reinterpret_cast<const char*>(params.data()), params.size_bytes())));
  for (size_t r = 1; r < hashes.size(); ++r)
    if (hashes[r] != hashes[0])
      throw Error("rank " + std::to_string(r) +
                  "'s parameters differ from rank 0's: the data-parallel ranks diverged (ranks must run the "
                  "same moejit build, backend and options)");
}

}  // namespace moejit::runtime
