#include "lookup.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <string_view>

#include "moejit/error.hpp"
#include "moejit/log.hpp"
#include "validators.hpp"

namespace moejit {
namespace {

std::array<std::atomic<long>, kRungCount>& global_served() {
  static std::array<std::atomic<long>, kRungCount> served{};
  return served;
}

constexpr std::string_view kUnrenderable = "unrenderable: ";  // then the render error

// log_once remembers a message even when the level hides it; only hand it messages that print.
void info_once(const std::string& message) {
  if (log_level() >= LogLevel::info) log_once(LogLevel::info, message);
}

bool same_problem_but_tokens(const Problem& a, const Problem& b) {
  return a.family == b.family && a.dtype == b.dtype && a.shape == b.shape;
}

// Distance between buckets in powers of two; ties prefer the larger bucket (closer to steady state).
double bucket_distance(int64_t tuned, int64_t wanted) {
  double d = std::fabs(std::log2(static_cast<double>(tuned)) - std::log2(static_cast<double>(wanted)));
  return tuned > wanted ? d - 0.25 : d;
}

// Whether `d`, `distance` buckets away, answers better than `best`: nearer, then faster.
bool preferred(const Decision& d, double distance, const Decision* best, double best_distance) {
  return !best || distance < best_distance || (distance == best_distance && d.time_ms < best->time_ms);
}

}  // namespace

const char* to_string(Rung rung) {
  switch (rung) {
    case Rung::exact:
      return "exact";
    case Rung::nearest_bucket:
      return "nearest_bucket";
    case Rung::same_arch:
      return "same_arch";
    case Rung::shipped:
      return "shipped";
    case Rung::heuristic:
      return "heuristic";
  }
  return "?";
}

TuningLookup::TuningLookup(TuningStore store, std::filesystem::path shipped_dir)
    : store_(std::move(store)), shipped_dir_(std::move(shipped_dir)) {}

void TuningLookup::refresh() {
  std::lock_guard lock(mutex_);
  loaded_.clear();
}

RungCounts TuningLookup::counts() const {
  RungCounts c;
  for (int i = 0; i < kRungCount; ++i) c.served[i] = served_[i].load();
  return c;
}

RungCounts global_rung_counts() {
  RungCounts c;
  for (int i = 0; i < kRungCount; ++i) c.served[i] = global_served()[i].load();
  return c;
}

const std::vector<Decision>& TuningLookup::decisions_of(Family family) {
  auto it = loaded_.find(family);
  if (it != loaded_.end()) return it->second;
  std::vector<Decision> decisions;
  try {
    decisions = store_.load(family);
  } catch (const Error& e) {
    // A damaged tuning file must not stop training: fall down the ladder, loudly.
    log_once(LogLevel::warn,
             std::string(e.what()) + "; using built-in heuristics for " + std::string(to_string(family)));
  }
  return loaded_.emplace(family, std::move(decisions)).first->second;
}

const std::vector<Decision>& TuningLookup::shipped_of(Family family) {
  if (!shipped_) {
    shipped_ = load_shipped(shipped_dir_);
    for (const std::string& why : shipped_->rejected)
      log_once(LogLevel::warn, "shipped tuning bundle skipped: " + why + " (reinstall moejit or run moejit tune)");
  }
  static const std::vector<Decision> none;
  auto it = shipped_->by_family.find(family);
  return it == shipped_->by_family.end() ? none : it->second;
}

const Decision* TuningLookup::best_shipped(const KernelSpec& spec, const Problem& problem,
                                           const DeviceDescription& device, const Compiler& compiler) {
  // Measured on this device model (Validators::same_device); driver and compiler may differ.
  const Validators here = {.backend = device.backend,
                           .device = device.name,
                           .arch = device.arch,
                           .features = device.features,
                           .compute_units = device.compute_units};
  const int64_t wanted = token_bucket(problem.tokens);
  const Decision* best = nullptr;
  double best_distance = 1e9;
  for (const Decision& d : shipped_of(problem.family)) {
    if (!same_problem_but_tokens(d.problem, problem) || !d.validators.same_device(here)) continue;
    const std::string hash = hash_of(spec, d, device, compiler);
    if (const std::string why = stale_reason(spec, d, device, hash); !why.empty()) {
      log_once(LogLevel::warn, "shipped decision for " + d.problem.key() + " ignored: " + why +
                                   "; moejit tune tunes it for this version");
      continue;
    }
    if (!spec.prune_reason(problem, d.config, device).empty()) continue;
    const double distance = bucket_distance(d.problem.tokens, wanted);
    if (preferred(d, distance, best, best_distance)) {
      best = &d;
      best_distance = distance;
    }
  }
  return best;
}

const std::string& TuningLookup::hash_of(const KernelSpec& spec, const Decision& d, const DeviceDescription& device,
                                         const Compiler& compiler) {
  const std::string id = d.key() + "|" + d.config.to_string() + "|" + device.arch + "|" + compiler.id();
  auto it = hashes_.find(id);
  if (it != hashes_.end()) return it->second;
  std::string hash;
  try {
    hash = template_hash(spec, d.problem, d.config, device, compiler);
  } catch (const Error& e) {
    hash = std::string(kUnrenderable) + e.what();  // the config no longer exists in the template
  }
  return hashes_.emplace(id, std::move(hash)).first->second;
}

std::string TuningLookup::stale_reason(const KernelSpec& spec, const Decision& d, const DeviceDescription& device,
                                       const std::string& current_hash) {
  // The real reason, most specific first: a config that left the space also fails to render or
  // hashes differently, and "template hash changed" would send the reader to the wrong file.
  const std::string id = d.key() + "|" + d.config.to_string() + "|" + device.arch;
  auto it = in_space_.find(id);
  if (it == in_space_.end()) {
    // The tuner also measures the heuristic's config where it lies off the space's grid (a pure
    // function of the problem and device, so it is still the same config).
    const std::vector<Config> space = spec.space(d.problem, device);
    const bool known =
        std::find(space.begin(), space.end(), d.config) != space.end() || spec.heuristic(d.problem, device) == d.config;
    it = in_space_.emplace(id, known).first;
  }
  if (!it->second)
    return "its config is no longer in the " + std::string(to_string(d.family())) +
           " config space (the template changed)";
  if (current_hash.rfind(kUnrenderable, 0) == 0)
    return "it no longer renders (" + current_hash.substr(kUnrenderable.size()) + ")";
  if (current_hash != d.validators.template_hash) return "template hash changed since it was tuned";
  return {};
}

LookupResult TuningLookup::lookup(const KernelSpec& spec, const Problem& problem, const DeviceDescription& device,
                                  const Compiler& compiler) {
  std::lock_guard lock(mutex_);
  const std::vector<Decision>& decisions = decisions_of(problem.family);
  const int64_t wanted = token_bucket(problem.tokens);

  const Decision* best[kRungCount] = {};
  double best_distance[kRungCount] = {0, 1e9, 1e9, 1e9, 1e9};
  for (const Decision& d : decisions) {
    if (!same_problem_but_tokens(d.problem, problem)) continue;
    Validators current = d.validators;
    current.backend = device.backend;
    current.device = device.name;
    current.arch = device.arch;
    current.features = device.features;
    current.compute_units = device.compute_units;
    current.driver = device.driver;
    current.compiler = compiler.id();
    current.schema = kTuningSchemaVersion;
    if (current.backend != d.validators.backend || current.arch != d.validators.arch) continue;
    current.template_hash = hash_of(spec, d, device, compiler);
    const std::string where = "decision " + d.uri();
    if (const std::string why = stale_reason(spec, d, device, current.template_hash); !why.empty()) {
      info_once(where + " not used: " + why + "; re-run moejit tune");
      continue;
    }
    if (std::string why = spec.prune_reason(problem, d.config, device); !why.empty()) {
      info_once(where + " not used: " + why);
      continue;
    }
    const std::string mismatch = d.validators.mismatch(current);
    const double distance = bucket_distance(d.problem.tokens, wanted);
    Rung rung;
    if (mismatch.empty()) {
      rung = d.problem.tokens == wanted ? Rung::exact : Rung::nearest_bucket;
    } else {
      info_once(where + " from " + d.validators.device + " not exact here: " + mismatch);
      rung = Rung::same_arch;
    }
    const int r = static_cast<int>(rung);
    if (preferred(d, distance, best[r], best_distance[r])) {
      best[r] = &d;
      best_distance[r] = distance;
    }
  }

  if (!best[0] && !best[1] && !best[2])
    best[static_cast<int>(Rung::shipped)] = best_shipped(spec, problem, device, compiler);
  LookupResult result;
  for (int r = 0; r < static_cast<int>(Rung::heuristic); ++r) {
    if (!best[r]) continue;
    result.rung = static_cast<Rung>(r);
    result.config = best[r]->config;
    result.decision = *best[r];
    break;
  }
  if (!result.decision) {
    result.rung = Rung::heuristic;
    result.config = spec.heuristic(problem, device);
  }
  served_[static_cast<int>(result.rung)].fetch_add(1);
  global_served()[static_cast<int>(result.rung)].fetch_add(1);
  std::string from;
  if (result.decision)
    from = " tuned on " + result.decision->validators.device + " at bucket " +
           std::to_string(result.decision->problem.tokens);
  info_once("tuning lookup " + problem.key() + " on " + device.name + ": " + result.config.to_string() + " (rung " +
            to_string(result.rung) + from + ")");
  return result;
}

}  // namespace moejit
