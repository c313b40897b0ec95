// Where the JIT compilers find kernel sources at run time.
#pragma once
#include <filesystem>

namespace moejit {

// $MOEJIT_TEMPLATE_DIR, else the installed templates, else the source tree's templates/.
std::filesystem::path template_dir();

}  // namespace moejit
