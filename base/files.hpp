// File helpers shared by the binary cache, the tuning cache and checkpoints.
#pragma once
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

namespace moejit {

// Writes `bytes` to a temp file beside `path`, fsyncs it, then renames it over `path`: readers see
// the old file or the new one, never a torn one. Throws Error naming the path on failure.
void write_file_atomic(const std::filesystem::path& path, std::string_view bytes);
// Whole file, or nullopt if it does not exist. Throws Error on other read failures.
std::optional<std::string> read_file(const std::filesystem::path& path);

// An exclusive advisory lock (flock) on a lock file, released on destruction. Concurrent
// processes asking for the same cache entry serialise on it.
class FileLock {
 public:
  explicit FileLock(const std::filesystem::path& lock_path);  // blocks until acquired
  ~FileLock();
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;
  bool locked() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

// $MOEJIT_CACHE_DIR, else $XDG_CACHE_HOME/moejit, else ~/.cache/moejit.
std::filesystem::path cache_root();

}  // namespace moejit
