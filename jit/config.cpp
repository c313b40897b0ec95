#include "moejit/config.hpp"

#include <algorithm>
#include <cctype>

#include "moejit/error.hpp"

namespace moejit {
namespace {
bool valid_name(std::string_view name) {
  return !name.empty() && std::all_of(name.begin(), name.end(), [](char c) { return c >= 'a' && c <= 'z'; });
}
}  // namespace

Config::Config(std::initializer_list<Param> params) {
  for (const auto& [name, value] : params) set(name, value);
}

void Config::set(std::string name, int64_t value) {
  if (!valid_name(name)) throw Error("config parameter name '" + name + "' must be lowercase letters a-z");
  if (value < 0) throw Error("config parameter " + name + " must be >= 0, got " + std::to_string(value));
  for (auto& [n, v] : params_) {
    if (n == name) {
      v = value;
      return;
    }
  }
  params_.emplace_back(std::move(name), value);
}

bool Config::has(std::string_view name) const {
  return std::any_of(params_.begin(), params_.end(), [&](const Param& p) { return p.first == name; });
}

int64_t Config::get(std::string_view name) const {
  for (const auto& [n, v] : params_)
    if (n == name) return v;
  throw Error("config '" + to_string() + "' has no parameter '" + std::string(name) + "'");
}

int64_t Config::get_or(std::string_view name, int64_t fallback) const {
  for (const auto& [n, v] : params_)
    if (n == name) return v;
  return fallback;
}

std::string Config::to_string() const {
  if (params_.empty()) return "default";
  std::string text;
  for (const auto& [n, v] : params_) {
    if (!text.empty()) text += '_';
    text += n + std::to_string(v);
  }
  return text;
}

Config Config::parse(std::string_view text) {
  Config config;
  if (text == "default") return config;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t end = text.find('_', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view part = text.substr(pos, end - pos);
    size_t digits = 0;
    while (digits < part.size() && std::isalpha(static_cast<unsigned char>(part[digits]))) ++digits;
    std::string_view name = part.substr(0, digits), value = part.substr(digits);
    if (!valid_name(name) || value.empty() ||
        !std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; }) || value.size() > 18)
      throw Error("malformed config text '" + std::string(text) + "': expected name+value pairs like bm128_bn64");
    config.set(std::string(name), std::stoll(std::string(value)));
    pos = end + 1;
  }
  return config;
}

}  // namespace moejit
