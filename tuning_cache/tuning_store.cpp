#include "tuning_store.hpp"

#include <algorithm>
#include <chrono>
#include <map>
#include <nlohmann/json.hpp>

#include "files.hpp"
#include "moejit/error.hpp"
#include "moejit/log.hpp"

namespace fs = std::filesystem;

namespace moejit {
namespace {

constexpr const char* kStoreTag = "moejit_tuning";

std::string describe_conflict(const Decision& a, const Decision& b, const Decision& winner) {
  char text[64];
  std::string s = a.key() + " on " + a.validators.device + ": " + a.config.to_string() + " ";
  std::snprintf(text, sizeof text, "%.6g ms", a.time_ms);
  s += text;
  s += " vs " + b.config.to_string() + " ";
  std::snprintf(text, sizeof text, "%.6g ms", b.time_ms);
  s += text;
  return s + " -> keeps " + winner.config.to_string();
}

}  // namespace

TuningStore::TuningStore(fs::path dir) : dir_(std::move(dir)) {}

fs::path TuningStore::default_dir() {
  return cache_root() / "tuning";
}

fs::path TuningStore::file_of(Family family) const {
  return dir_ / (std::string(to_string(family)) + ".json");
}

std::vector<Decision> parse_store_file(const std::string& text, const std::string& where) {
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
  for (size_t i = 0; i < list.size(); ++i)
    decisions.push_back(decision_from_json(list[i], where + ": decisions[" + std::to_string(i) + "]"));
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
  return parse_store_file(*text, path.string());
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

std::vector<Decision> TuningStore::load_all() const {
  std::vector<Decision> all;
  for (const Family family : families()) {
    auto decisions = load(family);
    all.insert(all.end(), decisions.begin(), decisions.end());
  }
  return all;
}

TuningStore::WriteReport merge_decisions(std::vector<Decision>& existing, const std::vector<Decision>& incoming,
                                         TuningStore::Policy policy) {
  TuningStore::WriteReport report;
  std::map<std::string, size_t> index;
  for (size_t i = 0; i < existing.size(); ++i) index[existing[i].identity()] = i;
  for (const Decision& d : incoming) {
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
    if (policy == TuningStore::Policy::replace) {
      old = d;
      ++report.replaced;
      continue;
    }
    Decision winner = merge_faster(old, d);
    if (old.config != d.config) report.conflicts.push_back(describe_conflict(old, d, winner));
    if (winner == old) {
      ++report.unchanged;
    } else {
      old = std::move(winner);
      ++report.replaced;
    }
  }
  return report;
}

TuningStore::WriteReport TuningStore::record(const std::vector<Decision>& decisions, Policy policy) {
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
        existing = parse_store_file(*text, path.string());
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
    WriteReport report = merge_decisions(existing, incoming, policy);
    write_file_atomic(path, render_store_file(family, existing));
    total.added += report.added;
    total.replaced += report.replaced;
    total.unchanged += report.unchanged;
    total.conflicts.insert(total.conflicts.end(), report.conflicts.begin(), report.conflicts.end());
  }
  return total;
}

}  // namespace moejit
