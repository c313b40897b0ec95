// Binary cache: memory map in front of a disk directory of compiled kernels.
//   <dir>/<family>.<arch>.<config>.<hash16>.<cubin|o>   the image
//   <dir>/<...>.ptx                                    PTX (CUDA only, optional)
//   <dir>/<...>.json                                   metadata, written last: its presence publishes
// Lifecycle per key (as FlashInfer and DeepGEMM do it): memory -> disk -> lock -> disk again ->
// compile -> publish by rename. Every read is verified (sizes + hashes); a corrupt entry is
// reported and recompiled, never loaded. A read-only or full directory warns once and the cache
// keeps working in memory.
#pragma once
#include <atomic>
#include <cstdint>
#include <filesystem>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "moejit/binary.hpp"
#include "moejit/compiler.hpp"
#include "moejit/source.hpp"

namespace moejit {

class BinaryCache {
 public:
  // `dir` is the kernels directory (default: cache_root()/kernels).
  explicit BinaryCache(std::filesystem::path dir);
  static BinaryCache& global();

  // Everything that can change the image: source, included templates, options, compiler, arch.
  static std::string key(const Compiler& compiler, const Source& source);
  // "<family>.<arch>.<config>.<hash16>": the entry's file stem.
  static std::string entry_name(const Compiler& compiler, const Source& source, const std::string& key);

  std::shared_ptr<const Binary> get_or_compile(const Compiler& compiler, const Source& source);

  struct Stats {
    long memory_hits = 0, disk_hits = 0, compiles = 0, corrupt_entries = 0;
  };
  Stats stats() const;
  void clear_memory();

  struct Entry {
    std::string name;  // file stem
    std::string uri;
    uint64_t bytes = 0;  // image + ptx + metadata
  };
  std::vector<Entry> list() const;
  size_t clear_disk();  // removes every entry; returns how many
  const std::filesystem::path& directory() const { return dir_; }

 private:
  std::shared_ptr<const Binary> load_from_disk(const std::string& stem, const std::string& key, bool report_corruption);
  void store_to_disk(const std::string& stem, const Binary& binary);
  bool ensure_directory();
  bool writable();  // probed once; warns once naming the directory and MOEJIT_CACHE_DIR

  std::filesystem::path dir_;
  mutable std::mutex mutex_;
  std::map<std::string, std::shared_ptr<const Binary>> memory_;
  std::map<std::string, std::shared_future<std::shared_ptr<const Binary>>> in_flight_;
  std::atomic<long> memory_hits_{0}, disk_hits_{0}, compiles_{0}, corrupt_{0};
  std::atomic<bool> disk_usable_{true}, disk_writable_{true};
  std::once_flag write_probe_;
};

}  // namespace moejit
