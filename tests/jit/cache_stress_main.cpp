// Helper process for the concurrency test: THREADS threads each request the same KERNELS SwiGLU
// kernels from one cache directory in shuffled order; prints how many this process compiled.
#include <algorithm>
#include <iostream>
#include <random>
#include <thread>

#include "arch_limits.hpp"
#include "binary_cache.hpp"
#include "moejit/kernel_spec.hpp"
#include "nvrtc_compiler.hpp"

int main(int argc, char** argv) {
  if (argc != 4) {
    std::cerr << "usage: cache_stress DIR THREADS KERNELS\n";
    return 2;
  }
  moejit::BinaryCache cache(argv[1]);
  const int threads = std::atoi(argv[2]), kernels = std::atoi(argv[3]);
  moejit::NvrtcCompiler compiler("sm_80");
  auto device = moejit::arch_limits("sm_80");
  const auto& spec = moejit::spec_for(moejit::Family::swiglu_fwd, "cuda");
  moejit::Problem problem(moejit::Family::swiglu_fwd, moejit::DType::bf16, moejit::RowsShape{2, 1024}, 100);
  auto space = spec.space(problem, device);
  std::vector<moejit::Source> sources;
  for (int i = 0; i < kernels; ++i) sources.push_back(spec.render(problem, space.at(i), device));
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      std::vector<int> order(kernels);
      for (int i = 0; i < kernels; ++i) order[i] = i;
      std::shuffle(order.begin(), order.end(), std::mt19937(t));
      for (int i : order) cache.get_or_compile(compiler, sources[i]);
    });
  }
  for (auto& th : pool) th.join();
  std::cout << compiler.invocations() << std::endl;
  return 0;
}
