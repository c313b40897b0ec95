// Tuning decisions that ship with moejit: bundles (docs/tuning_cache.md) measured on a named device
// model (an H100 SXM, say) and committed under tuning_cache/bundles/, installed to
// <prefix>/share/moejit/bundles. The lookup ladder's `shipped` rung serves them on a device of the
// same model (validators: backend, arch, device name, compute units) whose templates still render
// to the hashes they were tuned with, so a fresh machine trains with tuned kernels before any
// `moejit tune`.
#pragma once
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "decision.hpp"

namespace moejit {

// $MOEJIT_SHIPPED_DIR (empty: none), else the installed bundles, else the source tree's.
std::filesystem::path shipped_bundle_dir();

struct ShippedDecisions {
  std::map<Family, std::vector<Decision>> by_family;
  std::vector<std::string> bundles;   // the files read, in order
  std::vector<std::string> rejected;  // "<file>: <why>" for a bundle that did not parse (skipped)
};

// Every *.json bundle of `dir`, in file name order; a missing dir holds none. A bundle that does
// not parse is skipped whole and named in `rejected` (the lookup warns once): shipping a damaged
// file must not stop anyone's training.
ShippedDecisions load_shipped(const std::filesystem::path& dir);

}  // namespace moejit
