// Parses the resource report ptxas prints with -v (NVRTC: --ptxas-options=-v) into one
// ResourceUsage per entry function, so GPU-less tests can assert "no spills, within limits".
#pragma once
#include <string>
#include <vector>

#include "moejit/binary.hpp"

namespace moejit {

std::vector<ResourceUsage> parse_ptxas_report(const std::string& log);

}  // namespace moejit
