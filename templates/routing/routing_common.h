// Small helpers every routing header shares.
#pragma once
#include "common/host_device.h"

// `#pragma unroll` for NVRTC and Clang; GCC (tests compile the host loops directly) has no such pragma.
#ifndef MOEJIT_UNROLL
#if MOEJIT_DEVICE_CODE || defined(__clang__)
#define MOEJIT_UNROLL _Pragma("unroll")
#else
#define MOEJIT_UNROLL
#endif
#endif

namespace moejit {

// Rounding-exact fp32 arithmetic: never contracted into an FMA, so host and GPU agree bit for bit.
MOEJIT_HD float mul_rn(float a, float b) {
#if MOEJIT_DEVICE_CODE
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}
MOEJIT_HD float add_rn(float a, float b) {
#if MOEJIT_DEVICE_CODE
  return __fadd_rn(a, b);
#else
  return a + b;
#endif
}

}  // namespace moejit
