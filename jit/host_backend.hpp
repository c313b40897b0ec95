// The `host` backend: HostCompiler (Clang as a library) through the BinaryCache, LLVM ORC LLJIT
// for loading, the process's own memory, a steady clock for timing. Kernels get a parallel-for
// backed by a pool of sleeping worker threads (moejit/abi/host_launch.h). Only built with
// MOEJIT_WITH_LLVM.
#pragma once
#include <memory>

#include "host_compiler.hpp"
#include "moejit/backend.hpp"

namespace moejit {

class BinaryCache;

class HostBackend final : public Backend {
 public:
  // threads: worker threads kernels may use (0: one per hardware thread). cache: default global.
  explicit HostBackend(BinaryCache* cache = nullptr, unsigned threads = 0, HostTarget target = HostTarget::native());
  ~HostBackend() override;

  std::string name() const override { return "host"; }
  const DeviceDescription& device() const override { return device_; }
  const Compiler& compiler() const override { return compiler_; }

  std::shared_ptr<const Binary> build(const Source& source) override;
  // Entry `entry` is an extern "C" symbol with the HostEntry signature. launch(): grid[0] is the
  // number of worker threads (clamped to the pool; 0 means 1).
  std::unique_ptr<Kernel> load(std::shared_ptr<const Binary> binary, const std::string& entry) override;

  void* allocate(size_t bytes) override;  // 64-byte aligned (a cache line, one AVX-512 vector)
  void release(void* ptr) noexcept override;
  void copy_to_device(void* dst, const void* src, size_t bytes) override;
  void copy_to_host(void* dst, const void* src, size_t bytes) override;
  void copy_device_to_device(void* dst, const void* src, size_t bytes) override;
  void fill_bytes(void* dst, uint8_t value, size_t bytes) override;
  void synchronize() override {}
  double time_ms(const std::function<void()>& work) override;

  unsigned threads() const;

 private:
  struct Impl;
  HostCompiler compiler_;
  DeviceDescription device_;
  BinaryCache* cache_;
  std::unique_ptr<Impl> impl_;
};

// Describes this machine's CPU (for `moejit info` and tuning validators).
DeviceDescription describe_host(const HostTarget& target, unsigned threads);

}  // namespace moejit
