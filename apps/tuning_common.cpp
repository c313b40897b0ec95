#include "tuning_common.hpp"

#include <sstream>

#include "model_config.hpp"
#include "moejit/error.hpp"

namespace moejit::cli {

LayerShape parse_shape(const std::string& shape, DType dtype) {
  std::vector<int64_t> v;
  std::istringstream in(shape);
  std::string part;
  try {
    while (std::getline(in, part, ',')) v.push_back(std::stoll(part));
  } catch (const std::exception&) {
    v.clear();
  }
  if (v.size() != 4 || v[0] <= 0 || v[1] <= 0 || v[2] <= 0 || v[3] <= 0)
    throw Error("--shape wants four positive numbers d_model,d_expert,E,topk (e.g. 2048,1408,64,8), got '" + shape +
                "'");
  return LayerShape{dtype, v[0], v[1], v[2], v[3]};
}

LayerShape layer_shape_of(const std::string& model, const std::string& shape, const std::string& dtype,
                          const std::string& backend) {
  const DType type = dtype.empty() ? default_layer_dtype(backend) : parse_dtype(dtype);
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

std::vector<int64_t> parse_tokens(const std::string& tokens) {
  std::vector<int64_t> out;
  if (tokens == "all") {
    for (int64_t b = 1; b <= kMaxTokenBucket; b *= 2) out.push_back(b);
    return out;
  }
  std::istringstream in(tokens);
  std::string part;
  while (std::getline(in, part, ',')) {
    int64_t t = 0;
    try {
      t = std::stoll(part);
    } catch (const std::exception&) {
    }
    if (t <= 0) throw Error("--tokens wants positive counts separated by commas, or 'all'; got '" + tokens + "'");
    out.push_back(t);
  }
  if (out.empty()) throw Error("--tokens is empty");
  return out;
}

}  // namespace moejit::cli
