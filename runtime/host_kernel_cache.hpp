// The host backend's kernels by Problem: a KernelCache (kernel_cache.hpp: the tuning-cache ladder,
// built and loaded once per problem key and config) on one HostBackend whose worker pool runs them.
// Shared by the MoE layer's kernels and the dense ops of the host step backend. Only built with
// MOEJIT_WITH_LLVM.
#pragma once
#include "host_backend.hpp"
#include "kernel_cache.hpp"

namespace moejit::runtime {

class HostKernelCache {
 public:
  struct Options {
    // The worker pool (0: one per hardware thread, as `moejit tune` uses, so that the tuned
    // decisions' validators match) and the tuning store (empty: $MOEJIT_CACHE_DIR/tuning).
    unsigned threads = 0;
    std::filesystem::path tuning_dir;
  };
  explicit HostKernelCache(const Options& options)
      : backend_(nullptr, options.threads), cache_(backend_, options.tuning_dir) {}

  using Entry = KernelCache::Entry;
  Entry resolve(const Problem& problem) { return cache_.resolve(problem); }
  HostBackend& backend() { return backend_; }
  KernelCache& cache() { return cache_; }

 private:
  HostBackend backend_;  // before cache_, which holds a reference to it
  KernelCache cache_;
};

}  // namespace moejit::runtime
