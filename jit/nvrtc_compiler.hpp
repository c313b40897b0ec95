// NVRTC: CUDA C++ source -> cubin (and PTX) for one real architecture, with the ptxas report.
#pragma once
#include <string>
#include <vector>

#include "moejit/compiler.hpp"

namespace moejit {

class NvrtcCompiler final : public Compiler {
 public:
  // arch: "sm_80", "sm_86", "sm_89", "sm_90a", "sm_100a", ... (must be one NVRTC supports).
  explicit NvrtcCompiler(std::string arch);

  std::string id() const override { return id_; }
  std::string arch() const override { return arch_; }
  std::string binary_kind() const override { return "cubin"; }
  std::vector<std::string> effective_options(const Source& source) const override;
  std::vector<std::string> include_dirs() const override { return include_dirs_; }

  static std::string version();                       // "13.0"
  static std::vector<std::string> supported_archs();  // "sm_75", ..., "sm_90a", "sm_100a", ...

 protected:
  Binary do_compile(const Source& source) const override;

 private:
  std::string arch_;
  std::string id_;
  std::vector<std::string> include_dirs_;
};

}  // namespace moejit
