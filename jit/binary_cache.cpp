#include "binary_cache.hpp"

#include <chrono>
#include <ctime>
#include <nlohmann/json.hpp>

#include "files.hpp"
#include "hash.hpp"
#include "include_hash.hpp"
#include "moejit/error.hpp"
#include "moejit/log.hpp"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace moejit {
namespace {

constexpr int kMetadataSchema = 2;  // 2: URI fields dtype and shape

// File names keep [A-Za-z0-9_.-]; anything else in a URI field becomes '-'.
std::string file_safe(std::string text) {
  for (char& c : text)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.')) c = '-';
  return text;
}

json resources_to_json(const std::vector<ResourceUsage>& resources) {
  json out = json::array();
  for (const auto& r : resources)
    out.push_back({{"function", r.function},
                   {"registers", r.registers},
                   {"shared_bytes", r.shared_bytes},
                   {"stack_bytes", r.stack_bytes},
                   {"spill_store_bytes", r.spill_store_bytes},
                   {"spill_load_bytes", r.spill_load_bytes},
                   {"constant_bytes", r.constant_bytes}});
  return out;
}

std::vector<ResourceUsage> resources_from_json(const json& in) {
  std::vector<ResourceUsage> out;
  for (const auto& r : in) {
    ResourceUsage u;
    u.function = r.at("function").get<std::string>();
    u.registers = r.at("registers").get<int>();
    u.shared_bytes = r.at("shared_bytes").get<int64_t>();
    u.stack_bytes = r.at("stack_bytes").get<int64_t>();
    u.spill_store_bytes = r.at("spill_store_bytes").get<int64_t>();
    u.spill_load_bytes = r.at("spill_load_bytes").get<int64_t>();
    u.constant_bytes = r.at("constant_bytes").get<int64_t>();
    out.push_back(u);
  }
  return out;
}

}  // namespace

BinaryCache::BinaryCache(fs::path dir) : dir_(std::move(dir)) {}

BinaryCache& BinaryCache::global() {
  static BinaryCache cache(cache_root() / "kernels");
  return cache;
}

std::string BinaryCache::key(const Compiler& compiler, const Source& source) {
  Hasher h;
  h.field("moejit-binary-v2").field(compiler.id()).field(compiler.arch()).field(source.code);
  // Include paths a source adds through its options are searched too, so their files are hashed.
  std::vector<std::string> dirs = compiler.include_dirs();
  for (const auto& option : compiler.effective_options(source)) {
    h.field(option);
    for (std::string_view prefix : {"--include-path=", "-I"})
      if (option.rfind(prefix, 0) == 0) dirs.push_back(option.substr(prefix.size()));
  }
  for (const auto& entry : source.entries) h.field(entry);
  h.field(hash_includes(source.code, dirs));
  return h.hex();
}

std::string BinaryCache::entry_name(const Compiler& compiler, const Source& source, const std::string& key) {
  // The URI with '.' between its fields, then the content hash.
  std::string uri = source.uri(compiler.arch());
  for (char& c : uri)
    if (c == '/') c = '.';
  return file_safe(uri) + "." + key.substr(0, 16);
}

bool BinaryCache::ensure_directory() {
  if (!disk_usable_.load()) return false;
  std::error_code ec;
  fs::create_directories(dir_, ec);
  if (ec || !fs::is_directory(dir_, ec)) {
    disk_usable_ = false;
    log_once(LogLevel::warn, "kernel cache directory " + dir_.string() + " is not usable (" + ec.message() +
                                 "): working uncached; set MOEJIT_CACHE_DIR to a writable directory");
    return false;
  }
  return true;
}

std::shared_ptr<const Binary> BinaryCache::load_from_disk(const std::string& stem, const std::string& key,
                                                          bool report_corruption) {
  std::optional<std::string> meta_text;
  try {
    meta_text = read_file(dir_ / (stem + ".json"));
  } catch (const Error&) {
    return nullptr;
  }
  if (!meta_text) return nullptr;
  auto corrupt = [&](const std::string& why) -> std::shared_ptr<const Binary> {
    if (!report_corruption) return nullptr;  // the locked re-read reports it once
    ++corrupt_;
    log_message(LogLevel::warn,
                "corrupt kernel cache entry " + (dir_ / stem).string() + " (" + why + "): recompiling it");
    return nullptr;
  };
  try {
    json meta = json::parse(*meta_text);
    if (meta.at("schema").get<int>() != kMetadataSchema) return corrupt("unknown metadata schema");
    if (meta.at("key").get<std::string>() != key) return corrupt("key mismatch");
    auto binary = std::make_shared<Binary>();
    binary->kind = meta.at("kind").get<std::string>();
    auto image = read_file(dir_ / (stem + "." + binary->kind));
    if (!image) return corrupt("image file missing");
    if (image->size() != meta.at("image_bytes").get<size_t>())
      return corrupt("image is " + std::to_string(image->size()) + " bytes, metadata says " +
                     std::to_string(meta.at("image_bytes").get<size_t>()));
    if (hash_hex(*image) != meta.at("image_hash").get<std::string>()) return corrupt("image hash mismatch");
    if (meta.contains("ptx_hash")) {
      auto ptx = read_file(dir_ / (stem + ".ptx"));
      if (!ptx || hash_hex(*ptx) != meta.at("ptx_hash").get<std::string>()) return corrupt("PTX missing or damaged");
      binary->ptx = std::move(*ptx);
    }
    binary->image.assign(image->begin(), image->end());
    binary->family = meta.at("family").get<std::string>();
    binary->dtype = meta.at("dtype").get<std::string>();
    binary->shape = meta.at("shape").get<std::string>();
    binary->config = meta.at("config").get<std::string>();
    binary->arch = meta.at("arch").get<std::string>();
    binary->compiler = meta.at("compiler").get<std::string>();
    binary->key = key;
    binary->lowered_names = meta.at("lowered_names").get<std::map<std::string, std::string>>();
    binary->resources = resources_from_json(meta.at("resources"));
    binary->log = meta.value("log", "");
    binary->compile_seconds = meta.value("compile_seconds", 0.0);
    return binary;
  } catch (const json::exception& e) {
    return corrupt(std::string("metadata: ") + e.what());
  }
}

