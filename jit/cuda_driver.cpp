#include "cuda_driver.hpp"

#include <dlfcn.h>

#include <mutex>

#include "moejit/error.hpp"

namespace moejit {
namespace {

struct LoadResult {
  CudaDriver driver;
  std::string error;  // empty on success
};

LoadResult load() {
  LoadResult r;
  const char* path = "libcuda.so.1";
  void* lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    r.error = std::string("cannot load ") + path + " (" + dlerror() + ")";
    return r;
  }
  using GetProc = CUresult (*)(const char*, void**, int, cuuint64_t, CUdriverProcAddressQueryResult*);
  auto get_proc = reinterpret_cast<GetProc>(dlsym(lib, "cuGetProcAddress_v2"));
  if (!get_proc) {
    r.error = "the CUDA driver is too old (no cuGetProcAddress_v2); update it to one supporting CUDA " +
              std::to_string(CUDA_VERSION / 1000) + "." + std::to_string(CUDA_VERSION % 1000 / 10);
    return r;
  }
#define MOEJIT_LOAD_FN(name)                                                                               \
  {                                                                                                        \
    void* fn = nullptr;                                                                                    \
    CUdriverProcAddressQueryResult status{};                                                               \
    if (get_proc(#name, &fn, CUDA_VERSION, CU_GET_PROC_ADDRESS_DEFAULT, &status) != CUDA_SUCCESS || !fn) { \
      r.error = std::string("the CUDA driver lacks ") + #name + ": update it";                             \
      return r;                                                                                            \
    }                                                                                                      \
    r.driver.name = reinterpret_cast<decltype(r.driver.name)>(fn);                                         \
  }
  MOEJIT_CUDA_DRIVER_FUNCTIONS(MOEJIT_LOAD_FN)
#undef MOEJIT_LOAD_FN
  CUresult init = r.driver.cuInit(0);
  if (init != CUDA_SUCCESS) {
    const char* name = nullptr;
    r.driver.cuGetErrorName(init, &name);
    r.error = std::string("cuInit failed (") + (name ? name : "?") + ")";
    return r;
  }
  int count = 0;
  if (r.driver.cuDeviceGetCount(&count) != CUDA_SUCCESS || count == 0) r.error = "no CUDA device visible";
  return r;
}

const LoadResult& loaded() {
  static const LoadResult result = load();
  return result;
}

}  // namespace

const CudaDriver& CudaDriver::get() {
  const LoadResult& r = loaded();
  if (!r.error.empty())
    throw UnavailableError("no CUDA driver: GPU backend unavailable; host backend available (" + r.error + ")");
  return r.driver;
}

bool CudaDriver::available(std::string* why) {
  const LoadResult& r = loaded();
  if (why) *why = r.error;
  return r.error.empty();
}

void check_cuda(CUresult result, const char* what) {
  if (result == CUDA_SUCCESS) return;
  const char* name = nullptr;
  const char* text = nullptr;
  if (CudaDriver::available()) {
    CudaDriver::get().cuGetErrorName(result, &name);
    CudaDriver::get().cuGetErrorString(result, &text);
  }
  const std::string message = std::string(what) + ": " + (name ? name : "CUDA error " + std::to_string(result)) + " (" +
                              (text ? text : "") + ")";
  if (result == CUDA_ERROR_OUT_OF_MEMORY) throw OutOfMemoryError(message);
  throw Error(message);
}

}  // namespace moejit
