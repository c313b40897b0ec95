// The CUDA driver API, loaded at run time with dlopen("libcuda.so.1"), so every moejit binary links
// and runs on machines without a GPU. Entry points come from cuGetProcAddress at the ABI version of
// the headers we were built with. cuda.h supplies the types only; nothing links against libcuda.
#pragma once
#include <cuda.h>

#include <string>

namespace moejit {

#define MOEJIT_CUDA_DRIVER_FUNCTIONS(X)                                                                              \
  X(cuInit)                                                                                                          \
  X(cuDriverGetVersion)                                                                                              \
  X(cuDeviceGetCount)                                                                                                \
  X(cuDeviceGet)                                                                                                     \
  X(cuDeviceGetName) X(cuDeviceGetAttribute) X(cuDeviceTotalMem) X(cuDevicePrimaryCtxRetain)                         \
      X(cuDevicePrimaryCtxRelease) X(cuCtxSetCurrent) X(cuCtxSynchronize) X(cuModuleLoadData) X(cuModuleUnload)      \
          X(cuModuleGetFunction) X(cuFuncSetAttribute) X(cuFuncGetAttribute) X(cuLaunchKernelEx) X(cuMemAlloc)       \
              X(cuMemFree) X(cuMemGetInfo) X(cuMemcpyHtoD) X(cuMemcpyDtoH) X(cuMemcpyDtoD) X(cuMemsetD8)             \
                  X(cuStreamCreate) X(cuStreamDestroy) X(cuStreamSynchronize) X(cuEventCreate) X(cuEventDestroy)     \
                      X(cuEventRecord) X(cuEventSynchronize) X(cuEventElapsedTime) X(cuGetErrorString)               \
                          X(cuGetErrorName) X(cuTensorMapEncodeTiled) X(cuOccupancyMaxActiveBlocksPerMultiprocessor) \
                              MOEJIT_CUDA_GRAPH_FUNCTIONS(X)

// Stream-ordered copies and fills, pinned staging memory and stream capture into graphs: what one
// captured training step (runtime/cuda_step_graph.hpp) needs.
#define MOEJIT_CUDA_GRAPH_FUNCTIONS(X)                                                                                 \
  X(cuMemsetD8Async)                                                                                                   \
  X(cuMemcpyDtoDAsync)                                                                                                 \
  X(cuMemcpyHtoDAsync)                                                                                                 \
  X(cuMemAllocHost)                                                                                                    \
  X(cuMemFreeHost) X(cuStreamBeginCapture) X(cuStreamEndCapture) X(cuStreamIsCapturing) X(cuGraphInstantiateWithFlags) \
      X(cuGraphLaunch) X(cuGraphDestroy) X(cuGraphExecDestroy)

struct CudaDriver {
#define MOEJIT_DECLARE_FN(name) decltype(&::name) name = nullptr;
  MOEJIT_CUDA_DRIVER_FUNCTIONS(MOEJIT_DECLARE_FN)
#undef MOEJIT_DECLARE_FN

  // The process-wide driver, loaded and initialised on first use. Throws UnavailableError with
  // "no CUDA driver: GPU backend unavailable; host backend available" (and the reason) without one.
  static const CudaDriver& get();
  // True if get() would succeed; otherwise `why` says why not.
  static bool available(std::string* why = nullptr);
};

// Throws Error "<what>: CUDA_ERROR_NAME (description)" unless result is CUDA_SUCCESS
// (OutOfMemoryError for CUDA_ERROR_OUT_OF_MEMORY).
void check_cuda(CUresult result, const char* what);

}  // namespace moejit
