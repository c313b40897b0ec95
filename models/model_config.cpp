#include "model_config.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <set>

#include "files.hpp"
#include "install_dirs.hpp"
#include "moejit/checked.hpp"
#include "moejit/error.hpp"

namespace moejit {
namespace fs = std::filesystem;
using nlohmann::json;

std::string_view to_string(ModelScope scope) {
  return scope == ModelScope::model ? "model" : "moe_layer";
}

bool ModelConfig::is_dense_layer(int64_t layer) const {
  if (!moe) return true;
  return std::find(moe->dense_layers.begin(), moe->dense_layers.end(), layer) != moe->dense_layers.end();
}

int64_t ModelConfig::dense_layer_count() const {
  if (scope == ModelScope::moe_layer) return 0;
  return moe ? static_cast<int64_t>(moe->dense_layers.size()) : layers;
}

int64_t ModelConfig::moe_layer_count() const {
  if (!moe) return 0;
  return scope == ModelScope::moe_layer ? 1 : layers - dense_layer_count();
}

namespace {

// Reads one JSON object field by field and, at the end, rejects keys nobody asked for: a typo such
// as "expert" for "experts" must fail loudly, not fall back to a default.
class ObjectReader {
 public:
  ObjectReader(const json& j, std::string where, std::string origin)
      : j_(j), where_(std::move(where)), origin_(std::move(origin)) {
    if (!j_.is_object()) fail(where_ + " must be a JSON object, got " + std::string(j_.type_name()));
  }

  bool has(const std::string& key) const { return j_.contains(key); }

  int64_t integer(const std::string& key, std::optional<int64_t> fallback = std::nullopt) {
    const json* v = get(key, fallback.has_value());
    if (!v) return *fallback;
    if (!v->is_number_integer()) fail(path(key) + " must be an integer, got " + v->dump());
    return v->get<int64_t>();
  }
  double number(const std::string& key, double fallback) {
    const json* v = get(key, true);
    if (!v) return fallback;
    if (!v->is_number()) fail(path(key) + " must be a number, got " + v->dump());
    return v->get<double>();
  }
  bool boolean(const std::string& key, bool fallback) {
    const json* v = get(key, true);
    if (!v) return fallback;
    if (!v->is_boolean()) fail(path(key) + " must be true or false, got " + v->dump());
    return v->get<bool>();
  }
  std::string string(const std::string& key, std::optional<std::string> fallback = std::nullopt) {
    const json* v = get(key, fallback.has_value());
    if (!v) return *fallback;
    if (!v->is_string()) fail(path(key) + " must be a string, got " + v->dump());
    return v->get<std::string>();
  }
  std::vector<int64_t> integers(const std::string& key) {
    const json* v = get(key, true);
    std::vector<int64_t> out;
    if (!v) return out;
    if (!v->is_array()) fail(path(key) + " must be an array of integers, got " + v->dump());
    for (const auto& e : *v) {
      if (!e.is_number_integer()) fail(path(key) + " must be an array of integers, got " + v->dump());
      out.push_back(e.get<int64_t>());
    }
    return out;
  }
  const json& object(const std::string& key) { return *get(key, false); }

  // Call after reading every known field.
  void reject_unknown() const {
    for (const auto& [key, value] : j_.items()) {
      if (used_.count(key)) continue;
      std::string known;
      for (const auto& k : used_) known += (known.empty() ? "" : ", ") + k;
      fail("unknown key '" + key + "' in " + where_ + " (known keys: " + known + ")");
    }
  }
  [[noreturn]] void fail(const std::string& message) const { throw Error(origin_ + ": " + message); }

 private:
  std::string path(const std::string& key) const { return where_ == "config" ? key : where_ + "." + key; }
  const json* get(const std::string& key, bool optional) {
    used_.insert(key);
    auto it = j_.find(key);
    if (it == j_.end()) {
      if (optional) return nullptr;
      fail("missing required field '" + path(key) + "'");
    }
    return &*it;
  }

