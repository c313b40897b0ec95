// The cross-thread part of per-token routing code: a team of kCount lanes that together own one
// token's experts. SingleLane (host, or one GPU thread per token) reduces nothing; WarpLanes<N>
// (GPU) reduces over N consecutive lanes of a warp with xor shuffles, so every lane ends with the
// same result. Reductions on (key, index) use the total order key_beats(), so the result does not
// depend on the reduction tree: a token routes identically for any N.
#pragma once
#include "routing/routing_common.h"

namespace moejit {

struct SingleLane {
  static constexpr int kCount = 1;
  MOEJIT_HD int lane() const { return 0; }
  MOEJIT_HD float sum(float v) const { return v; }
  MOEJIT_HD float max(float v) const { return v; }
  MOEJIT_HD void argmax(float&, int&, float&) const {}
  MOEJIT_HD void top2(float&, int&, float&, int&) const {}
};

#if MOEJIT_DEVICE_CODE
template <int N>
struct WarpLanes {
  static_assert(N >= 1 && N <= 32 && (N & (N - 1)) == 0, "lanes per token: a power of two up to 32");
  static constexpr int kCount = N;
  int lane_;
  __device__ explicit WarpLanes(int lane) : lane_(lane) {}
  __device__ int lane() const { return lane_; }
  __device__ float sum(float v) const {
    MOEJIT_UNROLL
    for (int o = N / 2; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o, N);
    return v;
  }
  __device__ float max(float v) const {
    MOEJIT_UNROLL
    for (int o = N / 2; o > 0; o /= 2) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o, N));
    return v;
  }
  // (key, index) winner by key_beats; `payload` travels with the winner.
  __device__ void argmax(float& key, int& index, float& payload) const {
    MOEJIT_UNROLL
    for (int o = N / 2; o > 0; o /= 2) {
      const float k2 = __shfl_xor_sync(0xffffffffu, key, o, N), p2 = __shfl_xor_sync(0xffffffffu, payload, o, N);
      const int i2 = __shfl_xor_sync(0xffffffffu, index, o, N);
      if (key_beats(k2, i2, key, index)) key = k2, index = i2, payload = p2;
    }
  }
  // Merges each lane's best two (k1, i1) >= (k2, i2) into the team's best two.
  __device__ void top2(float& k1, int& i1, float& k2, int& i2) const {
    MOEJIT_UNROLL
    for (int o = N / 2; o > 0; o /= 2) {
      const float a1 = __shfl_xor_sync(0xffffffffu, k1, o, N), a2 = __shfl_xor_sync(0xffffffffu, k2, o, N);
      const int j1 = __shfl_xor_sync(0xffffffffu, i1, o, N), j2 = __shfl_xor_sync(0xffffffffu, i2, o, N);
      if (key_beats(a1, j1, k1, i1)) {
        // Theirs is best; second is the better of our best and their second.
        if (key_beats(a2, j2, k1, i1))
          k2 = a2, i2 = j2;
        else
          k2 = k1, i2 = i1;
        k1 = a1, i1 = j1;
      } else if (key_beats(a1, j1, k2, i2)) {
        k2 = a1, i2 = j1;
      }
    }
  }
};
#endif

}  // namespace moejit
