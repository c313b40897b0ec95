#include "tuning_store.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>

#include "files.hpp"
#include "moejit/error.hpp"
#include "moejit/log.hpp"

namespace fs = std::filesystem;

namespace moejit {
namespace {

constexpr const char* kStoreTag = "moejit_tuning";

std::string ms_text(double ms) {
  char text[32];
  std::snprintf(text, sizeof text, "%.6g ms", ms);
  return text;
}

// "key on device: a4_b4 1.2 ms vs a5_b4 1.1 ms -> keeps a5_b4 (1.1 ms)"; the same config measured
// twice is a conflict too (its two times disagree).
std::string describe_conflict(const Decision& a, const Decision& b, const Decision& winner) {
  return a.key() + " on " + a.validators.device + ": " + a.config.to_string() + " " + ms_text(a.time_ms) + " vs " +
         b.config.to_string() + " " + ms_text(b.time_ms) + " -> keeps " + winner.config.to_string() + " (" +
         ms_text(winner.time_ms) + ")";
}

bool same_measurement(const Decision& a, const Decision& b) {
  return a.config == b.config && a.time_ms == b.time_ms;
}

// A re-tune replaces `old`, which stays on record as an alternative of the new decision.
Decision retuned(const Decision& old, const Decision& d) {
  Decision out = d;
  Alternative previous{old.config.to_string(), old.time_ms, old.provenance};
  if (!same_measurement(old, d) &&
      std::find(out.alternatives.begin(), out.alternatives.end(), previous) == out.alternatives.end())
    out.alternatives.push_back(previous);
  return out;
}

}  // namespace

TuningStore::TuningStore(fs::path dir) : dir_(std::move(dir)) {}

fs::path TuningStore::default_dir() {
  return cache_root() / "tuning";
}

fs::path TuningStore::file_of(Family family) const {
  return dir_ / (std::string(to_string(family)) + ".json");
}

namespace {

// The decisions of a store file, each checked on its own; `family`: refuse another family's.
std::vector<Decision> parse_decisions(const std::string& text, const std::string& where, std::optional<Family> family) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw Error(where + ": not valid JSON (" + e.what() + "); the file may be truncated");
  }
  if (!j.is_object() || !j.contains(kStoreTag))
    throw Error(where + ": not a moejit tuning file (no \"" + std::string(kStoreTag) + "\" field)");
  if (!j[kStoreTag].is_number_integer() || j[kStoreTag].get<int64_t>() != kTuningSchemaVersion)
    throw SchemaError(where + ": tuning schema " + j[kStoreTag].dump() + " is not supported (this moejit reads " +
                          std::to_string(kTuningSchemaVersion) + "): " + kRetuneHint,
                      j[kStoreTag].is_number_integer() ? j[kStoreTag].get<int>() : -1);
  if (!j.contains("decisions") || !j["decisions"].is_array()) throw Error(where + ".decisions: expected an array");
  std::vector<Decision> decisions;
  const auto& list = j["decisions"];
  for (size_t i = 0; i < list.size(); ++i) {
    const std::string at = where + ": decisions[" + std::to_string(i) + "]";
    decisions.push_back(decision_from_json(list[i], at));
    if (family && decisions.back().family() != *family)
      throw Error(at + " is a '" + std::string(to_string(decisions.back().family())) + "' decision filed under '" +
                  std::string(to_string(*family)) + "': move it to its family's file or delete it");
  }
  return decisions;
}

// For writing: a file from before one identity held one decision (several per device, each with
// its winner's template hash) is repaired by keeping the fastest of each, not set aside.
std::vector<Decision> parse_folding_duplicates(const std::string& text, const std::string& where, Family family) {
  std::vector<Decision> folded;
  merge_decisions(folded, parse_decisions(text, where, family), TuningStore::Policy::keep_faster);
  return folded;
}

}  // namespace

std::vector<Decision> parse_store_file(const std::string& text, const std::string& where,
                                       std::optional<Family> family) {
  std::vector<Decision> decisions = parse_decisions(text, where, family);
  std::map<std::string, size_t> seen;  // identity -> index
  for (size_t i = 0; i < decisions.size(); ++i) {
    const Decision& d = decisions[i];
    if (auto [it, fresh] = seen.emplace(d.identity(), i); !fresh)
      throw Error(where + ": decisions[" + std::to_string(i) + "] has the identity of decisions[" +
                  std::to_string(it->second) + "] (" + d.key() + " on " + d.validators.device +
                  "): a problem holds one decision per device; delete one of them");
  }
  return decisions;
}

std::string render_store_file(Family family, const std::vector<Decision>& decisions) {
  nlohmann::json list = nlohmann::json::array();
  for (const Decision& d : decisions) list.push_back(to_json(d));
  nlohmann::json j = {
      {kStoreTag, kTuningSchemaVersion}, {"family", std::string(to_string(family))}, {"decisions", list}};
  return j.dump(2) + "\n";
}