  const json& j_;
  std::string where_;
  std::string origin_;
  std::set<std::string> used_;
};

RouterConfig router_from_json(const json& j, const std::string& origin) {
  ObjectReader r(j, "moe.router", origin);
  RouterConfig c;
  c.score = r.string("score", c.score);
  c.renormalize = r.boolean("renormalize", c.renormalize);
  c.groups = r.integer("groups", c.groups);
  c.topk_groups = r.integer("topk_groups", c.topk_groups);
  c.aux_loss_coef = r.number("aux_loss_coef", c.aux_loss_coef);
  c.z_loss_coef = r.number("z_loss_coef", c.z_loss_coef);
  c.seq_aux_loss_coef = r.number("seq_aux_loss_coef", c.seq_aux_loss_coef);
  c.scaling = r.number("scaling", c.scaling);
  c.bias_update_rate = r.number("bias_update_rate", c.bias_update_rate);
  c.capacity_factor = r.number("capacity_factor", c.capacity_factor);
  r.reject_unknown();
  return c;
}

MoeConfig moe_from_json(const json& j, const std::string& origin) {
  ObjectReader r(j, "moe", origin);
  MoeConfig c;
  c.experts = r.integer("experts");
  c.top_k = r.integer("top_k");
  c.d_expert = r.integer("d_expert");
  c.shared_experts = r.integer("shared_experts", 0);
  c.d_shared = r.integer("d_shared", 0);
  c.dense_layers = r.integers("dense_layers");
  if (r.has("router")) c.router = router_from_json(r.object("router"), origin);
  r.reject_unknown();
  return c;
}

void check(bool ok, const std::string& origin, const std::string& message) {
  if (!ok) throw Error(origin + ": " + message);
}

void check_positive(int64_t value, const std::string& field, const std::string& origin) {
  check(value > 0, origin, field + " must be positive, got " + std::to_string(value));
}

}  // namespace

void validate(const ModelConfig& c, const std::string& origin) {
  check(!c.name.empty(), origin, "'name' must not be empty");
  check_positive(c.d_model, "d_model", origin);
  if (c.scope == ModelScope::model) {
    check_positive(c.layers, "layers", origin);
    check_positive(c.heads, "heads", origin);
    check_positive(c.head_dim, "head_dim", origin);
    const int64_t width = checked_mul(c.heads, c.head_dim, origin + ": heads * head_dim");
    check(width == c.d_model, origin,
          "heads * head_dim = " + std::to_string(c.heads) + " * " + std::to_string(c.head_dim) + " = " +
              std::to_string(width) + " must equal d_model = " + std::to_string(c.d_model) +
              " (change heads or head_dim)");
    check_positive(c.vocab, "vocab", origin);
    check_positive(c.seq_len, "seq_len", origin);
    check(c.positions == "alibi" || c.positions == "rope", origin,
          "positions must be \"alibi\" or \"rope\", got \"" + c.positions + "\"");
    if (c.dense_layer_count() > 0) {
      check_positive(c.d_ffn, "d_ffn (the dense FFN width, needed because some layers are dense)", origin);
    } else {
      check(c.d_ffn == 0, origin,
            "d_ffn is set but no layer is dense: list the dense layers in moe.dense_layers "
            "or drop d_ffn");
    }
  }
  if (!c.moe) {
    check(c.scope == ModelScope::model, origin, "scope \"moe_layer\" needs a \"moe\" object");
    return;
  }
  const MoeConfig& m = *c.moe;
  check_positive(m.experts, "moe.experts", origin);
  check_positive(m.top_k, "moe.top_k", origin);
  check(m.top_k <= m.experts, origin,
        "moe.top_k = " + std::to_string(m.top_k) + " exceeds moe.experts = " + std::to_string(m.experts) +
            " (a token cannot pick more experts than exist)");
  check_positive(m.d_expert, "moe.d_expert", origin);
  check(m.shared_experts >= 0, origin, "moe.shared_experts must be >= 0");
  check((m.shared_experts == 0) == (m.d_shared == 0), origin,
        "moe.shared_experts and moe.d_shared must both be 0 (no shared expert) or both positive, got " +
            std::to_string(m.shared_experts) + " and " + std::to_string(m.d_shared));
  check(m.d_shared >= 0, origin, "moe.d_shared must be >= 0");
  checked_mul(m.shared_experts, m.d_shared, origin + ": moe.shared_experts * moe.d_shared");
  const RouterConfig& r = m.router;
  check(r.score == "softmax" || r.score == "sigmoid", origin,
        "moe.router.score must be \"softmax\" or \"sigmoid\", got \"" + r.score + "\"");
  check(r.groups >= 1 && m.experts % r.groups == 0, origin,
        "moe.router.groups = " + std::to_string(r.groups) +
            " must be >= 1 and divide moe.experts = " + std::to_string(m.experts));
  check(r.topk_groups >= 1 && r.topk_groups <= r.groups, origin,
        "moe.router.topk_groups must be in [1, groups = " + std::to_string(r.groups) + "]");
  check(m.top_k <= r.topk_groups * (m.experts / r.groups), origin,
        "moe.top_k exceeds the experts in the topk_groups selected groups");
  check(r.aux_loss_coef >= 0 && r.z_loss_coef >= 0 && r.seq_aux_loss_coef >= 0, origin,
        "moe.router loss coefficients (aux_loss_coef, z_loss_coef, seq_aux_loss_coef) must be >= 0");
  check(std::isfinite(r.scaling) && r.scaling > 0, origin, "moe.router.scaling must be a finite number > 0");
  check(std::isfinite(r.bias_update_rate) && r.bias_update_rate >= 0, origin,
        "moe.router.bias_update_rate must be a finite number >= 0 (0: no selection bias)");
  check(std::isfinite(r.capacity_factor) && r.capacity_factor >= 0, origin,
        "moe.router.capacity_factor must be a finite number >= 0 (0: no capacity, nothing dropped)");
  if (c.scope == ModelScope::moe_layer) {
    check(m.dense_layers.empty(), origin, "moe.dense_layers does not apply to scope \"moe_layer\"");
    return;
  }
  std::set<int64_t> seen;
  for (int64_t layer : m.dense_layers) {
    check(layer >= 0 && layer < c.layers, origin,
          "moe.dense_layers entry " + std::to_string(layer) + " is outside [0, layers = " + std::to_string(c.layers) +
              ")");
    check(seen.insert(layer).second, origin, "moe.dense_layers lists layer " + std::to_string(layer) + " twice");
  }
  check(c.moe_layer_count() > 0, origin,
        "every layer is in moe.dense_layers: drop the \"moe\" object for a dense "
        "model");
}

ModelConfig model_config_from_json(const json& j, const std::string& origin) {
  ObjectReader r(j, "config", origin);
  ModelConfig c;
  c.name = r.string("name");
  c.description = r.string("description", "");
  const std::string scope = r.string("scope", "model");
  if (scope == "model") {
    c.scope = ModelScope::model;
  } else if (scope == "moe_layer") {
    c.scope = ModelScope::moe_layer;
  } else {
    r.fail("scope must be \"model\" or \"moe_layer\", got \"" + scope + "\"");
  }
  c.d_model = r.integer("d_model");
  if (c.scope == ModelScope::model) {
    c.layers = r.integer("layers");
    c.heads = r.integer("heads");
    c.head_dim = r.integer("head_dim");
    c.d_ffn = r.integer("d_ffn", 0);
    c.vocab = r.integer("vocab");
    c.seq_len = r.integer("seq_len");
    c.positions = r.string("positions", c.positions);
    c.tie_embeddings = r.boolean("tie_embeddings", false);
  }
  if (c.scope == ModelScope::moe_layer && r.has("moe")) {
    c.moe = moe_from_json(r.object("moe"), origin);
  } else if (c.scope == ModelScope::moe_layer) {
    r.fail("scope \"moe_layer\" needs a \"moe\" object");
  } else if (r.has("moe")) {
    c.moe = moe_from_json(r.object("moe"), origin);
  }
  if (c.scope == ModelScope::moe_layer) {
    for (const char* key :
         {"layers", "heads", "head_dim", "d_ffn", "vocab", "seq_len", "positions", "tie_embeddings"}) {
      if (r.has(key)) r.fail(std::string("field '") + key + "' does not apply to scope \"moe_layer\" (drop it)");
    }
  }
  r.reject_unknown();
  validate(c, origin);
  return c;
}

json to_json(const ModelConfig& c) {
  json j;
  j["name"] = c.name;
  if (!c.description.empty()) j["description"] = c.description;
  j["scope"] = std::string(to_string(c.scope));
  j["d_model"] = c.d_model;
  if (c.scope == ModelScope::model) {
    j["layers"] = c.layers;
    j["heads"] = c.heads;
    j["head_dim"] = c.head_dim;
    if (c.d_ffn) j["d_ffn"] = c.d_ffn;
    j["vocab"] = c.vocab;
    j["seq_len"] = c.seq_len;
    j["positions"] = c.positions;
    j["tie_embeddings"] = c.tie_embeddings;
  }
  if (c.moe) {
    const MoeConfig& m = *c.moe;
    json jm = {{"experts", m.experts},
               {"top_k", m.top_k},
               {"d_expert", m.d_expert},
               {"shared_experts", m.shared_experts},
               {"d_shared", m.d_shared}};
    if (c.scope == ModelScope::model) jm["dense_layers"] = m.dense_layers;
    jm["router"] = {{"score", m.router.score},
                    {"renormalize", m.router.renormalize},
                    {"groups", m.router.groups},
                    {"topk_groups", m.router.topk_groups},
                    {"aux_loss_coef", m.router.aux_loss_coef},
                    {"z_loss_coef", m.router.z_loss_coef}};
    // Written only when set, so that the configs (and checkpoints) of runs without them keep their text.
    const RouterConfig defaults;
    if (m.router.scaling != defaults.scaling) jm["router"]["scaling"] = m.router.scaling;
    if (m.router.bias_update_rate != defaults.bias_update_rate)
      jm["router"]["bias_update_rate"] = m.router.bias_update_rate;
    if (m.router.seq_aux_loss_coef != defaults.seq_aux_loss_coef)
      jm["router"]["seq_aux_loss_coef"] = m.router.seq_aux_loss_coef;
    if (m.router.capacity_factor != defaults.capacity_factor)
      jm["router"]["capacity_factor"] = m.router.capacity_factor;
    j["moe"] = jm;
  }
  return j;
}

ModelConfig parse_model_config(std::string_view text, const std::string& origin) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::parse_error& e) {
    // Turn the byte offset into line:column so the message points into the file.
    size_t line = 1, column = 1;
    for (size_t i = 0; i + 1 < e.byte && i < text.size(); ++i) {
      if (text[i] == '\n') {
        ++line;
        column = 1;
      } else {
        ++column;
      }
    }
    throw Error(origin + ":" + std::to_string(line) + ":" + std::to_string(column) + ": malformed JSON: " + e.what());
  }
  return model_config_from_json(j, origin);
}

