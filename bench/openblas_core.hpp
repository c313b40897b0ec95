// OpenBLAS as a baseline must run its best kernels on this CPU. On this project's Zen 5 machines the
// environment sets OPENBLAS_CORETYPE=Haswell, OpenBLAS's AVX2 kernels, though the CPU runs its
// AVX-512 ones 1.8x faster (sgemm 2048^3 on 2 threads: Haswell 212, SkylakeX 383, Cooperlake (its
// own pick without the variable) 340 GFLOP/s; bench/results/2026-12-07-host-zen5). On Emerald Rapids
// (Intel family 6 model 207), which Debian's OpenBLAS 0.3.21 does not know, it falls back to its
// Prescott (SSE3) kernels: 65 GFLOP/s against SkylakeX's 310 (bench/results/2026-12-07-host-emr).
// OPENBLAS_CORETYPE is read when the library loads, so a bench that finds OpenBLAS on any core
// without AVX-512 kernels on a CPU with AVX-512 runs itself again with OPENBLAS_CORETYPE=SkylakeX,
// and says so.
// MOEJIT_BENCH_OPENBLAS_AS_IS=1 keeps the core the environment chose (to measure it on purpose).
#pragma once
#include <cblas.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

namespace moejit::bench {

inline void use_best_openblas_core(char** argv) {
  if (std::getenv("MOEJIT_BENCH_OPENBLAS_AS_IS") || !__builtin_cpu_supports("avx512f")) return;
  const std::string core = openblas_get_corename();
  if (core == "SkylakeX" || core == "Cooperlake" || core == "SapphireRapids") return;
  std::fprintf(stderr, "OpenBLAS runs its %s kernels (no AVX-512) on a CPU with AVX-512: running again on SkylakeX\n",
               core.c_str());
  setenv("OPENBLAS_CORETYPE", "SkylakeX", 1);
  execv("/proc/self/exe", argv);  // only returns on failure: go on with the core OpenBLAS chose
}

}  // namespace moejit::bench
