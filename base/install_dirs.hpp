// Where an installed moejit keeps what it reads at run time: the kernel templates and model
// configs (<prefix>/share/moejit/) and the kernel ABI headers (<prefix>/include/moejit/abi/).
// They are found from the file this code was loaded from (libmoejit.so, or an executable that
// links moejit statically) and the relative paths CMake computed at configure time, so an install
// tree works wherever it is unpacked (`cmake --install --prefix`, a tarball), with no environment
// variable. A build tree has no such data beside its binaries: the members are then empty and
// callers use the source tree.
#pragma once
#include <filesystem>

namespace moejit {

struct InstallDirs {
  std::filesystem::path data;     // <prefix>/share/moejit: templates/, models/
  std::filesystem::path include;  // <prefix>/include: moejit/abi/*.h
  bool installed() const { return !data.empty(); }
};

// Computed once per process.
const InstallDirs& install_dirs();

}  // namespace moejit
