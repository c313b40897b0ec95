// Opening a backend by name: the CLI's --backend flag and the library API's SessionOptions.
#pragma once
#include <memory>
#include <string>

#include "moejit/backend.hpp"

namespace moejit {

// "cuda" when a GPU is usable, else "host".
std::string default_backend_name();
// "cuda" or "host"; "" picks default_backend_name(). threads: the host backend's workers (0: every
// hardware thread). Throws UnavailableError for a backend this build or machine lacks, Error for an
// unknown name.
std::unique_ptr<Backend> open_backend(const std::string& name, unsigned threads = 0);

}  // namespace moejit
