#include "bundle.hpp"

#include <nlohmann/json.hpp>

#include "moejit/error.hpp"

namespace moejit {
namespace {

using nlohmann::json;
constexpr const char* kBundleTag = "moejit_bundle";

}  // namespace

std::string render_bundle(const Bundle& b) {
  json decisions = json::array(), sources = json::array();
  for (const Decision& d : b.decisions) decisions.push_back(to_json(d));
  for (const Provenance& p : b.sources) sources.push_back(provenance_to_json(p));
  json j = {{kBundleTag, kTuningSchemaVersion},
            {"exported", provenance_to_json(b.exported)},
            {"sources", sources},
            {"decisions", decisions}};
  return j.dump(2) + "\n";
}

Bundle parse_bundle(std::string_view text, const std::string& where) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    throw Error(where + ": not valid JSON (" + e.what() + "); is the file truncated?");
  }
  if (!j.is_object() || !j.contains(kBundleTag))
    throw Error(where + ": not a moejit bundle (no \"" + std::string(kBundleTag) +
                "\" field); bundles are written by `moejit cache export`");
  const json& version = j[kBundleTag];
  if (!version.is_number_integer() || version.get<int64_t>() != kTuningSchemaVersion)
    throw SchemaError(where + ": bundle schema " + version.dump() + " is not supported (this moejit reads " +
                          std::to_string(kTuningSchemaVersion) + "): export it again with a matching moejit, or " +
                          kRetuneHint,
                      version.is_number_integer() ? version.get<int>() : -1);
  Bundle b;
  if (!j.contains("exported")) throw Error(where + ".exported: missing");
  b.exported = provenance_from_json(j["exported"], where + ".exported");
  if (!j.contains("sources") || !j["sources"].is_array()) throw Error(where + ".sources: expected an array");
  for (size_t i = 0; i < j["sources"].size(); ++i)
    b.sources.push_back(provenance_from_json(j["sources"][i], where + ".sources[" + std::to_string(i) + "]"));
  if (!j.contains("decisions") || !j["decisions"].is_array()) throw Error(where + ".decisions: expected an array");
  const json& list = j["decisions"];
  for (size_t i = 0; i < list.size(); ++i)
    b.decisions.push_back(decision_from_json(list[i], where + ".decisions[" + std::to_string(i) + "]"));
  return b;
}

Bundle export_bundle(const TuningStore& store) {
  Bundle b;
  b.exported = Provenance::here("export");
  b.decisions = store.load_all();
  return b;
}

TuningStore::WriteReport import_bundle(TuningStore& store, const Bundle& bundle) {
  return store.record(bundle.decisions, TuningStore::Policy::keep_faster);
}

Bundle merge_bundles(const Bundle& a, const Bundle& b, std::vector<std::string>* conflicts) {
  Bundle merged;
  merged.exported = Provenance::here("merge");
  merged.sources = a.sources;
  merged.sources.push_back(a.exported);
  merged.sources.insert(merged.sources.end(), b.sources.begin(), b.sources.end());
  merged.sources.push_back(b.exported);
  merged.decisions = a.decisions;
  auto report = merge_decisions(merged.decisions, b.decisions, TuningStore::Policy::keep_faster);
  if (conflicts) *conflicts = std::move(report.conflicts);
  return merged;
}

}  // namespace moejit
