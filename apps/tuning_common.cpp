#include "tuning_common.hpp"

#include <set>

#include "backend_choice.hpp"  // step_compute_dtype: what a training step looks up
#include "cli_checks.hpp"
#include "model_config.hpp"
#include "moejit/error.hpp"
#include "tune_layer.hpp"

namespace moejit::cli {

void LayerFlags::add_to(CLI::App* cmd, const char* model_help) {
  auto* model_option = cmd->add_option("--model,--config", model, model_help);
  auto* positional = cmd->add_option("CONFIG", model, "The same as --model")->excludes(model_option);
  cmd->add_option("--shape", shape, "d_model,d_expert,E,topk")
      ->check(shape_text())
      ->excludes(model_option)
      ->excludes(positional);
  cmd->add_option("--tokens", tokens, "Token counts, comma separated, or 'all' buckets 1..65536")
      ->capture_default_str()
      ->check(tokens_text());
  cmd->add_option("--dtype", dtype,
                  "bf16 or f32 (default: with --model, the dtype its training step runs in on the backend, f32; "
                  "with --shape, f32 on the host backend, bf16 on cuda)")
      ->check(one_of({"bf16", "f32"}, "dtype"));
  cmd->add_option("--backend", backend, "host or cuda (default: cuda if a GPU is usable)")
      ->check(one_of({"host", "cuda"}, "backend"));
  cmd->add_option("--families,--family", families, "Only these kernel families")
      ->delimiter(',')
      ->check(kernel_family());
}

LayerShape layer_shape_of(const std::string& model, const std::string& shape, const std::string& dtype,
                          const std::string& backend) {
  // A model is tuned for training it: in the dtype its step looks the kernels up in.
  const DType type = !dtype.empty()  ? parse_dtype(dtype)
                     : model.empty() ? default_layer_dtype(backend)
                                     : runtime::step_compute_dtype(backend);
  if (!model.empty()) {  // the MoE layer's shape of a model config (models/configs/)
    const ModelConfig config = find_model_config(model);
    if (!config.is_moe())
      throw Error("model '" + model + "' has no MoE layer to tune: pick an MoE config (moejit plan --list)");
    return LayerShape{type, config.d_model, config.moe->d_expert, config.moe->experts, config.moe->top_k};
  }
  if (shape.empty()) throw Error("give --shape d_model,d_expert,E,topk or --model NAME");
  return parse_shape(shape, type);
}

std::vector<Family> parse_families(const std::vector<std::string>& names) {
  std::vector<Family> out;
  for (const std::string& name : names) out.push_back(parse_family(name));
  return out;
}

std::vector<LayerKernel> selected_calls(const LayerShape& layer, const std::vector<int64_t>& tokens,
                                        const std::vector<std::string>& families, std::string_view backend) {
  std::vector<LayerKernel> calls = layer_calls(layer, tokens, parse_families(families), backend);
  if (!calls.empty()) return calls;
  std::set<std::string_view> layer_families;
  for (const LayerKernel& k : layer_calls(layer, tokens, {}, backend))
    layer_families.insert(to_string(k.problem.family));
  std::string known;
  for (const std::string_view name : layer_families) known += (known.empty() ? "" : ", ") + std::string(name);
  throw Error("--families selects none of the kernel families the MoE layer runs (they are: " + known + ")");
}

std::vector<LayerKernel> selected_calls(const LayerFlags& flags, const std::string& backend) {
  return selected_calls(layer_shape_of(flags.model, flags.shape, flags.dtype, backend), parse_tokens(flags.tokens),
                        flags.families, backend);
}

}  // namespace moejit::cli
