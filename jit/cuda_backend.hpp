// The `cuda` backend: NVRTC for compiling, the driver API (dlopen) for loading, launching, timing.
#pragma once
#include <map>
#include <memory>
#include <mutex>

#include "cuda_driver.hpp"
#include "enqueue_log.hpp"
#include "moejit/backend.hpp"
#include "nvrtc_compiler.hpp"

namespace moejit {

class BinaryCache;

// The device a process uses unless told: $MOEJIT_DEVICE, else its local rank on the node as an MPI
// launcher or Slurm sets it (modulo device_count: one GPU per rank), else 0.
int default_device_ordinal(int device_count);

class CudaBackend final : public Backend {
 public:
  // Device `ordinal` (default: default_device_ordinal). Throws UnavailableError without a driver/GPU.
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
  // Queue everything on the caller's stream from now on (a library caller's own; it must belong to
  // the device's primary context, as a CUDA runtime stream does). The backend's own stream is
  // destroyed; the caller's is left alone at destruction. Call before any work.
  void use_stream(CUstream caller_stream);
  size_t free_bytes();        // the device's free memory now
  void make_current() const;  // binds the context to the calling thread

  // Capture and replay of a step (cuda_graph.hpp). Every op that enqueues work on the stream (kernel
  // launches, fills, device copies, uploads, and cuBLASLt products through admit()) asks the log
  // first. While a step is captured or replayed, uploads go through pinned staging slots (a graph's
  // copy node reads its slot at each replay; a replay rewrites the slots), and what would wait for
  // the device (downloads, synchronize, allocation) throws, naming the op.
  void begin_enqueue(EnqueueLog::Mode mode);
  void end_enqueue() { log_.finish(); }
  EnqueueLog::Mode enqueue_mode() const { return log_.mode(); }
  bool admit(uint64_t signature, const std::string& what) { return log_.admit(signature, what); }

 private:
  CUmodule module_for(const std::shared_ptr<const Binary>& binary);
  void refuse_in_step(const char* what) const;  // throws while a step is captured or replayed
  void stage_upload(void* dst, const void* src, size_t bytes);

  const CudaDriver& driver_;
  CUdevice device_handle_ = 0;
  CUcontext context_ = nullptr;
  CUstream stream_ = nullptr;
  bool own_stream_ = true;
  DeviceDescription device_;
  std::unique_ptr<NvrtcCompiler> compiler_;
  BinaryCache* cache_;
  std::mutex modules_mutex_;
  std::map<std::string, std::pair<std::shared_ptr<const Binary>, CUmodule>> modules_;  // by binary key
  EnqueueLog log_;
  struct Slot {
    void* pinned = nullptr;
    size_t bytes = 0;
  };
  std::vector<Slot> slots_;  // the staged uploads of the captured step, in order
  size_t next_slot_ = 0;
};

// Describes every visible GPU (for `moejit info`); empty without a driver.
std::vector<DeviceDescription> list_cuda_devices();

}  // namespace moejit
