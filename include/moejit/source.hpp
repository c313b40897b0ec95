// Source: one rendered kernel translation unit, ready for a backend's compiler.
#pragma once
#include <string>
#include <vector>

namespace moejit {

struct Source {
  std::string family;     // kernel family, e.g. "swiglu_fwd"
  std::string config;     // canonical Config text, e.g. "vec8"
  std::string file_name;  // name the compiler reports in diagnostics, e.g. "swiglu_fwd.vec8.cu"
  std::string code;       // the whole translation unit; templates are pulled in by #include "..."
  // Entry points. CUDA: name expressions of __global__ template instances
  // ("moejit::swiglu_fwd_kernel<float, 4>"), resolved to lowered names by NVRTC.
  // Host: extern "C" symbol names.
  std::vector<std::string> entries;
  std::vector<std::string> options;  // extra compiler options (macros, -maxrregcount, ...)
};

}  // namespace moejit
