#include "open_backend.hpp"

#include "cuda_backend.hpp"
#include "cuda_driver.hpp"
#include "moejit/error.hpp"
#ifdef MOEJIT_WITH_LLVM
#include "host_backend.hpp"
#endif

namespace moejit {

std::string default_backend_name() {
  return CudaDriver::available() ? "cuda" : "host";
}

std::unique_ptr<Backend> open_backend(const std::string& requested, unsigned threads) {
  const std::string name = requested.empty() ? default_backend_name() : requested;
  if (name == "cuda") return std::make_unique<CudaBackend>();
  if (name == "host") {
#ifdef MOEJIT_WITH_LLVM
    return std::make_unique<HostBackend>(nullptr, threads);
#else
    (void)threads;
    throw UnavailableError("the host backend is not part of this build (configure with -DMOEJIT_WITH_LLVM=ON)");
#endif
  }
  throw Error("unknown backend '" + name + "': use host or cuda");
}

}  // namespace moejit
