// Shared by `moejit tune`, `tune-worker`, `bench` and `compile`: the flags naming the MoE layer's
// kernels (numbers and lists are read by cli_checks.hpp), and turning --model/--shape/--tokens/--families
// into the layer's calls (backends are opened by jit's open_backend()).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "moe_layer_steps.hpp"
#include "moejit/backend.hpp"
#include "open_backend.hpp"  // open_backend(), default_backend_name()

namespace moejit::cli {

// The flags `tune` and `bench` share: the layer (a model config or a shape), token counts, dtype,
// backend and families.
struct LayerFlags {
  std::string model, shape, tokens = "4096", dtype, backend;
  std::vector<std::string> families;
  // Adds them to `cmd`: the config as --model, --config or positionally, exclusive with --shape.
  void add_to(CLI::App* cmd, const char* model_help = "Model config name or path (its MoE layer's shape)");
};

// The MoE layer to tune or bench: the layer of model config `model` (name or path) or `shape`
// (exactly one of them), in `dtype` (empty: for a model, the dtype its training step runs in on
// `backend`; for a shape, the backend's default_layer_dtype).
LayerShape layer_shape_of(const std::string& model, const std::string& shape, const std::string& dtype,
                          const std::string& backend);
// --families names -> ids; throws Error naming an unknown one and the known ones.
std::vector<Family> parse_families(const std::vector<std::string>& names);
// The layer's calls at `tokens`, narrowed to `families` and, given a backend, to the steps it runs as
// kernels (step_runs_on); throws Error when the selection leaves none, naming the families the layer
// runs (so a command never ends with nothing done and exit 0).
std::vector<LayerKernel> selected_calls(const LayerShape& layer, const std::vector<int64_t>& tokens,
                                        const std::vector<std::string>& families, std::string_view backend = {});
// The calls of `flags` on `backend` (its name).
std::vector<LayerKernel> selected_calls(const LayerFlags& flags, const std::string& backend);

}  // namespace moejit::cli
