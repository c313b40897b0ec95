// Compiler: turns a Source into a Binary for one target. Implementations: NVRTC (jit/nvrtc_compiler)
// and Clang/ORC (jit/host_compiler). They are stateless apart from counters, and thread-safe.
#pragma once
#include <atomic>
#include <string>
#include <vector>

#include "moejit/binary.hpp"
#include "moejit/source.hpp"

namespace moejit {

class Compiler {
 public:
  virtual ~Compiler() = default;
  // Compiler name and exact version, part of every cache key ("nvrtc-13.0").
  virtual std::string id() const = 0;
  // Target the binaries are for ("sm_90a", host CPU name + features).
  virtual std::string arch() const = 0;
  virtual std::string binary_kind() const = 0;  // "cubin" or "o"
  // Every option the compile will use, in order; part of the cache key.
  virtual std::vector<std::string> effective_options(const Source& source) const = 0;
  // Directories searched for #include "..." in sources; included files are hashed into the key.
  virtual std::vector<std::string> include_dirs() const = 0;
  // Compiles; throws CompileError with the log (file:line context) on failure.
  Binary compile(const Source& source) const {
    invocations_.fetch_add(1, std::memory_order_relaxed);
    return do_compile(source);
  }
  // How many times compile() ran: tests use it to prove cache hits skip the compiler.
  long invocations() const { return invocations_.load(); }

 protected:
  virtual Binary do_compile(const Source& source) const = 0;

 private:
  mutable std::atomic<long> invocations_{0};
};

}  // namespace moejit
