// Shared by every template that is compiled for both backends: NVRTC (GPU) and Clang (host).
// Per-row/per-element logic is written once as MOEJIT_HD functions and wrapped twice.
#pragma once

#if defined(__CUDACC__) || defined(__CUDACC_RTC__)
#define MOEJIT_HD __host__ __device__ __forceinline__
#define MOEJIT_DEVICE_CODE 1
#else
#define MOEJIT_HD inline
#define MOEJIT_DEVICE_CODE 0
#endif

// Loop unrolling in code shared by NVRTC, Clang (host JIT) and g++ (tests).
#if MOEJIT_DEVICE_CODE || defined(__clang__)
#define MOEJIT_UNROLL _Pragma("unroll")
#else
#define MOEJIT_UNROLL _Pragma("GCC unroll 16")
#endif

// A loop whose floating-point reductions the host JIT (Clang) may reorder and vectorize, as it would
// not without -ffast-math; nothing elsewhere (NVRTC: a thread per lane; g++: the runtime's and the
// tests' builds, which keep source order).
#if !MOEJIT_DEVICE_CODE && defined(__clang__)
#define MOEJIT_VECTORIZE _Pragma("clang loop vectorize(enable) interleave(enable)")
#else
#define MOEJIT_VECTORIZE
#endif

#if !defined(__CUDACC_RTC__)
#include <cmath>
#include <cstdint>
#include <cstring>
#endif

namespace moejit {

#if defined(__CUDACC_RTC__)
using int64 = long long;
using uint16 = unsigned short;
using uint32 = unsigned int;
#else
using int64 = long long;
using uint16 = unsigned short;
using uint32 = unsigned int;
#endif

MOEJIT_HD float bits_to_float(uint32 bits) {
#if MOEJIT_DEVICE_CODE
  return __uint_as_float(bits);
#else
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
#endif
}

MOEJIT_HD uint32 float_to_bits(float f) {
#if MOEJIT_DEVICE_CODE
  return __float_as_uint(f);
#else
  uint32 bits;
  std::memcpy(&bits, &f, sizeof bits);
  return bits;
#endif
}

// exp: the device's expf; on the host a branch-free polynomial (Cephes' expf: range reduction by
// ln 2, degree-6 polynomial, a few ulp) that the loop vectorizer widens, where std::exp is a libm
// call per element; so every per-element loop that takes an exp (softmax, SiLU, sigmoid gates,
// cross-entropy) runs at vector width. x < -87 gives 0 and x > 88 gives +inf (exp(88.72) is past
// FLT_MAX; nothing here needs the sliver between).
MOEJIT_HD float exp_f32(float x) {
#if MOEJIT_DEVICE_CODE
  return expf(x);
#else
  const float xc = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
  const float n = __builtin_rintf(xc * 1.44269504088896341f);  // x = n ln2 + r, |r| <= ln2 / 2
  const float r = xc - n * 0.693359375f + n * 2.12194440e-4f;  // ln 2 in two parts: r stays exact
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float e = (p * r * r + r + 1.0f) * bits_to_float(uint32(int(n) + 127) << 23);  // e^r 2^n
  return x < -87.0f ? 0.0f : (x > 88.0f ? bits_to_float(0x7f800000u) : e);
#endif
}

MOEJIT_HD float neg_inf_f32() {
  return bits_to_float(0xff800000u);
}

// A float's bits as an int that orders as the float does (NaN aside): the max of a row is then an
// integer max, which vectorizes on the host, where a float max reduction needs -ffast-math.
MOEJIT_HD int ordered_key(float f) {
  const int b = int(float_to_bits(f));
  return b ^ ((b >> 31) & 0x7fffffff);
}
MOEJIT_HD float from_ordered_key(int key) {
  return bits_to_float(uint32(key ^ ((key >> 31) & 0x7fffffff)));
}

MOEJIT_HD float log_f32(float x) {
#if MOEJIT_DEVICE_CODE
  return logf(x);
#else
  return std::log(x);
#endif
}

MOEJIT_HD float sqrt_f32(float x) {
#if MOEJIT_DEVICE_CODE
  return sqrtf(x);
#else
  return std::sqrt(x);
#endif
}

// bfloat16 storage: the top 16 bits of an IEEE float. Conversions round to nearest even, NaN stays
// NaN; written with integer ops so host and device produce identical bits.
struct bf16 {
  uint16 bits;
};

MOEJIT_HD float to_float(float x) {
  return x;
}
MOEJIT_HD float to_float(bf16 x) {
  return bits_to_float(static_cast<uint32>(x.bits) << 16);
}

template <typename T>
MOEJIT_HD T from_float(float x);

template <>
MOEJIT_HD float from_float<float>(float x) {
  return x;
}

template <>
MOEJIT_HD bf16 from_float<bf16>(float x) {
  uint32 u = float_to_bits(x);
  if ((u & 0x7f800000u) == 0x7f800000u && (u & 0x007fffffu)) return bf16{static_cast<uint16>((u >> 16) | 0x40)};
  u += 0x7fffu + ((u >> 16) & 1u);
  return bf16{static_cast<uint16>(u >> 16)};
}

// VEC elements moved as one aligned access (16 bytes for 8 x bf16 or 4 x float).
template <typename T, int VEC>
struct alignas(sizeof(T) * VEC) Vec {
  T v[VEC];
};

template <typename T, int VEC>
MOEJIT_HD Vec<T, VEC> load_vec(const T* p) {
  return *reinterpret_cast<const Vec<T, VEC>*>(p);
}

template <typename T, int VEC>
MOEJIT_HD void store_vec(T* p, const Vec<T, VEC>& v) {
  *reinterpret_cast<Vec<T, VEC>*>(p) = v;
}

}  // namespace moejit
