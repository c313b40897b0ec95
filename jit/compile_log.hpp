// Makes compiler logs actionable: each "file(line): error" / "file:line:col: error" gets the
// offending source line appended, read from the rendered source or the template file it names.
#pragma once
#include <string>
#include <vector>

#include "moejit/source.hpp"

namespace moejit {

std::string annotate_compile_log(const std::string& log, const Source& source,
                                 const std::vector<std::string>& include_dirs);

}  // namespace moejit
