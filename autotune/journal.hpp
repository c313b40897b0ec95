// Append-only journal of one tuning run: one JSON line per measured candidate, fsynced as it is
// written, so a run stopped by Ctrl-C or kill -9 resumes without re-timing what it finished.
//   <tuning dir>/journal/<family>.<hash16>.jsonl   hash: problem key, device, compiler, template,
//                                                  timing options (a changed setup starts afresh)
// A torn last line (killed mid-write) is ignored. The journal is removed once the decision is stored.
#pragma once
#include <filesystem>
#include <map>
#include <string>

#include "candidate.hpp"

namespace moejit {

class Journal {
 public:
  explicit Journal(std::filesystem::path path) : path_(std::move(path)) {}
  std::map<std::string, CandidateResult> load() const;  // by config text
  void append(const CandidateResult& result);
  void remove();
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

}  // namespace moejit
