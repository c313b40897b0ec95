// Host compiler: C++ source -> relocatable x86-64 object in memory, with Clang 16 as a library
// (CompilerInstance + EmitLLVMOnlyAction, -O3) and an LLVM TargetMachine for the host CPU. No
// external process. The object bytes are Binary.image, so the BinaryCache stores, verifies and
// locks host kernels exactly as it does cubins; a warm start never runs Clang.
#pragma once
#include <string>
#include <string_view>
#include <vector>

#include "moejit/compiler.hpp"

namespace moejit {

// The CPU a host binary is compiled for. The feature list is part of arch(), so a machine with a
// different feature set (a VM hiding AVX-512, say) gets different cache keys.
struct HostTarget {
  std::string triple;                 // "x86_64-pc-linux-gnu"
  std::string cpu;                    // "znver4", "skylake-avx512"
  std::vector<std::string> features;  // sorted "+avx2" / "-avx512f" entries

  static HostTarget native();  // llvm::sys::getHostCPUName / getHostCPUFeatures
  // "<cpu>-<8 hex digits of the feature hash>", e.g. "znver4-1a2b3c4d".
  std::string arch() const;
  bool has(std::string_view feature) const;  // "avx512f" -> true if "+avx512f" is listed
  std::string enabled_features() const;      // "avx,avx2,avx512f,...": DeviceDescription::features
};

class HostCompiler final : public Compiler {
 public:
  explicit HostCompiler(HostTarget target = HostTarget::native());

  std::string id() const override { return id_; }
  std::string arch() const override { return target_.arch(); }
  std::string binary_kind() const override { return "o"; }
  std::vector<std::string> effective_options(const Source& source) const override;
  std::vector<std::string> include_dirs() const override { return include_dirs_; }
  const HostTarget& target() const { return target_; }

  static std::string version();  // "16.0.6"

 protected:
  Binary do_compile(const Source& source) const override;

 private:
  HostTarget target_;
  std::string id_;
  std::vector<std::string> include_dirs_;
};

}  // namespace moejit
