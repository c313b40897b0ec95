// Bundles: a portable file of tuning decisions with provenance, for sharing tuning results between
// machines and people (`moejit cache export|import|merge`). Format in docs/tuning_cache.md:
//   {"moejit_bundle": 1, "exported": Provenance, "sources": [Provenance...], "decisions": [Decision...]}
// Parsing is all-or-nothing: any malformed field rejects the whole bundle before the store is touched.
#pragma once
#include <string>
#include <string_view>
#include <vector>

#include "decision.hpp"
#include "tuning_store.hpp"

namespace moejit {

struct Bundle {
  Provenance exported;              // who wrote this file, when, where
  std::vector<Provenance> sources;  // bundles merged into this one
  std::vector<Decision> decisions;
};

std::string render_bundle(const Bundle& bundle);
// Throws Error starting with `where` and naming the field; never returns a partial bundle.
Bundle parse_bundle(std::string_view text, const std::string& where);

// `unreadable`: as TuningStore::load_all (a bad store file is skipped and named there).
Bundle export_bundle(const TuningStore& store, std::vector<std::string>* unreadable = nullptr);
// Validates everything first, then writes under keep_faster: conflicts are reported, both kept.
TuningStore::WriteReport import_bundle(TuningStore& store, const Bundle& bundle);
// `a` and `b` merged: the faster measured decision of each identity wins, the other is recorded.
Bundle merge_bundles(const Bundle& a, const Bundle& b, std::vector<std::string>* conflicts);

}  // namespace moejit
