// Binary: a compiled kernel image plus what the compiler said about it.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "moejit/problem.hpp"

namespace moejit {

// Per-entry resources from the ptxas report (CUDA) or zeros (host).
struct ResourceUsage {
  std::string function;  // mangled (lowered) name as ptxas prints it
  int registers = 0;
  int64_t shared_bytes = 0;  // static shared memory
  int64_t stack_bytes = 0;   // stack frame
  int64_t spill_store_bytes = 0;
  int64_t spill_load_bytes = 0;
  int64_t constant_bytes = 0;
  bool has_spills() const { return spill_store_bytes > 0 || spill_load_bytes > 0; }
};

struct Binary {
  // The URI fields of the Source it was compiled from (source.hpp).
  std::string family, dtype, shape, config;
  std::string arch;                                  // "sm_90a", or the host CPU target ("x86_64-skylake-avx512")
  std::string kind;                                  // file suffix: "cubin" or "o"
  std::string compiler;                              // compiler id and version, e.g. "nvrtc-13.0"
  std::string key;                                   // content hash of everything that determines the image (hex)
  std::vector<char> image;                           // cubin or relocatable object
  std::string ptx;                                   // CUDA only; may be empty
  std::map<std::string, std::string> lowered_names;  // entry name expression -> symbol
  std::vector<ResourceUsage> resources;
  std::string log;  // compiler log of a successful compile (warnings, ptxas info)
  double compile_seconds = 0;

  // "family/arch/dtype/shape/config": the kernel's stable readable name.
  std::string uri() const { return kernel_uri(family, arch, dtype, shape, config); }
  // The symbol for an entry: its lowered name if the compiler lowered it, else the entry itself.
  const std::string& symbol(const std::string& entry) const {
    auto it = lowered_names.find(entry);
    return it == lowered_names.end() ? entry : it->second;
  }
  const ResourceUsage* resources_of(const std::string& entry) const;
};

}  // namespace moejit
