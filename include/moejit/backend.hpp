// Backend: where kernels compile, load, run and are timed. `cuda` (NVRTC + driver API loaded with
// dlopen) or `host` (Clang/LLVM ORC on the CPU). Everything above jit/ talks to this interface only.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "moejit/binary.hpp"
#include "moejit/compiler.hpp"
#include "moejit/source.hpp"

namespace moejit {

class BinaryCache;

// What a device is and what it can do: validators for tuning decisions, limits for pruning.
struct DeviceDescription {
  std::string backend;                 // "cuda" | "host"
  std::string name;                    // "NVIDIA H100 80GB HBM3", or the CPU model
  std::string arch;                    // "sm_90a", or the host CPU name ("skylake-avx512")
  std::string features;                // host: CPU feature list; cuda: empty
  std::string driver;                  // driver version ("13.0"), host: empty
  int compute_units = 0;               // SMs, or hardware threads
  int64_t shared_per_block_optin = 0;  // bytes a block may opt in to
  int64_t shared_per_sm = 0;
  int64_t registers_per_sm = 0;
  int64_t l2_bytes = 0;  // last-level cache
  int64_t memory_bytes = 0;
  int clock_khz = 0;
};

struct LaunchDims {
  unsigned grid[3] = {1, 1, 1};
  unsigned block[3] = {1, 1, 1};
  unsigned cluster[3] = {1, 1, 1};
  size_t shared_bytes = 0;  // dynamic shared memory
};

// A loaded entry point. args follows the CUDA convention: an array of pointers to each argument.
class Kernel {
 public:
  virtual ~Kernel() = default;
  virtual void launch(const LaunchDims& dims, void** args) = 0;
  virtual const std::string& name() const = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;
  virtual const DeviceDescription& device() const = 0;
  virtual const Compiler& compiler() const = 0;

  // Compile through the binary cache (memory, then disk, then the compiler).
  virtual std::shared_ptr<const Binary> build(const Source& source) = 0;
  virtual std::unique_ptr<Kernel> load(std::shared_ptr<const Binary> binary, const std::string& entry) = 0;

  // Memory the backend's kernels can address.
  virtual void* allocate(size_t bytes) = 0;
  virtual void release(void* ptr) noexcept = 0;
  virtual void copy_to_device(void* dst, const void* src, size_t bytes) = 0;
  virtual void copy_to_host(void* dst, const void* src, size_t bytes) = 0;
  virtual void copy_device_to_device(void* dst, const void* src, size_t bytes) = 0;
  virtual void fill_bytes(void* dst, uint8_t value, size_t bytes) = 0;
  virtual void synchronize() = 0;

  // Wall time of one call of `work` in milliseconds, measured the backend's way
  // (CUDA events on the backend's stream; a steady clock on the host).
  virtual double time_ms(const std::function<void()>& work) = 0;
};

// RAII device buffer with typed helpers, for tests, benchmarks and the autotuner.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  DeviceBuffer(Backend& backend, size_t bytes)
      : backend_(&backend), ptr_(bytes ? backend.allocate(bytes) : nullptr), bytes_(bytes) {}
  DeviceBuffer(DeviceBuffer&& other) noexcept { *this = std::move(other); }
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept {
    if (this != &other) {
      reset();
      backend_ = other.backend_;
      ptr_ = other.ptr_;
      bytes_ = other.bytes_;
      other.ptr_ = nullptr;
      other.bytes_ = 0;
    }
    return *this;
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer() { reset(); }

  template <typename T>
  static DeviceBuffer from(Backend& backend, const std::vector<T>& host) {
    DeviceBuffer buffer(backend, host.size() * sizeof(T));
    if (!host.empty()) backend.copy_to_device(buffer.ptr_, host.data(), buffer.bytes_);
    return buffer;
  }
  template <typename T>
  std::vector<T> to_host() const {
    std::vector<T> host(bytes_ / sizeof(T));
    if (!host.empty()) backend_->copy_to_host(host.data(), ptr_, host.size() * sizeof(T));
    return host;
  }
  void fill(uint8_t value) {
    if (bytes_) backend_->fill_bytes(ptr_, value, bytes_);
  }
  void* get() const { return ptr_; }
  size_t bytes() const { return bytes_; }
  // Address of the pointer itself, for kernel argument arrays.
  void* const* arg() const { return &ptr_; }

 private:
  void reset() noexcept {
    if (ptr_) backend_->release(ptr_);
    ptr_ = nullptr;
  }
  Backend* backend_ = nullptr;
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

}  // namespace moejit
