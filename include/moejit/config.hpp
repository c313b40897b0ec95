// Config: the tunable parameters of one kernel template, in the order the template declares them.
// Canonical text joins name+value pairs with '_', e.g. "bm128_bn256_bk64_s4_w8" ("default" if empty).
#pragma once
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace moejit {

class Config {
 public:
  using Param = std::pair<std::string, int64_t>;

  Config() = default;
  Config(std::initializer_list<Param> params);

  // Names are lowercase letters only, values non-negative, so that the text form parses back.
  void set(std::string name, int64_t value);
  int64_t get(std::string_view name) const;  // throws Error naming the missing parameter
  int64_t get_or(std::string_view name, int64_t fallback) const;
  bool has(std::string_view name) const;
  const std::vector<Param>& params() const { return params_; }
  bool empty() const { return params_.empty(); }

  std::string to_string() const;
  static Config parse(std::string_view text);  // inverse of to_string(); throws Error on bad text

  bool operator==(const Config&) const = default;

 private:
  std::vector<Param> params_;
};

}  // namespace moejit
