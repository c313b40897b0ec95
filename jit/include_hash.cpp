#include "include_hash.hpp"

#include <sys/stat.h>

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

// What a template file contributes, memoised per path and re-read when its mtime or size changes:
// a warm process pays one stat() per included file per key, not a read and parse.
struct FileInfo {
  timespec mtime{};
  off_t size = -1;
  std::string content_hash;
  std::vector<std::string> includes;
};

class FileMemo {
 public:
  // nullptr if `path` is not a readable regular file.
  const FileInfo* get(const std::string& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return nullptr;
    std::lock_guard lock(mutex_);
    FileInfo& info = files_[path];
    if (info.size != st.st_size || info.mtime.tv_sec != st.st_mtim.tv_sec || info.mtime.tv_nsec != st.st_mtim.tv_nsec) {
      std::string content = read_file(path).value_or("");
      info.content_hash = hash_hex(content);
      info.includes = quoted_includes(content);
      info.size = st.st_size;
      info.mtime = st.st_mtim;
    }
    return &info;
  }

 private:
  std::mutex mutex_;
  std::map<std::string, FileInfo> files_;  // node-based: pointers stay valid
};

FileMemo& memo() {
  static FileMemo m;
  return m;
}

void visit(const std::vector<std::string>& includes, const std::string& current_dir,
           const std::vector<std::string>& dirs, std::set<std::string>& seen, Hasher& hasher) {
  for (const std::string& name : includes) {
    const FileInfo* info = nullptr;
    std::string found;
    if (!current_dir.empty()) {
      found = current_dir + "/" + name;
      info = memo().get(found);
    }
    for (size_t i = 0; !info && i < dirs.size(); ++i) {
      found = dirs[i] + "/" + name;
      info = memo().get(found);
    }
    if (!info) {
      hasher.field("missing:" + name);
      continue;
    }
    found = fs::path(found).lexically_normal().string();
    if (!seen.insert(found).second) continue;
    hasher.field(name).field(info->content_hash);
    visit(info->includes, fs::path(found).parent_path().string(), dirs, seen, hasher);
  }
}

}  // namespace

std::string hash_includes(const std::string& code, const std::vector<std::string>& dirs) {
  Hasher hasher;
  std::set<std::string> seen;
  visit(quoted_includes(code), {}, dirs, seen, hasher);
  return hasher.hex();
}

}  // namespace moejit
