// The host backend's kernels by Problem: each problem's config from the tuning-cache ladder (exact ->
// nearest bucket -> same arch -> heuristic; looked up once per problem key and run), rendered, built
// through the binary cache and loaded once per (problem key, config), on one HostBackend whose worker
// pool runs them. Shared by the MoE layer's kernels and the dense ops of the host step backend. Only
// built with MOEJIT_WITH_LLVM.
#pragma once
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "host_backend.hpp"
#include "lookup.hpp"
#include "moe_kernels.hpp"

namespace moejit::runtime {

class HostKernelCache {
 public:
  struct Options {
    // The worker pool (0: one per hardware thread, as `moejit tune` uses, so that the tuned
    // decisions' validators match) and the tuning store (empty: $MOEJIT_CACHE_DIR/tuning).
    unsigned threads = 0;
    std::filesystem::path tuning_dir;
  };
  explicit HostKernelCache(const Options& options);

  struct Entry {
    const KernelSpec* spec = nullptr;
    const LookupResult* result = nullptr;
    std::vector<std::unique_ptr<Kernel>>* kernels = nullptr;  // in the order of Source::entries
    const Config& config() const { return result->config; }
    Kernel& kernel(size_t i = 0) const { return *kernels->at(i); }
  };
  // The problem's config and loaded kernels; the pointers stay valid for the cache's life.
  Entry resolve(const Problem& problem);
  HostBackend& backend() { return backend_; }

 private:
  HostBackend backend_;
  TuningLookup lookup_;
  std::map<std::string, LookupResult> configs_;                         // by problem key
  std::map<std::string, std::vector<std::unique_ptr<Kernel>>> loaded_;  // by problem key + config
};

// The config and worst rung that served each named kernel call of a run, in first-use order.
class ChoiceLog {
 public:
  void record(const std::string& kernel, const HostKernelCache::Entry& e);
  std::vector<KernelChoice> choices() const { return choices_; }

 private:
  std::vector<KernelChoice> choices_;
  std::map<std::string, size_t> index_;
};

}  // namespace moejit::runtime
