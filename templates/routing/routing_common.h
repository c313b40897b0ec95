// Small helpers every routing header shares.
#pragma once
#include "common/host_device.h"

// `#pragma unroll` for NVRTC and Clang; GCC (tests compile the host loops directly) spells it
// `#pragma GCC unroll n`.
#ifndef MOEJIT_UNROLL
#if MOEJIT_DEVICE_CODE || defined(__clang__)
#define MOEJIT_UNROLL _Pragma("unroll")
#else
#define MOEJIT_UNROLL _Pragma("GCC unroll 16")
#endif
#endif

namespace moejit {

// Rounding-exact fp32 arithmetic: never contracted into an FMA, so host and GPU agree bit for bit.
// The host JIT compiles with -ffp-contract=fast; the pragma keeps these two operations separate
// there (an operation without the contract flag is never fused, even after inlining).
MOEJIT_HD float mul_rn(float a, float b) {
#if MOEJIT_DEVICE_CODE
  return __fmul_rn(a, b);
#else
#if defined(__clang__)
#pragma clang fp contract(off)
#endif
  return a * b;
#endif
}
MOEJIT_HD float add_rn(float a, float b) {
#if MOEJIT_DEVICE_CODE
  return __fadd_rn(a, b);
#else
#if defined(__clang__)
#pragma clang fp contract(off)
#endif
  return a + b;
#endif
}

// (key, index) total order of the routing tie rule (routing_gate.h): true if a beats b. Here, not
// in the gate, because the team reductions (routing_lanes.h) use it, and every kernel with a row
// team (attention's softmax, RMSNorm, cross-entropy, and so every host GEMM) includes those: a
// change to the gate must not make all of their tuning decisions stale.
MOEJIT_HD bool key_beats(float a_key, int a_index, float b_key, int b_index) {
  return a_key > b_key || (a_key == b_key && a_index < b_index);
}

}  // namespace moejit
