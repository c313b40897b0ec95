#include "decision.hpp"

#include <pwd.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <ctime>
#include <nlohmann/json.hpp>

#include "moejit/error.hpp"
#include "moejit/version.hpp"

namespace moejit {
namespace {

using nlohmann::json;

const json& field(const json& j, const char* name, const std::string& where) {
  if (!j.is_object()) throw Error(where + ": expected a JSON object");
  auto it = j.find(name);
  if (it == j.end()) throw Error(where + "." + name + ": missing");
  return *it;
}

std::string get_string(const json& j, const char* name, const std::string& where) {
  const json& v = field(j, name, where);
  if (!v.is_string()) throw Error(where + "." + name + ": expected a string");
  return v.get<std::string>();
}

int64_t get_int(const json& j, const char* name, const std::string& where, int64_t min = 0) {
  const json& v = field(j, name, where);
  if (!v.is_number_integer()) throw Error(where + "." + name + ": expected an integer");
  int64_t value = v.get<int64_t>();
  if (value < min) throw Error(where + "." + name + ": must be >= " + std::to_string(min));
  return value;
}

double get_time(const json& j, const char* name, const std::string& where) {
  const json& v = field(j, name, where);
  if (!v.is_number()) throw Error(where + "." + name + ": expected a number");
  double value = v.get<double>();
  if (!std::isfinite(value) || value < 0) throw Error(where + "." + name + ": must be a finite number >= 0");
  return value;
}

std::string env_or(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v && *v ? v : fallback;
}

}  // namespace

nlohmann::json provenance_to_json(const Provenance& p) {
  return {{"user", p.user},         {"host", p.host},
          {"date", p.date},         {"moejit_version", p.moejit_version},
          {"strategy", p.strategy}, {"candidates", p.candidates},
          {"partial", p.partial}};
}

Provenance provenance_from_json(const json& j, const std::string& where) {
  Provenance p;
  p.user = get_string(j, "user", where);
  p.host = get_string(j, "host", where);
  p.date = get_string(j, "date", where);
  p.moejit_version = get_string(j, "moejit_version", where);
  p.strategy = get_string(j, "strategy", where);
  p.candidates = get_int(j, "candidates", where);
  const json& partial = field(j, "partial", where);
  if (!partial.is_boolean()) throw Error(where + ".partial: expected true or false");
  p.partial = partial.get<bool>();
  return p;
}

bool Validators::same_device(const Validators& o) const {
  return backend == o.backend && device == o.device && arch == o.arch && features == o.features &&
         compute_units == o.compute_units;
}

std::string Validators::mismatch(const Validators& c) const {
  auto differs = [](const char* what, const std::string& stored, const std::string& now) {
    return std::string(what) + " changed ('" + stored + "' when tuned, '" + now + "' now)";
  };
  if (schema != c.schema) return differs("schema version", std::to_string(schema), std::to_string(c.schema));
  if (backend != c.backend) return differs("backend", backend, c.backend);
  if (device != c.device) return differs("device", device, c.device);
  if (arch != c.arch) return differs("arch", arch, c.arch);
  if (features != c.features) return differs("CPU features", features, c.features);
  if (compute_units != c.compute_units)
    return differs("compute unit count", std::to_string(compute_units), std::to_string(c.compute_units));
  if (driver != c.driver) return differs("driver version", driver, c.driver);
  if (compiler != c.compiler) return differs("compiler", compiler, c.compiler);
  if (template_hash != c.template_hash) return differs("template hash", template_hash, c.template_hash);
  return {};
}

Provenance Provenance::here(std::string strategy) {
  Provenance p;
  std::string user;
  if (const passwd* pw = ::getpwuid(::getuid())) user = pw->pw_name;
  p.user = env_or("USER", user.empty() ? "unknown" : user);
  char host[256] = {};
  p.host = ::gethostname(host, sizeof host - 1) == 0 ? host : "unknown";
  std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm utc{};
  ::gmtime_r(&now, &utc);
  char date[32];
  std::strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", &utc);
  p.date = date;
  p.moejit_version = kVersion;
  p.strategy = std::move(strategy);
  return p;
}

std::string Decision::identity() const {
  const Validators& v = validators;
  return key() + "|" + v.backend + "|" + v.device + "|" + v.arch + "|" + v.features + "|" +
         std::to_string(v.compute_units) + "|" + v.driver + "|" + v.compiler + "|" + v.template_hash;
}

std::string Decision::uri() const {
  const Problem& p = problem;
  return kernel_uri(to_string(p.family), validators.arch, to_string(p.dtype),
                    to_string(p.shape) + "_tb" + std::to_string(token_bucket(p.tokens)), config.to_string());
}

json to_json(const Decision& d) {
  const Problem& p = d.problem;
  const Validators& v = d.validators;
  json alternatives = json::array();
  for (const Alternative& a : d.alternatives)
    alternatives.push_back(
        {{"config", a.config}, {"time_ms", a.time_ms}, {"provenance", provenance_to_json(a.provenance)}});
  json shape = json::object();
  for (const ShapeDim& dim : shape_dims(p.shape)) shape[std::string(dim.name)] = dim.value;
  return {{"uri", d.uri()},
          {"family", std::string(to_string(p.family))},
          {"key", d.key()},
          {"problem",
           {{"dtype", std::string(to_string(p.dtype))},
            {"shape_kind", std::string(to_string(kind_of(p.shape)))},
            {"shape", shape},
            {"token_bucket", token_bucket(p.tokens)}}},
          {"config", d.config.to_string()},
          {"time_ms", d.time_ms},
          {"throughput", d.throughput},
          {"throughput_unit", d.throughput_unit},
          {"validators",
           {{"schema", v.schema},
            {"backend", v.backend},
            {"device", v.device},
            {"arch", v.arch},
            {"features", v.features},
            {"compute_units", v.compute_units},
            {"driver", v.driver},
            {"compiler", v.compiler},
            {"template_hash", v.template_hash}}},
          {"provenance", provenance_to_json(d.provenance)},
          {"alternatives", alternatives}};
}

namespace {

Problem problem_from_json(const json& j, const std::string& where) {
  Problem problem;
  const std::string family = get_string(j, "family", where);
  const auto id = find_family(family);
  if (!id) throw Error(where + ".family: unknown kernel family '" + family + "' (known: " + known_family_names() + ")");
  problem.family = *id;
  const json& p = field(j, "problem", where);
  const std::string pw = where + ".problem";
  const std::string dtype_text = get_string(p, "dtype", pw);
  try {
    problem.dtype = parse_dtype(dtype_text);
  } catch (const Error& e) {
    throw Error(pw + ".dtype: " + e.what());
  }
  const ShapeKind kind = family_info(problem.family).shape;
  if (get_string(p, "shape_kind", pw) != to_string(kind))
    throw Error(pw + ".shape_kind: " + family + " problems have a " + std::string(to_string(kind)) + " shape");
  const json& shape = field(p, "shape", pw);
  problem.shape = shape_from_dims(
      kind, [&](std::string_view name) { return get_int(shape, std::string(name).c_str(), pw + ".shape"); });
  problem.tokens = get_int(p, "token_bucket", pw, 1);
  return problem;
}

}  // namespace

Decision decision_from_json(const json& j, const std::string& where) {
  Decision d;
  d.problem = problem_from_json(j, where);
  const std::string pw = where + ".problem";
  if (token_bucket(d.problem.tokens) != d.problem.tokens)
    throw Error(pw + ".token_bucket: " + std::to_string(d.problem.tokens) + " is not a power of two in [1, 65536]");
  if (get_string(j, "key", where) != d.key())
    throw Error(where + ".key: '" + get_string(j, "key", where) + "' does not match its problem ('" + d.key() + "')");
  const std::string config_text = get_string(j, "config", where);
  try {
    d.config = Config::parse(config_text);
  } catch (const Error& e) {
    throw Error(where + ".config: " + e.what());
  }
  d.time_ms = get_time(j, "time_ms", where);
  d.throughput = get_time(j, "throughput", where);
  d.throughput_unit = get_string(j, "throughput_unit", where);
  const json& v = field(j, "validators", where);
  const std::string vw = where + ".validators";
  d.validators.schema = static_cast<int>(get_int(v, "schema", vw));
  if (d.validators.schema != kTuningSchemaVersion)
    throw Error(vw + ".schema: version " + std::to_string(d.validators.schema) +
                " is not supported (this moejit reads " + std::to_string(kTuningSchemaVersion) + "): " + kRetuneHint);
  d.validators.backend = get_string(v, "backend", vw);
  d.validators.device = get_string(v, "device", vw);
  d.validators.arch = get_string(v, "arch", vw);
  d.validators.features = get_string(v, "features", vw);
  d.validators.compute_units = static_cast<int>(get_int(v, "compute_units", vw));
  d.validators.driver = get_string(v, "driver", vw);
  d.validators.compiler = get_string(v, "compiler", vw);
  d.validators.template_hash = get_string(v, "template_hash", vw);
  if (get_string(j, "uri", where) != d.uri())
    throw Error(where + ".uri: '" + get_string(j, "uri", where) + "' does not match its decision ('" + d.uri() + "')");
  d.provenance = provenance_from_json(field(j, "provenance", where), where + ".provenance");
  const json& alts = field(j, "alternatives", where);
  if (!alts.is_array()) throw Error(where + ".alternatives: expected an array");
  for (size_t i = 0; i < alts.size(); ++i) {
    const std::string aw = where + ".alternatives[" + std::to_string(i) + "]";
    Alternative a;
    a.config = get_string(alts[i], "config", aw);
    a.time_ms = get_time(alts[i], "time_ms", aw);
    a.provenance = provenance_from_json(field(alts[i], "provenance", aw), aw + ".provenance");
    d.alternatives.push_back(std::move(a));
  }
  return d;
}

Decision merge_faster(const Decision& a, const Decision& b) {
  if (a == b) return a;
  // Ties keep `a` (the decision already in place), so merging is stable and idempotent.
  const bool b_wins = b.time_ms < a.time_ms;
  Decision winner = b_wins ? b : a;
  const Decision& loser = b_wins ? a : b;
  auto known = [&](const Alternative& x) {
    for (const Alternative& y : winner.alternatives)
      if (y == x) return true;
    return x.config == winner.config.to_string() && x.time_ms == winner.time_ms && x.provenance == winner.provenance;
  };
  Alternative lost{loser.config.to_string(), loser.time_ms, loser.provenance};
  if (!known(lost)) winner.alternatives.push_back(lost);
  for (const Alternative& x : loser.alternatives)
    if (!known(x)) winner.alternatives.push_back(x);
  return winner;
}

}  // namespace moejit
