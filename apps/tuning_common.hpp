// Shared by `moejit tune`, `tune-worker` and `bench`: turning --model/--shape/--tokens/--families
// into the layer's calls (backends are opened by jit's open_backend()).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "moe_layer_steps.hpp"
#include "moejit/backend.hpp"
#include "moejit/problem.hpp"
#include "open_backend.hpp"  // open_backend(), default_backend_name()

namespace moejit::cli {

// "d_model,d_expert,E,topk" -> a layer shape; throws Error naming the format.
LayerShape parse_shape(const std::string& shape, DType dtype);
// The MoE layer to tune or bench: the layer of model config `model` (name or path) or `shape`
// (exactly one of them), in `dtype` (empty: the backend's default_layer_dtype).
LayerShape layer_shape_of(const std::string& model, const std::string& shape, const std::string& dtype,
                          const std::string& backend);
// --families names -> ids; throws Error naming an unknown one and the known ones.
std::vector<Family> parse_families(const std::vector<std::string>& names);
// "1,128,4096" or "all" (every bucket 1..65536) -> token counts.
std::vector<int64_t> parse_tokens(const std::string& tokens);

}  // namespace moejit::cli
