// Where the JIT compilers find what kernel sources include at run time: the templates and the
// kernel ABI headers (moejit/abi/*.h: the structs the host and the kernels exchange). Both are on
// every compile's include path, so the binary cache key's include hash covers them too.
#pragma once
#include <filesystem>
#include <string>
#include <vector>

namespace moejit {

// $MOEJIT_TEMPLATE_DIR, else the installed templates (<prefix>/share/moejit/templates, found
// relative to the library: base/install_dirs.hpp), else the source tree's templates/.
std::filesystem::path template_dir();
// The include root holding moejit/abi/: <prefix>/include once installed, else the source tree's
// base/include.
std::filesystem::path abi_include_dir();
// {template_dir(), abi_include_dir()}: the include paths of every JIT compile.
std::vector<std::string> kernel_include_dirs();

}  // namespace moejit
