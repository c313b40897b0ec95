// Host loop wrapper for SwiGLU (swiglu.h holds the per-element math the GPU kernel runs too).
// Work items are chunks of rows handed to the backend's parallel-for.
#pragma once
#include "moejit/abi/host_launch.h"
#include "swiglu/swiglu.h"

namespace moejit {

// fwd args: (gate_up (rows, 2F), out (rows, F), unsigned rows, unsigned F); bwd: (gate_up,
// dh (rows, F), d_gate_up (rows, 2F), unsigned rows, unsigned F), as the GPU kernel takes them
// (launch_swiglu_fwd/bwd). F % VEC == 0 (the spec prunes the rest).
template <typename T, int VEC, bool BACKWARD>
struct SwigluHost {
  static constexpr int64 kRowsPerItem = 16;
  const T *gate_up, *dh;
  T* out;
  int64 rows, width;

  static void item(void* ctx, int, long long index) {
    const SwigluHost& s = *static_cast<const SwigluHost*>(ctx);
    const int64 end = (index + 1) * kRowsPerItem < s.rows ? (index + 1) * kRowsPerItem : s.rows;
    for (int64 row = index * kRowsPerItem; row < end; ++row)
      for (int64 column = 0; column < s.width; column += VEC) {
        if constexpr (BACKWARD)
          swiglu_backward_vec<T, VEC>(s.gate_up, s.dh, s.out, row, column, s.width);
        else
          swiglu_forward_vec<T, VEC>(s.gate_up, s.out, row, column, s.width);
      }
  }

  static void run(void** args, const HostLaunch* launch) {
    SwigluHost s{};
    s.gate_up = *static_cast<const T* const*>(args[0]);
    int next = 1;
    if constexpr (BACKWARD) s.dh = *static_cast<const T* const*>(args[next++]);
    s.out = *static_cast<T* const*>(args[next++]);
    s.rows = *static_cast<const unsigned*>(args[next++]);
    s.width = *static_cast<const unsigned*>(args[next]);
    const long long items = (s.rows + kRowsPerItem - 1) / kRowsPerItem;
    if (items > 0) launch->parallel_for(launch, items, &SwigluHost::item, &s);
  }
};

}  // namespace moejit
