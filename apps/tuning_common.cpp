#include "tuning_common.hpp"

#include <algorithm>

#include "cuda_backend.hpp"
#include "cuda_driver.hpp"
#include "moejit/error.hpp"
#ifdef MOEJIT_WITH_LLVM
#include "host_backend.hpp"
#endif

namespace moejit::cli {

std::string default_backend_name() {
  return CudaDriver::available() ? "cuda" : "host";
}

std::unique_ptr<Backend> open_backend(const std::string& requested) {
  const std::string name = requested.empty() ? default_backend_name() : requested;
  if (name == "cuda") return std::make_unique<CudaBackend>();
  if (name == "host") {
#ifdef MOEJIT_WITH_LLVM
    return std::make_unique<HostBackend>();
#else
    throw UnavailableError("the host backend is not part of this build (configure with -DMOEJIT_WITH_LLVM=ON)");
#endif
  }
  throw Error("unknown backend '" + name + "': use host or cuda");
}

bool selected(const std::vector<std::string>& families, const std::string& family) {
  return families.empty() || std::find(families.begin(), families.end(), family) != families.end();
}

void check_some_selected(const std::set<std::string>& selected_families, const std::set<std::string>& families,
                         const std::string& backend) {
  if (!selected_families.empty()) return;
  std::string known;
  for (const auto& name : families) known += (known.empty() ? "" : ", ") + name;
  throw Error("--families selects none of the kernel families this command covers on the " + backend +
              " backend (they are: " + known + ")");
}

}  // namespace moejit::cli
