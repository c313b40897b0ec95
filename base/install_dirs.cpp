#include "install_dirs.hpp"

#include <dlfcn.h>

#include <system_error>

namespace fs = std::filesystem;

namespace moejit {
namespace {

// The file holding this function: the shared library when moejit is linked dynamically, else the
// executable (whose own path dladdr may report as argv[0], hence /proc/self/exe).
fs::path loaded_from() {
  Dl_info info{};
  std::error_code ec;
  if (dladdr(reinterpret_cast<void*>(&loaded_from), &info) && info.dli_fname && info.dli_fname[0] == '/')
    if (fs::path p = fs::weakly_canonical(info.dli_fname, ec); !ec) return p;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  return ec ? fs::path() : exe;
}

// An install tree is recognised by <prefix>/<datadir>/moejit/templates beside the module.
InstallDirs find_install_dirs() {
  const fs::path module = loaded_from();
  if (module.empty()) return {};
  // From the library dir (libmoejit.so) or the binary dir (a static link) up to the prefix.
  for (const char* up : {MOEJIT_LIBDIR_TO_PREFIX, MOEJIT_BINDIR_TO_PREFIX}) {
    const fs::path prefix = (module.parent_path() / up).lexically_normal();
    const fs::path data = prefix / MOEJIT_INSTALL_DATADIR / "moejit";
    std::error_code ec;
    if (fs::is_directory(data / "templates", ec)) return {data, prefix / MOEJIT_INSTALL_INCLUDEDIR};
  }
  return {};
}

}  // namespace

const InstallDirs& install_dirs() {
  static const InstallDirs dirs = find_install_dirs();
  return dirs;
}

}  // namespace moejit
