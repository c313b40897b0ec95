// TMA tensor maps for kernels that load through the Tensor Memory Accelerator (the Hopper grouped
// GEMM): encoded by the CUDA driver, so that kernel launchers need no driver API of their own.
#pragma once
#include <cstdint>

#include "moejit/abi/tma_descriptor.h"

namespace moejit {

// A bf16 tensor map of `rank` dims over `base`, with 128-byte swizzle and 256-byte L2 promotion,
// out-of-bounds reads filled with zeros. dims and box are innermost first; strides are in bytes
// for dims 1..rank-1. Throws UnavailableError without a CUDA driver, Error if the driver refuses.
TmaDescriptor encode_tma_bf16(const void* base, int rank, const uint64_t* dims, const uint64_t* strides,
                              const uint32_t* box);

}  // namespace moejit
