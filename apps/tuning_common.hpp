// Shared by `moejit tune`, `tune-worker` and `bench`: opening a backend by name and turning
// --shape/--tokens into Problems.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "moejit/backend.hpp"
#include "moejit/problem.hpp"

namespace moejit::cli {

// "cuda" or "host"; "" picks cuda when a GPU is usable, else host. Throws UnavailableError.
std::unique_ptr<Backend> open_backend(const std::string& name);
std::string default_backend_name();

// "d_model,d_expert,E,topk" -> a Problem without family/tokens; throws Error naming the format.
Problem parse_shape(const std::string& shape, const std::string& dtype);
// "1,128,4096" or "all" (every bucket 1..65536) -> token counts.
std::vector<int64_t> parse_tokens(const std::string& tokens);

}  // namespace moejit::cli