std::vector<Decision> TuningStore::load(Family family) const {
  const fs::path path = file_of(family);
  auto text = read_file(path);
  if (!text) return {};
  return parse_store_file(*text, path.string(), family);
}

std::vector<Family> TuningStore::families() const {
  std::vector<Family> found;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir_, ec)) {
    if (entry.path().extension() != ".json") continue;
    if (auto family = find_family(entry.path().stem().string()))
      found.push_back(*family);
    else
      log_once(LogLevel::warn, "tuning cache file " + entry.path().string() +
                                   " is not a kernel family this moejit knows (an older schema's name?): ignored "
                                   "and kept; " +
                                   kRetuneHint);
  }
  std::sort(found.begin(), found.end());
  return found;
}

std::vector<Decision> TuningStore::load_all(std::vector<std::string>* unreadable) const {
  std::vector<Decision> all;
  for (const Family family : families()) {
    std::vector<Decision> decisions;
    try {
      decisions = load(family);
    } catch (const Error& e) {
      if (!unreadable) throw;
      unreadable->push_back(e.what());  // one bad file must not hide the others
    }
    all.insert(all.end(), decisions.begin(), decisions.end());
  }
  return all;
}

TuningStore::WriteReport merge_decisions(std::vector<Decision>& existing, const std::vector<Decision>& incoming,
                                         TuningStore::Policy policy, const std::string& since) {
  TuningStore::WriteReport report;
  std::map<std::string, size_t> index;
  for (size_t i = 0; i < existing.size(); ++i) index[existing[i].identity()] = i;
  for (const Decision& d : incoming) {
    if (!(d.time_ms > 0))
      throw Error(d.key() + " " + d.config.to_string() + ": a decision's time_ms must be > 0 (got " +
                  ms_text(d.time_ms) + "): it would beat every real measurement");
    auto it = index.find(d.identity());
    if (it == index.end()) {
      index[d.identity()] = existing.size();
      existing.push_back(d);
      ++report.added;
      continue;
    }
    Decision& old = existing[it->second];
    if (old == d) {
      ++report.unchanged;
      continue;
    }
    // A re-tune replaces what an earlier run stored; a decision stored since this run started came
    // from a concurrent one: both measured now, so the faster wins, as for imports.
    const bool concurrent = !since.empty() && old.provenance.date >= since;
    if (policy == TuningStore::Policy::replace && !concurrent) {
      old = retuned(old, d);
      ++report.replaced;
      continue;
    }
    Decision winner = merge_faster(old, d);
    if (!same_measurement(old, d)) report.conflicts.push_back(describe_conflict(old, d, winner));
    // Kept or replaced by what answers lookups: more alternatives on record leave it "unchanged".
    if (same_measurement(winner, old) && winner.provenance == old.provenance) {
      ++report.unchanged;
    } else {
      ++report.replaced;
    }
    old = std::move(winner);
  }
  return report;
}

TuningStore::WriteReport TuningStore::record(const std::vector<Decision>& decisions, Policy policy,
                                             const std::string& since) {
  std::map<Family, std::vector<Decision>> by_family;
  for (const Decision& d : decisions) by_family[d.family()].push_back(d);
  std::error_code ec;
  fs::create_directories(dir_, ec);
  if (ec) throw Error("cannot create the tuning cache directory " + dir_.string() + ": " + ec.message());
  WriteReport total;
  for (const auto& [family, incoming] : by_family) {
    const fs::path path = file_of(family);
    FileLock lock(fs::path(path) += ".lock");
    std::vector<Decision> existing;
    if (auto text = read_file(path)) {
      try {
        existing = parse_folding_duplicates(*text, path.string(), family);
      } catch (const SchemaError& e) {
        // Another schema's decisions stay readable by the moejit that wrote them.
        fs::path aside = fs::path(path) += ".schema" + std::to_string(e.found_schema);
        fs::rename(path, aside, ec);
        log_message(LogLevel::warn, std::string(e.what()) + "; moved it to " + aside.string());
      } catch (const Error& e) {
        // Never overwrite what we cannot read: keep it aside for inspection and start afresh.
        fs::path aside = fs::path(path) +=
            ".corrupt-" + std::to_string(std::chrono::system_clock::now().time_since_epoch().count());
        fs::rename(path, aside, ec);
        log_message(LogLevel::warn, std::string(e.what()) + "; moved it to " + aside.string());
      }
    }
    WriteReport report = merge_decisions(existing, incoming, policy, since);
    write_file_atomic(path, render_store_file(family, existing));
    total.added += report.added;
    total.replaced += report.replaced;
    total.unchanged += report.unchanged;
    total.conflicts.insert(total.conflicts.end(), report.conflicts.begin(), report.conflicts.end());
  }
  return total;
}

}  // namespace moejit
