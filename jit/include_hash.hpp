// Hash of every template file a source pulls in with #include "...", transitively, so that editing
// an included header changes the cache key. Angle-bracket includes belong to the toolkit and are
// covered by the compiler version.
#pragma once
#include <string>
#include <vector>

namespace moejit {

// Names and content hashes of the quoted includes reachable from `code`, searched in `dirs`.
// Unresolvable includes contribute their name only (the compiler will report them).
std::string hash_includes(const std::string& code, const std::vector<std::string>& dirs);

}  // namespace moejit
