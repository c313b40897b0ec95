#include "cuda_backend.hpp"

#include <cstdlib>
#include <cstring>

#include "arch_limits.hpp"
#include "binary_cache.hpp"
#include "moejit/error.hpp"

namespace moejit {
namespace {

int attribute(const CudaDriver& d, CUdevice dev, CUdevice_attribute a) {
  int value = 0;
  check_cuda(d.cuDeviceGetAttribute(&value, a, dev), "cuDeviceGetAttribute");
  return value;
}

DeviceDescription describe(const CudaDriver& d, CUdevice dev) {
  DeviceDescription desc;
  desc.backend = "cuda";
  char name[256] = {};
  check_cuda(d.cuDeviceGetName(name, sizeof name, dev), "cuDeviceGetName");
  desc.name = name;
  desc.arch = arch_for_compute_capability(attribute(d, dev, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR),
                                          attribute(d, dev, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR));
  int version = 0;
  check_cuda(d.cuDriverGetVersion(&version), "cuDriverGetVersion");
  desc.driver = std::to_string(version / 1000) + "." + std::to_string(version % 1000 / 10);
  desc.compute_units = attribute(d, dev, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT);
  desc.shared_per_block_optin = attribute(d, dev, CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN);
  desc.shared_per_sm = attribute(d, dev, CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_MULTIPROCESSOR);
  desc.registers_per_sm = attribute(d, dev, CU_DEVICE_ATTRIBUTE_MAX_REGISTERS_PER_MULTIPROCESSOR);
  desc.l2_bytes = attribute(d, dev, CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE);
  desc.clock_khz = attribute(d, dev, CU_DEVICE_ATTRIBUTE_CLOCK_RATE);
  size_t total = 0;
  check_cuda(d.cuDeviceTotalMem(&total, dev), "cuDeviceTotalMem");
  desc.memory_bytes = static_cast<int64_t>(total);
  return desc;
}

class CudaKernel final : public Kernel {
 public:
  CudaKernel(CudaBackend& backend, CUfunction function, std::string name)
      : backend_(backend), function_(function), name_(std::move(name)) {}

  void launch(const LaunchDims& dims, void** args) override {
    const CudaDriver& d = CudaDriver::get();
    // The arguments are opaque here: a replay checks the kernel and its launch shape.
    const uint64_t signature =
        signature_of({uint64_t(reinterpret_cast<uintptr_t>(function_)), dims.grid[0], dims.grid[1], dims.grid[2],
                      dims.block[0], dims.block[1], dims.block[2], uint64_t(dims.shared_bytes)});
    if (!backend_.admit(signature, name_)) return;
    backend_.make_current();
    if (dims.shared_bytes > 48 * 1024 && dims.shared_bytes != opted_in_) {
      check_cuda(d.cuFuncSetAttribute(function_, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                                      static_cast<int>(dims.shared_bytes)),
                 "raising the kernel's dynamic shared memory limit");
      opted_in_ = dims.shared_bytes;
    }
    CUlaunchConfig config{};
    config.gridDimX = dims.grid[0], config.gridDimY = dims.grid[1], config.gridDimZ = dims.grid[2];
    config.blockDimX = dims.block[0], config.blockDimY = dims.block[1], config.blockDimZ = dims.block[2];
    config.sharedMemBytes = static_cast<unsigned>(dims.shared_bytes);
    config.hStream = backend_.stream();
    CUlaunchAttribute cluster{};
    if (dims.cluster[0] * dims.cluster[1] * dims.cluster[2] > 1) {
      cluster.id = CU_LAUNCH_ATTRIBUTE_CLUSTER_DIMENSION;
      cluster.value.clusterDim.x = dims.cluster[0];
      cluster.value.clusterDim.y = dims.cluster[1];
      cluster.value.clusterDim.z = dims.cluster[2];
      config.attrs = &cluster;
      config.numAttrs = 1;
    }
    check_cuda(d.cuLaunchKernelEx(&config, function_, args, nullptr), ("launching " + name_).c_str());
  }
  const std::string& name() const override { return name_; }

