// `moejit cache show|clear`: the binary (kernel) cache.
#include <iostream>

#include "binary_cache.hpp"
#include "commands.hpp"

namespace moejit::cli {

void add_cache_command(CLI::App& app) {
  auto* cache = app.add_subcommand("cache", "Inspect or clear the kernel cache");
  cache->require_subcommand(1);
  auto* show = cache->add_subcommand("show", "List cached kernels");
  show->callback([] {
    auto& c = BinaryCache::global();
    auto entries = c.list();
    std::cout << "kernel cache " << c.directory().string() << ": " << entries.size() << " entries\n";
    for (const auto& e : entries) std::cout << "  " << e.uri << "  " << e.bytes << " B  " << e.name << "\n";
  });
  add_tuning_cache_subcommands(*cache);
  auto* clear = cache->add_subcommand("clear", "Remove every cached kernel (they are rebuilt on demand)");
  clear->callback([] {
    auto& c = BinaryCache::global();
    std::cout << "removed " << c.clear_disk() << " kernel(s) from " << c.directory().string() << "\n";
  });
}

}  // namespace moejit::cli
