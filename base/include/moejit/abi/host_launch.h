// The calling convention between the host backend and JIT-compiled host kernels. Every host entry
// point is
//     extern "C" void <entry>(void** args, const moejit::HostLaunch* launch);
// args follows the CUDA convention (an array of pointers to each argument). Kernels never start
// threads: they hand independent work items to launch->parallel_for, which the backend runs on its
// own sleeping worker pool (no busy spinning), so threading stays in one place, outside JIT'd code.
// Plain C types only: both the backend (GCC) and the kernels (Clang) include this file.
#pragma once

namespace moejit {

struct HostLaunch {
  int threads;  // workers this launch may use, >= 1 (LaunchDims::grid[0] on the host)
  // Calls body(ctx, worker, i) once for every i in [0, n) and returns when all calls are done.
  // worker is in [0, threads) and no two concurrent calls share one, so kernels can index
  // per-worker scratch with it. Items are handed out one at a time (expert loads are uneven).
  void (*parallel_for)(const HostLaunch* self, long long n, void (*body)(void* ctx, int worker, long long index),
                       void* ctx);
  void* pool;  // the backend's state; opaque to kernels
};

using HostEntry = void (*)(void** args, const HostLaunch* launch);

}  // namespace moejit