 private:
  CudaBackend& backend_;
  CUfunction function_;
  std::string name_;
  size_t opted_in_ = 0;
};

}  // namespace

std::vector<DeviceDescription> list_cuda_devices() {
  std::vector<DeviceDescription> devices;
  if (!CudaDriver::available()) return devices;
  const CudaDriver& d = CudaDriver::get();
  int count = 0;
  check_cuda(d.cuDeviceGetCount(&count), "cuDeviceGetCount");
  for (int i = 0; i < count; ++i) {
    CUdevice dev;
    check_cuda(d.cuDeviceGet(&dev, i), "cuDeviceGet");
    devices.push_back(describe(d, dev));
  }
  return devices;
}

CudaBackend::CudaBackend(int ordinal, BinaryCache* cache)
    : driver_(CudaDriver::get()), cache_(cache ? cache : &BinaryCache::global()) {
  int count = 0;
  check_cuda(driver_.cuDeviceGetCount(&count), "cuDeviceGetCount");
  if (ordinal < 0) ordinal = default_device_ordinal(count);
  if (ordinal >= count)
    throw UnavailableError("CUDA device " + std::to_string(ordinal) + " does not exist (" + std::to_string(count) +
                           " visible): set MOEJIT_DEVICE");
  check_cuda(driver_.cuDeviceGet(&device_handle_, ordinal), "cuDeviceGet");
  check_cuda(driver_.cuDevicePrimaryCtxRetain(&context_, device_handle_), "cuDevicePrimaryCtxRetain");
  make_current();
  check_cuda(driver_.cuStreamCreate(&stream_, CU_STREAM_DEFAULT), "cuStreamCreate");
  device_ = describe(driver_, device_handle_);
  compiler_ = std::make_unique<NvrtcCompiler>(device_.arch);
}

CudaBackend::~CudaBackend() {
  make_current();
  driver_.cuStreamSynchronize(stream_);
  for (const Slot& s : slots_) driver_.cuMemFreeHost(s.pinned);
  for (auto& [key, entry] : modules_) driver_.cuModuleUnload(entry.second);
  if (own_stream_) driver_.cuStreamDestroy(stream_);
  driver_.cuDevicePrimaryCtxRelease(device_handle_);
}

void CudaBackend::use_stream(CUstream caller_stream) {
  if (!caller_stream) throw Error("use_stream: a null stream (leave the option unset for the backend's own)");
  make_current();
  if (own_stream_) {
    check_cuda(driver_.cuStreamSynchronize(stream_), "cuStreamSynchronize");
    driver_.cuStreamDestroy(stream_);
  }
  stream_ = caller_stream;
  own_stream_ = false;
}

void CudaBackend::make_current() const {
  check_cuda(driver_.cuCtxSetCurrent(context_), "cuCtxSetCurrent");
}

std::shared_ptr<const Binary> CudaBackend::build(const Source& source) {
  return cache_->get_or_compile(*compiler_, source);
}

CUmodule CudaBackend::module_for(const std::shared_ptr<const Binary>& binary) {
  std::lock_guard lock(modules_mutex_);
  if (auto it = modules_.find(binary->key); it != modules_.end()) return it->second.second;
  if (binary->kind != "cubin") throw Error("cannot load a '" + binary->kind + "' binary on the cuda backend");
  if (binary->arch != device_.arch)
    throw Error("binary " + binary->uri() + " is for " + binary->arch + ", this GPU is " + device_.arch);
  make_current();
  CUmodule module = nullptr;
  check_cuda(driver_.cuModuleLoadData(&module, binary->image.data()), ("loading " + binary->uri()).c_str());
  modules_.emplace(binary->key, std::make_pair(binary, module));
  return module;
}

std::unique_ptr<Kernel> CudaBackend::load(std::shared_ptr<const Binary> binary, const std::string& entry) {
  CUmodule module = module_for(binary);
  CUfunction function = nullptr;
  const std::string& symbol = binary->symbol(entry);
  check_cuda(driver_.cuModuleGetFunction(&function, module, symbol.c_str()),
             ("finding " + entry + " in " + binary->uri()).c_str());
  return std::make_unique<CudaKernel>(*this, function, binary->uri() + ":" + entry);
}

void* CudaBackend::allocate(size_t bytes) {
  refuse_in_step("allocating device memory");
  make_current();
  CUdeviceptr ptr = 0;
  CUresult r = driver_.cuMemAlloc(&ptr, bytes);
  if (r == CUDA_ERROR_OUT_OF_MEMORY) {
    size_t free_bytes = 0, total = 0;
    driver_.cuMemGetInfo(&free_bytes, &total);
    throw OutOfMemoryError("out of GPU memory allocating " + std::to_string(bytes >> 20) + " MiB (" +
                           std::to_string(free_bytes >> 20) + " MiB free of " + std::to_string(total >> 20) +
                           "): use fewer tokens per call or a smaller model");
  }
  check_cuda(r, "cuMemAlloc");
  return reinterpret_cast<void*>(ptr);
}

void CudaBackend::release(void* ptr) noexcept {
  if (!ptr) return;
  driver_.cuCtxSetCurrent(context_);
  driver_.cuMemFree(reinterpret_cast<CUdeviceptr>(ptr));
}

void CudaBackend::copy_to_device(void* dst, const void* src, size_t bytes) {
  make_current();
  if (log_.mode() != EnqueueLog::Mode::run) return stage_upload(dst, src, bytes);
  check_cuda(driver_.cuMemcpyHtoD(reinterpret_cast<CUdeviceptr>(dst), src, bytes), "cuMemcpyHtoD");
}

void CudaBackend::copy_to_host(void* dst, const void* src, size_t bytes) {
  refuse_in_step("reading device memory back");
  make_current();
  check_cuda(driver_.cuMemcpyDtoH(dst, reinterpret_cast<CUdeviceptr>(src), bytes), "cuMemcpyDtoH");
}

// Copies and fills are stream-ordered (the stream's work stays in order, and a captured step holds
// them as graph nodes).
void CudaBackend::copy_device_to_device(void* dst, const void* src, size_t bytes) {
  const auto d = uint64_t(reinterpret_cast<uintptr_t>(dst)), s = uint64_t(reinterpret_cast<uintptr_t>(src));
  if (!admit(signature_of({1, d, s, bytes}), "device copy")) return;
  make_current();
  check_cuda(driver_.cuMemcpyDtoDAsync(CUdeviceptr(d), CUdeviceptr(s), bytes, stream_), "cuMemcpyDtoDAsync");
}

void CudaBackend::fill_bytes(void* dst, uint8_t value, size_t bytes) {
  const auto d = uint64_t(reinterpret_cast<uintptr_t>(dst));
  if (!admit(signature_of({2, d, value, bytes}), "fill")) return;
  make_current();
  check_cuda(driver_.cuMemsetD8Async(CUdeviceptr(d), value, bytes, stream_), "cuMemsetD8Async");
}

void CudaBackend::begin_enqueue(EnqueueLog::Mode mode) {
  // Capture and replay rewrite the slots the previous replay read: it must have finished.
  if (mode != EnqueueLog::Mode::run) synchronize();
  log_.start(mode);
  next_slot_ = 0;
}

void CudaBackend::refuse_in_step(const char* what) const {
  if (log_.mode() != EnqueueLog::Mode::run)
    throw Error(std::string(what) +
                " inside a training step captured as a CUDA graph: this op waits for the "
                "device, which a graph cannot; run with MOEJIT_NO_GRAPH=1 (eager) and report it");
}

// The slot's content is copied when the graph runs, not now: capture records the copy node, and a
// replay (check mode, after the previous run finished) only rewrites the slot.
void CudaBackend::stage_upload(void* dst, const void* src, size_t bytes) {
  const auto d = uint64_t(reinterpret_cast<uintptr_t>(dst));
  const bool enqueue = admit(signature_of({3, d, bytes}), "upload");
  if (enqueue && next_slot_ < slots_.size() && slots_[next_slot_].bytes != bytes) {
    check_cuda(driver_.cuMemFreeHost(slots_[next_slot_].pinned), "cuMemFreeHost");
    slots_[next_slot_] = {};
  }
  if (next_slot_ == slots_.size()) slots_.push_back({});
  Slot& slot = slots_[next_slot_++];
  if (!slot.pinned) {
    check_cuda(driver_.cuMemAllocHost(&slot.pinned, bytes), "cuMemAllocHost (the step's staged uploads)");
    slot.bytes = bytes;
  }
  std::memcpy(slot.pinned, src, bytes);
  if (enqueue) check_cuda(driver_.cuMemcpyHtoDAsync(CUdeviceptr(d), slot.pinned, bytes, stream_), "cuMemcpyHtoDAsync");
}

size_t CudaBackend::free_bytes() {
  make_current();
  size_t free_bytes = 0, total = 0;
  check_cuda(driver_.cuMemGetInfo(&free_bytes, &total), "cuMemGetInfo");
  return free_bytes;
}

void CudaBackend::synchronize() {
  refuse_in_step("waiting for the device");
  make_current();
  check_cuda(driver_.cuStreamSynchronize(stream_), "cuStreamSynchronize (a kernel may have faulted)");
}

double CudaBackend::time_ms(const std::function<void()>& work) {
  make_current();
  CUevent start = nullptr, stop = nullptr;
  check_cuda(driver_.cuEventCreate(&start, CU_EVENT_DEFAULT), "cuEventCreate");
  check_cuda(driver_.cuEventCreate(&stop, CU_EVENT_DEFAULT), "cuEventCreate");
  float ms = 0;
  try {
    check_cuda(driver_.cuEventRecord(start, stream_), "cuEventRecord");
    work();
    check_cuda(driver_.cuEventRecord(stop, stream_), "cuEventRecord");
    check_cuda(driver_.cuEventSynchronize(stop), "cuEventSynchronize (a kernel may have faulted)");
    check_cuda(driver_.cuEventElapsedTime(&ms, start, stop), "cuEventElapsedTime");
  } catch (...) {
    driver_.cuEventDestroy(start);
    driver_.cuEventDestroy(stop);
    throw;
  }
  driver_.cuEventDestroy(start);
  driver_.cuEventDestroy(stop);
  return ms;
}

int default_device_ordinal(int device_count) {
  const char* env = std::getenv("MOEJIT_DEVICE");
  if (env && *env) return std::atoi(env);
  // The launchers' local rank: Open MPI, MPICH/Hydra, Slurm.
  for (const char* name : {"OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "SLURM_LOCALID"}) {
    const char* local = std::getenv(name);
    if (local && *local && device_count > 0) return std::atoi(local) % device_count;
  }
  return 0;
}

}  // namespace moejit
