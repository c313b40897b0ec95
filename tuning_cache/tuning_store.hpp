// The on-disk tuning cache: $MOEJIT_CACHE_DIR/tuning/<family>.json, one file per kernel family:
//   {"moejit_tuning": 1, "family": "...", "decisions": [Decision, ...]}   (docs/tuning_cache.md)
// Every write takes the family's lock file, re-reads the file, merges, and publishes with an atomic
// rename, so concurrent writers (several `moejit tune` processes) lose nothing and readers never
// see a torn file. A file that fails to parse is never overwritten: it is moved aside to
// <file>.corrupt-<time> with a warning, and the error names it.
#pragma once
#include <filesystem>
#include <string>
#include <vector>

#include "decision.hpp"

namespace moejit {

class TuningStore {
 public:
  explicit TuningStore(std::filesystem::path dir);
  static std::filesystem::path default_dir();  // cache_root() / "tuning"

  // Every decision of `family` (empty if none). Throws Error naming the file if it is malformed,
  // holds another family's decision, or two decisions of one identity.
  std::vector<Decision> load(const std::string& family) const;
  // Every family's decisions. With `unreadable`, a file that does not load is skipped and its error
  // (naming it) appended there; without, the first such error is thrown.
  std::vector<Decision> load_all(std::vector<std::string>* unreadable = nullptr) const;
  std::vector<std::string> families() const;

  enum class Policy {
    // A local tuning replaces the stored decision of the same identity (which stays on record as an
    // alternative), unless that one was stored after `since` (a concurrent run): then as keep_faster.
    replace,
    keep_faster,  // imports and merges: the faster measurement wins, the other is kept as alternative
  };
  struct WriteReport {
    int added = 0;
    int replaced = 0;   // the stored decision gave way to the incoming one
    int unchanged = 0;  // the stored decision still answers (the incoming one may be kept as an alternative)
    // Two measurements of one identity that disagree (config or time):
    // "key on device: a4_b4 1.2 ms vs a5_b4 1.1 ms -> keeps a5_b4 (1.1 ms)".
    std::vector<std::string> conflicts;
  };
  // Throws Error for a decision with time_ms <= 0 (it would beat every real measurement). `since`:
  // the ISO date this tuning run started (Provenance::date), for Policy::replace.
  WriteReport record(const std::vector<Decision>& decisions, Policy policy = Policy::replace,
                     const std::string& since = {});

  const std::filesystem::path& directory() const { return dir_; }
  std::filesystem::path file_of(const std::string& family) const;

 private:
  std::filesystem::path dir_;
};

// Parses a store file's text strictly; `where` names it in errors. With `family`, a decision of
// another family is refused, and always two decisions of one identity.
std::vector<Decision> parse_store_file(const std::string& text, const std::string& where,
                                       const std::string& family = {});
std::string render_store_file(const std::string& family, const std::vector<Decision>& decisions);

// Merges `incoming` into `existing` under `policy`; shared by the store and bundle merges.
TuningStore::WriteReport merge_decisions(std::vector<Decision>& existing, const std::vector<Decision>& incoming,
                                         TuningStore::Policy policy, const std::string& since = {});

}  // namespace moejit
