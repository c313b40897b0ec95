#include "kernel_dirs.hpp"

#include <cstdlib>

#include "install_dirs.hpp"

namespace fs = std::filesystem;

namespace moejit {

fs::path template_dir() {
  if (const char* dir = std::getenv("MOEJIT_TEMPLATE_DIR"); dir && *dir) return dir;
  if (install_dirs().installed()) return install_dirs().data / "templates";
  return MOEJIT_SOURCE_TEMPLATE_DIR;
}

fs::path abi_include_dir() {
  // Installed, the ABI headers are public headers like the rest of base's (<prefix>/include).
  if (install_dirs().installed()) return install_dirs().include;
  return MOEJIT_SOURCE_ABI_INCLUDE_DIR;
}

std::vector<std::string> kernel_include_dirs() {
  return {template_dir().string(), abi_include_dir().string()};
}

}  // namespace moejit
