#include "moejit/binary.hpp"

namespace moejit {

const ResourceUsage* Binary::resources_of(const std::string& entry) const {
  const std::string& sym = symbol(entry);
  for (const auto& r : resources)
    if (r.function == sym) return &r;
  return nullptr;
}

}  // namespace moejit
