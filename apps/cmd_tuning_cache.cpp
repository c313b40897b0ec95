// `moejit cache export|import|merge|decisions`: the tuning cache's bundles (docs/tuning_cache.md).
// Added to the `cache` verb by apps/cmd_cache.cpp through add_tuning_cache_subcommands().
#include <iomanip>
#include <iostream>

#include "bundle.hpp"
#include "commands.hpp"
#include "files.hpp"
#include "moejit/error.hpp"
#include "tuning_store.hpp"

namespace moejit::cli {
namespace {

Bundle read_bundle(const std::string& path) {
  auto text = read_file(path);
  if (!text) throw Error("bundle " + path + " does not exist");
  return parse_bundle(*text, path);
}

void print_report(const TuningStore::WriteReport& r) {
  std::cout << r.added << " added, " << r.replaced << " replaced, " << r.unchanged << " unchanged, "
            << r.conflicts.size() << " conflict(s)\n";
  for (const auto& c : r.conflicts) std::cout << "  conflict: " << c << "\n";
}

}  // namespace

void add_tuning_cache_subcommands(CLI::App& cache) {
  auto out = std::make_shared<std::string>();
  auto* exp = cache.add_subcommand("export", "Write every tuning decision, with provenance, to a bundle file");
  exp->add_option("-o,--output", *out, "Bundle file to write")->required();
  exp->callback([out] {
    TuningStore store(TuningStore::default_dir());
    Bundle b = export_bundle(store);
    write_file_atomic(*out, render_bundle(b));
    std::cout << "exported " << b.decisions.size() << " decision(s) from " << store.directory().string() << " to "
              << *out << "\n";
  });

  auto in = std::make_shared<std::string>();
  auto* imp = cache.add_subcommand("import", "Add a bundle's decisions to the tuning cache (faster wins conflicts)");
  imp->add_option("file", *in, "Bundle file")->required();
  imp->callback([in] {
    Bundle b = read_bundle(*in);  // fully validated before the cache is touched
    TuningStore store(TuningStore::default_dir());
    std::cout << "importing " << b.decisions.size() << " decision(s) exported by " << b.exported.user << "@"
              << b.exported.host << " on " << b.exported.date << ": ";
    print_report(import_bundle(store, b));
  });

  auto a = std::make_shared<std::string>(), bpath = std::make_shared<std::string>(),
       c = std::make_shared<std::string>();
  auto* merge = cache.add_subcommand("merge", "Merge bundles A and B into C (the faster decision wins, both kept)");
  merge->add_option("a", *a, "First bundle")->required();
  merge->add_option("b", *bpath, "Second bundle")->required();
  merge->add_option("-o,--output", *c, "Merged bundle to write")->required();
  merge->callback([a, bpath, c] {
    std::vector<std::string> conflicts;
    Bundle merged = merge_bundles(read_bundle(*a), read_bundle(*bpath), &conflicts);
    write_file_atomic(*c, render_bundle(merged));
    std::cout << "merged " << merged.decisions.size() << " decision(s) into " << *c << ", " << conflicts.size()
              << " conflict(s)\n";
    for (const auto& x : conflicts) std::cout << "  conflict: " << x << "\n";
  });

  auto* list = cache.add_subcommand("decisions", "List the tuning decisions");
  list->callback([] {
    TuningStore store(TuningStore::default_dir());
    auto all = store.load_all();
    std::cout << "tuning cache " << store.directory().string() << ": " << all.size() << " decision(s)\n";
    for (const Decision& d : all)
      std::cout << "  " << d.uri() << "  " << std::setprecision(4) << d.time_ms << " ms  " << d.validators.backend
                << " " << d.validators.device << "  " << d.provenance.user << " " << d.provenance.date
                << (d.alternatives.empty() ? "" : "  +" + std::to_string(d.alternatives.size()) + " alt") << "\n";
  });
}

}  // namespace moejit::cli
