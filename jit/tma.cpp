#include "moejit/tma.hpp"

#include <cstring>
#include <string>

#include "cuda_driver.hpp"
#include "moejit/error.hpp"

namespace moejit {

// The bytes are copied out of a CUtensorMap; the kernel reads them as a 64-byte aligned parameter.
static_assert(sizeof(TmaDescriptor) == sizeof(CUtensorMap) && alignof(TmaDescriptor) >= 64,
              "TmaDescriptor must hold a CUtensorMap's 128 bytes, 64-byte aligned");

TmaDescriptor encode_tma_bf16(const void* base, int rank, const uint64_t* dims, const uint64_t* strides,
                              const uint32_t* box) {
  if (rank < 1 || rank > 3) throw Error("encode_tma_bf16: rank " + std::to_string(rank) + " is not 1, 2 or 3");
  CUtensorMap map;
  std::memset(&map, 0, sizeof map);
  const uint32_t element_strides[3] = {1, 1, 1};
  check_cuda(CudaDriver::get().cuTensorMapEncodeTiled(
                 &map, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, static_cast<cuuint32_t>(rank), const_cast<void*>(base), dims,
                 strides, box, element_strides, CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
                 CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE),
             "cuTensorMapEncodeTiled (bf16 tensor map)");
  TmaDescriptor descriptor;
  std::memcpy(&descriptor, &map, sizeof descriptor);
  return descriptor;
}

}  // namespace moejit
