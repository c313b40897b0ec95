// The on-disk tuning cache: $MOEJIT_CACHE_DIR/tuning/<family>.json, one file per kernel family
// (decisions of every backend and device side by side, told apart by their validators):
//   {"moejit_tuning": 2, "family": "...", "decisions": [Decision, ...]}   (docs/tuning_cache.md)
// Every write takes the family's lock file, re-reads the file, merges, and publishes with an atomic
// rename, so concurrent writers (several `moejit tune` processes) lose nothing and readers never
// see a torn file. A file that fails to parse is never overwritten: it is moved aside to
// <file>.corrupt-<time> with a warning, and the error names it; a file of an older schema is refused
// with the command that rebuilds it (kRetuneHint) and kept beside the new one as <file>.schema<N>.
#pragma once
#include <filesystem>
#include <string>
#include <vector>

#include "decision.hpp"
#include "moejit/error.hpp"

namespace moejit {

class TuningStore {
 public:
  explicit TuningStore(std::filesystem::path dir);
  static std::filesystem::path default_dir();  // cache_root() / "tuning"

  // Every decision of `family` (empty if none). Throws Error naming the file if it is malformed.
  std::vector<Decision> load(Family family) const;
  std::vector<Decision> load_all() const;
  // Families with a file in the store. Other *.json files (a family this moejit does not know,
  // such as schema 1's host_grouped_gemm_*) are left alone, with a warning naming them.
  std::vector<Family> families() const;

  enum class Policy {
    replace,      // a new local tuning replaces the stored decision with the same identity
    keep_faster,  // imports and merges: the faster measurement wins, the other is kept as alternative
  };
  struct WriteReport {
    int added = 0, replaced = 0, unchanged = 0;
    std::vector<std::string> conflicts;  // "key on device: configA 1.2 ms vs configB 1.1 ms -> configB"
  };
  WriteReport record(const std::vector<Decision>& decisions, Policy policy = Policy::replace);

  const std::filesystem::path& directory() const { return dir_; }
  std::filesystem::path file_of(Family family) const;

 private:
  std::filesystem::path dir_;
};

// Parses a store file's text (or a bundle's decisions) strictly; `where` names it in errors.
std::vector<Decision> parse_store_file(const std::string& text, const std::string& where);
std::string render_store_file(Family family, const std::vector<Decision>& decisions);

// A store file or bundle written by a moejit with another tuning schema.
class SchemaError : public Error {
 public:
  SchemaError(const std::string& message, int found) : Error(message), found_schema(found) {}
  int found_schema;
};

// Merges `incoming` into `existing` under `policy`; shared by the store and bundle merges.
TuningStore::WriteReport merge_decisions(std::vector<Decision>& existing, const std::vector<Decision>& incoming,
                                         TuningStore::Policy policy);

}  // namespace moejit