ModelConfig load_model_config(const fs::path& path) {
  auto text = read_file(path);
  if (!text) throw Error(path.string() + ": no such model config file");
  return parse_model_config(*text, path.string());
}

fs::path models_dir() {
  if (const char* dir = std::getenv("MOEJIT_MODELS_DIR"); dir && *dir) return dir;
  if (install_dirs().installed()) return install_dirs().data / "models";
  return MOEJIT_SOURCE_MODELS_DIR;
}

std::vector<std::string> list_model_configs() {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(models_dir(), ec)) {
    if (entry.path().extension() == ".json") names.push_back(entry.path().stem().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

ModelConfig find_model_config(std::string_view name_or_path) {
  const fs::path as_path(name_or_path);
  if (as_path.extension() == ".json" || name_or_path.find('/') != std::string_view::npos) {
    return load_model_config(as_path);
  }
  const fs::path file = models_dir() / (std::string(name_or_path) + ".json");
  if (!fs::exists(file)) {
    std::string known;
    for (const auto& n : list_model_configs()) known += (known.empty() ? "" : ", ") + n;
    throw Error("no model config named '" + std::string(name_or_path) + "' in " + models_dir().string() +
                " (known: " + known + "; or pass a path to a .json file; MOEJIT_MODELS_DIR overrides the folder)");
  }
  return load_model_config(file);
}

}  // namespace moejit
