// A backend's kernels by Problem: each problem's config from the tuning-cache ladder (exact ->
// nearest bucket -> same arch -> heuristic; looked up once per problem key and run), rendered, built
// through the binary cache and loaded once per (problem key, config). The host backend's kernels
// (host_kernel_cache.hpp) and the GPU backend's (cuda_step_backend.hpp) resolve through it, so a
// runtime looks configs up exactly as `moejit tune` stores them, whatever the backend.
#pragma once
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "lookup.hpp"
#include "moe_kernels.hpp"
#include "moejit/backend.hpp"

namespace moejit::runtime {

class KernelCache {
 public:
  // `backend` outlives the cache; tuning_dir empty: $MOEJIT_CACHE_DIR/tuning.
  KernelCache(Backend& backend, const std::filesystem::path& tuning_dir);

  struct Entry {
    const KernelSpec* spec = nullptr;
    const LookupResult* result = nullptr;
    std::vector<std::unique_ptr<Kernel>>* kernels = nullptr;  // in the order of Source::entries
    const Config& config() const { return result->config; }
    Kernel& kernel(size_t i = 0) const { return *kernels->at(i); }
  };
  // The problem's config and loaded kernels; the pointers stay valid for the cache's life.
  Entry resolve(const Problem& problem);
  Backend& backend() { return backend_; }

 private:
  Backend& backend_;
  TuningLookup lookup_;
  std::map<std::string, LookupResult> configs_;                         // by problem key
  std::map<std::string, std::vector<std::unique_ptr<Kernel>>> loaded_;  // by problem key + config
};

// The config and worst rung that served each named kernel call of a run, in first-use order.
class ChoiceLog {
 public:
  void record(const std::string& kernel, const KernelCache::Entry& e);
  std::vector<KernelChoice> choices() const { return choices_; }

 private:
  std::vector<KernelChoice> choices_;
  std::map<std::string, size_t> index_;
};

}  // namespace moejit::runtime
