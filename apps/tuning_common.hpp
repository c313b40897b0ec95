// Shared by `moejit tune`, `tune-worker` and `bench`: opening a backend by name, the flags naming the
// MoE layer's kernels (--shape and --tokens are read by cli_checks.hpp), the --families selection.
#pragma once
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "moe_layer_kernels.hpp"
#include "moejit/backend.hpp"

namespace moejit::cli {

// "cuda" or "host"; "" picks cuda when a GPU is usable, else host. Throws UnavailableError.
std::unique_ptr<Backend> open_backend(const std::string& name);
std::string default_backend_name();

// The flags `tune` and `bench` share: the layer's shape, token counts, dtype, backend and families.
struct LayerFlags {
  std::string shape, tokens = "4096", dtype, backend;
  std::vector<std::string> families;
  // Adds them to `cmd`; returns --shape (tune makes it exclusive with a config, bench requires it).
  CLI::Option* add_to(CLI::App* cmd);
};

// The MoE layer of `shape` ("d_model,d_expert,E,topk") in `dtype`, empty: the backend's default.
runtime::LayerShape layer_shape(const std::string& shape, const std::string& dtype, const Backend& backend);

// --families: empty selects every family.
bool selected(const std::vector<std::string>& families, const std::string& family);
// Throws Error when --families selected none of `families` (what the command covers on `backend`), naming them.
void check_some_selected(const std::set<std::string>& selected_families, const std::set<std::string>& families,
                         const std::string& backend);

}  // namespace moejit::cli
