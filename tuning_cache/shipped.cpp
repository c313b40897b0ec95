#include "shipped.hpp"

#include <algorithm>
#include <cstdlib>

#include "bundle.hpp"
#include "files.hpp"
#include "install_dirs.hpp"
#include "moejit/error.hpp"

namespace fs = std::filesystem;

namespace moejit {

fs::path shipped_bundle_dir() {
  if (const char* dir = std::getenv("MOEJIT_SHIPPED_DIR")) return dir;  // set and empty: no shipped rung
  if (install_dirs().installed()) return install_dirs().data / "bundles";
  return MOEJIT_SOURCE_SHIPPED_DIR;
}

ShippedDecisions load_shipped(const fs::path& dir) {
  ShippedDecisions shipped;
  std::error_code ec;
  if (dir.empty() || !fs::is_directory(dir, ec)) return shipped;
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(dir, ec))
    if (entry.is_regular_file() && entry.path().extension() == ".json") files.push_back(entry.path());
  std::sort(files.begin(), files.end());
  for (const fs::path& file : files) {
    try {
      const auto text = read_file(file);
      if (!text) throw Error("cannot be read");
      const Bundle bundle = parse_bundle(*text, file.string());
      for (const Decision& d : bundle.decisions) shipped.by_family[d.family()].push_back(d);
      shipped.bundles.push_back(file.string());
    } catch (const Error& e) {
      shipped.rejected.push_back(file.string() + ": " + e.what());
    }
  }
  return shipped;
}

}  // namespace moejit
