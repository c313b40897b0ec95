#include "include_hash.hpp"

#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <sstream>

#include "files.hpp"
#include "hash.hpp"

namespace fs = std::filesystem;

namespace moejit {
namespace {

struct FileInfo {
  fs::file_time_type mtime;
  uintmax_t size = 0;
  std::string content;
};

// Memoised by path; re-read when mtime or size changes, so a warm start reads each template once.
const std::string& cached_content(const fs::path& path) {
  static std::mutex m;
  static std::map<std::string, FileInfo> files;
  std::error_code ec;
  auto mtime = fs::last_write_time(path, ec);
  auto size = fs::file_size(path, ec);
  std::lock_guard lock(m);
  FileInfo& info = files[path.string()];
  if (info.content.empty() || info.mtime != mtime || info.size != size) {
    info.content = read_file(path).value_or("");
    info.mtime = mtime;
    info.size = size;
  }
  return info.content;
}

std::vector<std::string> quoted_includes(const std::string& code) {
  std::vector<std::string> names;
  std::istringstream in(code);
  std::string line;
  while (std::getline(in, line)) {
    size_t p = line.find_first_not_of(" \t");
    if (p == std::string::npos || line[p] != '#') continue;
    p = line.find_first_not_of(" \t", p + 1);
    if (p == std::string::npos || line.compare(p, 7, "include") != 0) continue;
    size_t open = line.find('"', p + 7);
    if (open == std::string::npos) continue;
    size_t close = line.find('"', open + 1);
    if (close == std::string::npos) continue;
    names.push_back(line.substr(open + 1, close - open - 1));
  }
  return names;
}

void visit(const std::string& code, const fs::path& current_dir, const std::vector<std::string>& dirs,
           std::set<std::string>& seen, Hasher& hasher) {
  for (const std::string& name : quoted_includes(code)) {
    fs::path found;
    std::vector<fs::path> candidates;
    if (!current_dir.empty()) candidates.push_back(current_dir / name);
    for (const auto& d : dirs) candidates.push_back(fs::path(d) / name);
    for (const auto& c : candidates) {
      std::error_code ec;
      if (fs::is_regular_file(c, ec)) {
        found = fs::weakly_canonical(c, ec);
        break;
      }
    }
    if (found.empty()) {
      hasher.field("missing:" + name);
      continue;
    }
    if (!seen.insert(found.string()).second) continue;
    const std::string& content = cached_content(found);
    hasher.field(name).field(content);
    visit(content, found.parent_path(), dirs, seen, hasher);
  }
}

}  // namespace

std::string hash_includes(const std::string& code, const std::vector<std::string>& dirs) {
  Hasher hasher;
  std::set<std::string> seen;
  visit(code, {}, dirs, seen, hasher);
  return hasher.hex();
}

}  // namespace moejit