void BinaryCache::store_to_disk(const std::string& stem, const Binary& binary) {
  std::string_view image(binary.image.data(), binary.image.size());
  json meta = {{"schema", kMetadataSchema},
               {"key", binary.key},
               {"uri", binary.uri()},
               {"family", binary.family},
               {"dtype", binary.dtype},
               {"shape", binary.shape},
               {"config", binary.config},
               {"arch", binary.arch},
               {"kind", binary.kind},
               {"compiler", binary.compiler},
               {"image_bytes", image.size()},
               {"image_hash", hash_hex(image)},
               {"lowered_names", binary.lowered_names},
               {"resources", resources_to_json(binary.resources)},
               {"log", binary.log},
               {"compile_seconds", binary.compile_seconds},
               {"created", static_cast<int64_t>(std::time(nullptr))}};
  try {
    write_file_atomic(dir_ / (stem + "." + binary.kind), image);
    if (!binary.ptx.empty()) {
      write_file_atomic(dir_ / (stem + ".ptx"), binary.ptx);
      meta["ptx_hash"] = hash_hex(binary.ptx);
    }
    write_file_atomic(dir_ / (stem + ".json"), meta.dump(1));  // last: publishes the entry
  } catch (const Error& e) {
    disk_usable_ = false;
    log_once(LogLevel::warn, std::string("cannot write the kernel cache (") + e.what() +
                                 "): working uncached; free space or set MOEJIT_CACHE_DIR");
  }
}

std::shared_ptr<const Binary> BinaryCache::get_or_compile(const Compiler& compiler, const Source& source) {
  const std::string k = key(compiler, source);
  std::promise<std::shared_ptr<const Binary>> promise;
  {
    std::unique_lock lock(mutex_);
    if (auto it = memory_.find(k); it != memory_.end()) {
      ++memory_hits_;
      return it->second;
    }
    if (auto it = in_flight_.find(k); it != in_flight_.end()) {
      auto future = it->second;
      lock.unlock();
      ++memory_hits_;
      return future.get();  // rethrows the compile error of the thread that compiled
    }
    in_flight_.emplace(k, promise.get_future().share());
  }

  std::shared_ptr<const Binary> result;
  try {
    const std::string stem = entry_name(compiler, source, k);
    bool disk = ensure_directory();
    if (disk) result = load_from_disk(stem, k, /*report_corruption=*/false);
    if (result) {
      ++disk_hits_;
    } else {
      std::unique_ptr<FileLock> file_lock;
      if (disk) {
        file_lock = std::make_unique<FileLock>(dir_ / (stem + ".lock"));
        result = load_from_disk(stem, k, /*report_corruption=*/true);  // another process may have finished it meanwhile
        if (result) ++disk_hits_;
      }
      if (!result) {
        auto compiled = std::make_shared<Binary>(compiler.compile(source));
        compiled->key = k;
        ++compiles_;
        if (disk && file_lock->locked()) store_to_disk(stem, *compiled);
        result = std::move(compiled);
      }
    }
  } catch (...) {
    promise.set_exception(std::current_exception());
    std::lock_guard lock(mutex_);
    in_flight_.erase(k);
    throw;
  }
  promise.set_value(result);
  std::lock_guard lock(mutex_);
  memory_.emplace(k, result);
  in_flight_.erase(k);
  return result;
}

BinaryCache::Stats BinaryCache::stats() const {
  return {memory_hits_.load(), disk_hits_.load(), compiles_.load(), corrupt_.load()};
}

void BinaryCache::clear_memory() {
  std::lock_guard lock(mutex_);
  memory_.clear();
}

std::vector<BinaryCache::Entry> BinaryCache::list() const {
  std::vector<Entry> entries;
  std::error_code ec;
  if (!fs::is_directory(dir_, ec)) return entries;
  for (const auto& file : fs::directory_iterator(dir_, ec)) {
    if (file.path().extension() != ".json") continue;
    Entry e;
    e.name = file.path().stem().string();
    try {
      json meta = json::parse(read_file(file.path()).value_or("{}"));
      e.uri = meta.value("uri", "?");
      e.bytes = file.file_size() + meta.value("image_bytes", uint64_t{0});
      if (std::error_code ec2; fs::exists(dir_ / (e.name + ".ptx"), ec2))
        e.bytes += fs::file_size(dir_ / (e.name + ".ptx"), ec2);
    } catch (const std::exception&) {
      e.uri = "(unreadable metadata)";
    }
    entries.push_back(std::move(e));
  }
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) { return a.name < b.name; });
  return entries;
}

size_t BinaryCache::clear_disk() {
  size_t removed = 0;
  std::error_code ec;
  if (!fs::is_directory(dir_, ec)) return 0;
  for (const auto& file : fs::directory_iterator(dir_, ec)) {
    if (file.path().extension() == ".json") ++removed;
    fs::remove(file.path(), ec);
  }
  clear_memory();
  return removed;
}

}  // namespace moejit
