// Compiles many sources at once (`moejit compile`, tests, benchmarks). NVRTC programs and Clang
// instances are independent, so they run as tasks on base's ThreadPool, one per worker.
#pragma once
#include <future>
#include <memory>
#include <vector>

#include "moejit/binary.hpp"
#include "moejit/compiler.hpp"
#include "moejit/source.hpp"
#include "thread_pool.hpp"

namespace moejit {

class BinaryCache;

// Compiles every source through the cache on a pool; futures come back in the sources' order and
// rethrow each source's CompileError on get(), so one bad candidate does not stop the others.
std::vector<std::future<std::shared_ptr<const Binary>>> compile_all(ThreadPool& pool, BinaryCache& cache,
                                                                    const Compiler& compiler,
                                                                    const std::vector<Source>& sources);

}  // namespace moejit
