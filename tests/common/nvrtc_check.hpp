// The GPU sources' CPU-side check, shared by every test that renders kernels: NVRTC and ptxas
// compile each source for an arch (through a binary cache, in parallel), and every entry must be in
// its binary, spill no registers and, where a limit is given, use at most that many registers.
#pragma once
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "binary_cache.hpp"
#include "compile_pool.hpp"
#include "nvrtc_compiler.hpp"

namespace moejit::test {

// max_registers 0: no register limit.
inline void expect_compiles_without_spills(const std::string& arch, const std::vector<Source>& sources,
                                           BinaryCache& cache, int max_registers = 0) {
  NvrtcCompiler compiler(arch);
  ThreadPool pool;
  auto futures = compile_all(pool, cache, compiler, sources);
  for (size_t i = 0; i < futures.size(); ++i) {
    std::shared_ptr<const Binary> binary;
    ASSERT_NO_THROW(binary = futures[i].get()) << arch << " " << sources[i].file_name;
    for (const auto& entry : sources[i].entries) {
      const ResourceUsage* r = binary->resources_of(entry);
      ASSERT_NE(r, nullptr) << arch << " " << entry;
      EXPECT_FALSE(r->has_spills()) << arch << " " << entry << ": " << r->spill_store_bytes << " B spilled";
      if (max_registers > 0) {
        EXPECT_LE(r->registers, max_registers) << arch << " " << entry;
      }
    }
  }
}

}  // namespace moejit::test
