// KernelSpec: a kernel template plus its config space, its static constraints and its renderer.
// Config choice is pure: space(), prune_reason(), heuristic() and render() depend on their
// arguments only, so they are tested without any device.
#pragma once
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "moejit/backend.hpp"
#include "moejit/config.hpp"
#include "moejit/problem.hpp"
#include "moejit/source.hpp"

namespace moejit {

class KernelSpec {
 public:
  virtual ~KernelSpec() = default;
  virtual Family family() const = 0;
  // "cuda" or "host": the registry (templates/registry.cpp) holds one spec per (family, backend)
  // the family table declares; a spec may serve both backends (one per-row source, two wrappers).
  virtual bool supports_backend(std::string_view backend) const = 0;
  // Every config the template offers for this problem on this device, before pruning.
  virtual std::vector<Config> space(const Problem& problem, const DeviceDescription& device) const = 0;
  // Empty if the config can run on this device for this problem; otherwise why not
  // ("shared memory 240 KiB > 227 KiB opt-in", "d_expert 1000 % vec 8 != 0").
  virtual std::string prune_reason(const Problem& problem, const Config& config,
                                   const DeviceDescription& device) const = 0;
  // The built-in heuristic: a config that runs for any problem the family supports.
  virtual Config heuristic(const Problem& problem, const DeviceDescription& device) const = 0;
  virtual Source render(const Problem& problem, const Config& config, const DeviceDescription& device) const = 0;
};

// The spec that runs `family` on `backend` ("host" | "cuda"); throws Error naming the backends that
// implement the family when `backend` is not one of them.
const KernelSpec& spec_for(Family family, std::string_view backend);
// Every (family, backend) spec of the family table, in family order (the compile and test sweeps).
struct RegisteredSpec {
  Family family;
  std::string_view backend;
  const KernelSpec* spec;
};
std::vector<RegisteredSpec> registered_specs();

}  // namespace moejit
