// OpenBLAS as a baseline must run its best kernels on this CPU. Debian 12's OpenBLAS 0.3.21 predates
// Zen 5 and picks its AVX2 (Haswell) kernels there, though the CPU runs its AVX-512 (SkylakeX) ones
// 1.8x faster (sgemm 2048^3 on 2 threads: 212 vs 383 GFLOP/s, bench/results/2026-12-07-host-zen5).
// OPENBLAS_CORETYPE is read when the library loads, so a bench that finds OpenBLAS on an AVX2 core of
// a CPU with AVX-512 runs itself again with OPENBLAS_CORETYPE=SkylakeX. A caller's OPENBLAS_CORETYPE
// is kept, so either core can still be measured on purpose.
#pragma once
#include <cblas.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

namespace moejit::bench {

inline void use_best_openblas_core(char** argv) {
  if (std::getenv("OPENBLAS_CORETYPE") || !__builtin_cpu_supports("avx512f")) return;
  const std::string core = openblas_get_corename();
  if (core != "Haswell" && core != "Zen") return;
  setenv("OPENBLAS_CORETYPE", "SkylakeX", 1);
  execv("/proc/self/exe", argv);  // only returns on failure: go on with the core OpenBLAS chose
}

}  // namespace moejit::bench
