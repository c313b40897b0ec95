// The `cuda` backend: NVRTC for compiling, the driver API (dlopen) for loading, launching, timing.
#pragma once
#include <map>
#include <memory>
#include <mutex>

#include "cuda_driver.hpp"
#include "moejit/backend.hpp"
#include "nvrtc_compiler.hpp"

namespace moejit {

class BinaryCache;

class CudaBackend final : public Backend {
 public:
  // Device `ordinal` (default: $MOEJIT_DEVICE or 0). Throws UnavailableError without a driver/GPU.
  explicit CudaBackend(int ordinal = -1, BinaryCache* cache = nullptr);
  ~CudaBackend() override;

  std::string name() const override { return "cuda"; }
  const DeviceDescription& device() const override { return device_; }
  const Compiler& compiler() const override { return *compiler_; }

  std::shared_ptr<const Binary> build(const Source& source) override;
  std::unique_ptr<Kernel> load(std::shared_ptr<const Binary> binary, const std::string& entry) override;

  void* allocate(size_t bytes) override;
  void release(void* ptr) noexcept override;
  void copy_to_device(void* dst, const void* src, size_t bytes) override;
  void copy_to_host(void* dst, const void* src, size_t bytes) override;
  void copy_device_to_device(void* dst, const void* src, size_t bytes) override;
  void fill_bytes(void* dst, uint8_t value, size_t bytes) override;
  void synchronize() override;
  double time_ms(const std::function<void()>& work) override;

  CUstream stream() const { return stream_; }
  void make_current() const;  // binds the context to the calling thread

 private:
  CUmodule module_for(const std::shared_ptr<const Binary>& binary);

  const CudaDriver& driver_;
  CUdevice device_handle_ = 0;
  CUcontext context_ = nullptr;
  CUstream stream_ = nullptr;
  DeviceDescription device_;
  std::unique_ptr<NvrtcCompiler> compiler_;
  BinaryCache* cache_;
  std::mutex modules_mutex_;
  std::map<std::string, std::pair<std::shared_ptr<const Binary>, CUmodule>> modules_;  // by binary key
};

// Describes every visible GPU (for `moejit info`); empty without a driver.
std::vector<DeviceDescription> list_cuda_devices();

}  // namespace moejit
