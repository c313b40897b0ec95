// Validators for the machine we are on, and the template hash of a (problem, config) rendering.
#pragma once
#include <string>

#include "decision.hpp"
#include "moejit/backend.hpp"
#include "moejit/kernel_spec.hpp"

namespace moejit {

// Hash of what the kernel's source is made of: the rendered code, its compile options and the
// content of every template file it includes (jit/include_hash), searched in the compiler's dirs.
std::string template_hash(const KernelSpec& spec, const Problem& problem, const Config& config,
                          const DeviceDescription& device, const Compiler& compiler);

// Validators for `device` + `compiler`, with the template hash of (problem, config).
Validators current_validators(const KernelSpec& spec, const Problem& problem, const Config& config,
                              const DeviceDescription& device, const Compiler& compiler);

}  // namespace moejit
