// The lookup ladder: which config to run for a problem on this device.
//   exact           a decision for this key whose validators all match
//   nearest_bucket  same problem at the nearest tuned token bucket, validators matching
//   same_arch       same key (or nearest bucket) tuned on another device of the same arch, template unchanged
//   shipped         same key (or nearest bucket) from a bundle shipped with moejit (shipped.hpp),
//                   measured on this device model, template unchanged
//   heuristic       the KernelSpec's built-in choice
// The rung is returned and logged at MOEJIT_LOG=info (once per problem key), never silent; each
// rejected decision is logged with its reason. Counters say which rungs served a run.
#pragma once
#include <array>
#include <atomic>
#include <map>
#include <mutex>
#include <optional>
#include <string>

#include "decision.hpp"
#include "moejit/backend.hpp"
#include "moejit/kernel_spec.hpp"
#include "moejit/rung.hpp"
#include "shipped.hpp"
#include "tuning_store.hpp"

namespace moejit {

struct LookupResult {
  Config config;
  Rung rung = Rung::heuristic;
  std::optional<Decision> decision;  // the decision that answered (not for the heuristic rung)
};

struct RungCounts {
  std::array<long, kRungCount> served{};  // indexed by Rung
  long operator[](Rung r) const { return served[static_cast<int>(r)]; }
  long total() const {
    long n = 0;
    for (long s : served) n += s;
    return n;
  }
};

class TuningLookup {
 public:
  // `shipped_dir`: the bundles of the shipped rung (empty: none).
  explicit TuningLookup(TuningStore store = TuningStore(TuningStore::default_dir()),
                        std::filesystem::path shipped_dir = shipped_bundle_dir());

  LookupResult lookup(const KernelSpec& spec, const Problem& problem, const DeviceDescription& device,
                      const Compiler& compiler);
  LookupResult lookup(const KernelSpec& spec, const Problem& problem, Backend& backend) {
    return lookup(spec, problem, backend.device(), backend.compiler());
  }

  // Which rungs answered this object's lookups (the runtime reports these after a run).
  RungCounts counts() const;
  // Re-reads the store on the next lookup (after a tune or an import).
  void refresh();

 private:
  const std::vector<Decision>& decisions_of(Family family);
  const std::vector<Decision>& shipped_of(Family family);  // read on first use, warnings once
  // The best shipped decision for `problem` on this device model, or null.
  const Decision* best_shipped(const KernelSpec& spec, const Problem& problem, const DeviceDescription& device,
                               const Compiler& compiler);
  const std::string& hash_of(const KernelSpec& spec, const Decision& d, const DeviceDescription& device,
                             const Compiler& compiler);
  // Why a decision of this arch no longer applies to its own problem ("" if it does): its config
  // left the spec's space, no longer renders, or renders to another template hash.
  std::string stale_reason(const KernelSpec& spec, const Decision& d, const DeviceDescription& device,
                           const std::string& current_hash);

  TuningStore store_;
  std::filesystem::path shipped_dir_;
  std::optional<ShippedDecisions> shipped_;
  std::mutex mutex_;
  std::map<Family, std::vector<Decision>> loaded_;
  std::map<std::string, std::string> hashes_;  // template hash by key + config + arch + compiler
  std::map<std::string, bool> in_space_;       // config in the spec's space, by key + config + arch
  std::array<std::atomic<long>, kRungCount> served_{};
};

// Process-wide counts over every TuningLookup.
RungCounts global_rung_counts();

}  // namespace moejit
