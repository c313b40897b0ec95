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
  virtual std::string family() const = 0;
  // "cuda" or "host".
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

// The specs built into moejit (templates/registry.cpp lists them explicitly: no static-init magic).
const std::vector<std::unique_ptr<KernelSpec>>& builtin_specs();
// Throws Error naming the known families when `family` is unknown.
const KernelSpec& find_spec(std::string_view family);

}  // namespace moejit
