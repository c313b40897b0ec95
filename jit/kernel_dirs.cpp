#include "kernel_dirs.hpp"

#include <cstdlib>

namespace fs = std::filesystem;

namespace moejit {

fs::path template_dir() {
  if (const char* dir = std::getenv("MOEJIT_TEMPLATE_DIR"); dir && *dir) return dir;
#ifdef MOEJIT_INSTALL_TEMPLATE_DIR
  if (fs::exists(MOEJIT_INSTALL_TEMPLATE_DIR)) return MOEJIT_INSTALL_TEMPLATE_DIR;
#endif
  return MOEJIT_SOURCE_TEMPLATE_DIR;
}

fs::path abi_include_dir() {
  return MOEJIT_SOURCE_ABI_INCLUDE_DIR;
}

std::vector<std::string> kernel_include_dirs() {
  return {template_dir().string(), abi_include_dir().string()};
}

}  // namespace moejit
