#include "host_backend.hpp"

#include <llvm/ExecutionEngine/Orc/ExecutionUtils.h>
#include <llvm/ExecutionEngine/Orc/LLJIT.h>
#include <llvm/Support/Error.h>
#include <llvm/Support/MemoryBuffer.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <thread>

#include "binary_cache.hpp"
#include "moejit/abi/host_launch.h"
#include "moejit/error.hpp"
#include "thread_pool.hpp"

namespace moejit {
namespace {

std::string take_message(llvm::Error error) {
  return llvm::toString(std::move(error));
}

std::string cpu_model_name() {
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("model name", 0) == 0)
      if (auto colon = line.find(':'); colon != std::string::npos)
        return line.substr(line.find_first_not_of(" \t", colon + 1));
  return "unknown CPU";
}

// HostLaunch::parallel_for: the kernel's work items one at a time (expert loads are uneven) on the
// calling thread plus the backend's pool workers, which sleep between launches.
void parallel_for(const HostLaunch* self, long long n, void (*body)(void*, int, long long), void* ctx) {
  static_cast<ThreadPool*>(self->pool)
      ->parallel_for(
          n, 1,
          [&](unsigned worker, int64_t begin, int64_t end) {
            for (int64_t i = begin; i < end; ++i) body(ctx, static_cast<int>(worker), i);
          },
          static_cast<unsigned>(self->threads));
}

class HostKernel final : public Kernel {
 public:
  HostKernel(std::string name, HostEntry entry, ThreadPool* pool)
      : name_(std::move(name)), entry_(entry), pool_(pool) {}
  void launch(const LaunchDims& dims, void** args) override {
    HostLaunch launch{static_cast<int>(std::clamp<unsigned>(dims.grid[0], 1, pool_->threads())), &parallel_for, pool_};
    entry_(args, &launch);
  }
  const std::string& name() const override { return name_; }

 private:
  std::string name_;
  HostEntry entry_;
  ThreadPool* pool_;
};

}  // namespace

struct HostBackend::Impl {
  std::unique_ptr<llvm::orc::LLJIT> jit;
  std::mutex mutex;                                    // guards the JIT and `loaded`
  std::map<std::string, llvm::orc::JITDylib*> loaded;  // binary key -> its JITDylib
  explicit Impl(unsigned threads) : pool(threads) {}
  ThreadPool pool;  // the kernels' workers
};

DeviceDescription describe_host(const HostTarget& target, unsigned threads) {
  DeviceDescription d;
  d.backend = "host";
  d.name = cpu_model_name();
  d.arch = target.arch();
  d.features = target.enabled_features();
  d.compute_units = static_cast<int>(threads);
  if (long l3 = sysconf(_SC_LEVEL3_CACHE_SIZE); l3 > 0) d.l2_bytes = l3;
  if (long pages = sysconf(_SC_PHYS_PAGES); pages > 0)
    d.memory_bytes = static_cast<int64_t>(pages) * sysconf(_SC_PAGESIZE);
  return d;
}

HostBackend::HostBackend(BinaryCache* cache, unsigned threads, HostTarget target)
    : compiler_(std::move(target)),
      cache_(cache ? cache : &BinaryCache::global()),
      impl_(std::make_unique<Impl>(threads)) {
  device_ = describe_host(compiler_.target(), impl_->pool.threads());

  auto jit = llvm::orc::LLJITBuilder().create();
  if (!jit) throw UnavailableError("cannot start the LLVM ORC JIT: " + take_message(jit.takeError()));
  impl_->jit = std::move(*jit);
}

HostBackend::~HostBackend() = default;

unsigned HostBackend::threads() const {
  return impl_->pool.threads();
}

std::shared_ptr<const Binary> HostBackend::build(const Source& source) {
  return cache_->get_or_compile(compiler_, source);
}

std::unique_ptr<Kernel> HostBackend::load(std::shared_ptr<const Binary> binary, const std::string& entry) {
  if (!binary || binary->kind != "o")
    throw Error("the host backend loads object files; got " + (binary ? "a '" + binary->kind + "' binary" : "nothing") +
                " for entry '" + entry + "'");
  std::lock_guard lock(impl_->mutex);
  auto& jit = *impl_->jit;
  // One JITDylib per binary: every config may export the same entry names without clashing.
  llvm::orc::JITDylib* dylib = nullptr;
  if (auto it = impl_->loaded.find(binary->key); it != impl_->loaded.end()) {
    dylib = it->second;
  } else {
    auto created = jit.createJITDylib("moejit." + binary->uri() + "." + binary->key);
    if (!created)
      throw Error("cannot create a JIT library for " + binary->uri() + ": " + take_message(created.takeError()));
    dylib = &*created;
    // libc and libm come from the process itself.
    auto process =
        llvm::orc::DynamicLibrarySearchGenerator::GetForCurrentProcess(jit.getDataLayout().getGlobalPrefix());
    if (!process) throw Error("cannot expose the process's symbols to the JIT: " + take_message(process.takeError()));
    dylib->addGenerator(std::move(*process));
    auto buffer = llvm::MemoryBuffer::getMemBufferCopy(llvm::StringRef(binary->image.data(), binary->image.size()),
                                                       binary->uri());
    if (auto error = jit.addObjectFile(*dylib, std::move(buffer)))
      throw Error("cannot load the object of " + binary->uri() + ": " + take_message(std::move(error)));
    impl_->loaded.emplace(binary->key, dylib);
  }
  const std::string& symbol = binary->symbol(entry);
  auto address = jit.lookup(*dylib, symbol);
  if (!address)
    throw Error("entry '" + symbol + "' not found in " + binary->uri() + " (" + take_message(address.takeError()) +
                "); host entries must be extern \"C\"");
  return std::make_unique<HostKernel>(binary->uri() + ":" + symbol, address->toPtr<HostEntry>(), &impl_->pool);
}

void* HostBackend::allocate(size_t bytes) {
  const size_t rounded = (std::max<size_t>(bytes, 1) + 63) / 64 * 64;
  void* ptr = std::aligned_alloc(64, rounded);
  if (!ptr) throw Error("host allocation of " + std::to_string(bytes) + " bytes failed");
  return ptr;
}

void HostBackend::release(void* ptr) noexcept {
  std::free(ptr);
}
void HostBackend::copy_to_device(void* dst, const void* src, size_t bytes) {
  std::memcpy(dst, src, bytes);
}
void HostBackend::copy_to_host(void* dst, const void* src, size_t bytes) {
  std::memcpy(dst, src, bytes);
}
void HostBackend::copy_device_to_device(void* dst, const void* src, size_t bytes) {
  std::memmove(dst, src, bytes);
}
void HostBackend::fill_bytes(void* dst, uint8_t value, size_t bytes) {
  std::memset(dst, value, bytes);
}

double HostBackend::time_ms(const std::function<void()>& work) {
  const auto start = std::chrono::steady_clock::now();
  work();
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace moejit
