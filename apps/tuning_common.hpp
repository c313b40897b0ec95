// Shared by `moejit tune`, `tune-worker` and `bench`: opening a backend by name (--shape and --tokens
// are read by cli_checks.hpp).
#pragma once
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "moejit/backend.hpp"

namespace moejit::cli {

// "cuda" or "host"; "" picks cuda when a GPU is usable, else host. Throws UnavailableError.
std::unique_ptr<Backend> open_backend(const std::string& name);
std::string default_backend_name();

// --families: empty selects every family.
bool selected(const std::vector<std::string>& families, const std::string& family);
// Throws Error when --families selected none of `families` (what the command covers on `backend`), naming them.
void check_some_selected(const std::set<std::string>& selected_families, const std::set<std::string>& families,
                         const std::string& backend);

}  // namespace moejit::cli
