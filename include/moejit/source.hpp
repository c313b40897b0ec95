// Source: one rendered kernel translation unit, ready for a backend's compiler.
#pragma once
#include <string>
#include <string_view>
#include <vector>

#include "moejit/problem.hpp"

namespace moejit {

struct Source {
  // The binary's identity, the fields of its URI (kernel_uri): what is compiled into it. A field
  // the binary does not depend on is "any" (a SwiGLU binary runs any width, a host GEMM binary any
  // shape); config holds only the compiled parameters (launch-time ones share the binary).
  std::string family;     // to_string(Family), e.g. "swiglu_fwd"
  std::string dtype;      // "bf16", "f32" or "any"
  std::string shape;      // to_string(Shape) of the compiled dims, e.g. "e64_topk8", or "any"
  std::string config;     // canonical Config text of the compiled parameters, e.g. "vec8_threads256"
  std::string file_name;  // name the compiler reports in diagnostics, e.g. "swiglu_fwd.vec8.cu"
  std::string code;       // the whole translation unit; templates are pulled in by #include "..."
  // Entry points. CUDA: name expressions of __global__ template instances
  // ("moejit::swiglu_fwd_kernel<float, 4>"), resolved to lowered names by NVRTC.
  // Host: extern "C" symbol names.
  std::vector<std::string> entries;
  std::vector<std::string> options;  // extra compiler options (macros, -maxrregcount, ...)

  std::string uri(std::string_view arch) const { return kernel_uri(family, arch, dtype, shape, config); }
  // The URI fields (no arch: one render may compile for several), for file names and banners.
  std::string stem() const { return family + "." + dtype + "." + shape + "." + config; }
  std::string banner() const { return "// " + stem() + ", rendered by moejit\n"; }
};

}  // namespace moejit
