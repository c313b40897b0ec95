#include "compile_pool.hpp"

#include "binary_cache.hpp"

namespace moejit {

std::vector<std::future<std::shared_ptr<const Binary>>> compile_all(ThreadPool& pool, BinaryCache& cache,
                                                                    const Compiler& compiler,
                                                                    const std::vector<Source>& sources) {
  std::vector<std::future<std::shared_ptr<const Binary>>> futures;
  futures.reserve(sources.size());
  for (const Source& source : sources)
    futures.push_back(pool.submit([&cache, &compiler, source] { return cache.get_or_compile(compiler, source); }));
  return futures;
}

}  // namespace moejit
