#include "validators.hpp"

#include "hash.hpp"
#include "include_hash.hpp"

namespace moejit {

std::string template_hash(const KernelSpec& spec, const Problem& problem, const Config& config,
                          const DeviceDescription& device, const Compiler& compiler) {
  const Source source = spec.render(problem, config, device);
  Hasher hasher;
  hasher.field(source.code).field(hash_includes(source.code, compiler.include_dirs()));
  for (const std::string& option : source.options) hasher.field(option);
  return hasher.hex();
}

Validators current_validators(const KernelSpec& spec, const Problem& problem, const Config& config,
                              const DeviceDescription& device, const Compiler& compiler) {
  Validators v;
  v.backend = device.backend;
  v.device = device.name;
  v.arch = device.arch;
  v.features = device.features;
  v.compute_units = device.compute_units;
  v.driver = device.driver;
  v.compiler = compiler.id();
  v.template_hash = template_hash(spec, problem, config, device, compiler);
  return v;
}

}  // namespace moejit
