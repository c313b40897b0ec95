// A TMA tensor map as a kernel parameter: the 128 opaque bytes of a CUDA CUtensorMap, 64-byte
// aligned. The host fills one with the driver (moejit/tma.hpp, jit) and passes it by value; the
// kernel takes it as a __grid_constant__ parameter (grouped_gemm_sm90.cuh). Plain C types only:
// GCC (the launcher) and NVRTC (the kernel) both include this file.
#pragma once

namespace moejit {

struct alignas(64) TmaDescriptor {
  unsigned long long words[16];
};

}  // namespace moejit
