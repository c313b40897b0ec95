// The rungs of the tuning-cache lookup ladder (ARCHITECTURE.md), best first. One enum for the
// lookup, the runtime's run summary and the logs.
#pragma once

namespace moejit {

enum class Rung {
  exact = 0,           // a decision for this key whose validators all match
  nearest_bucket = 1,  // the same problem at the nearest tuned token bucket, validators matching
  same_arch = 2,       // tuned on another device of the same arch, template unchanged
  shipped = 3,         // a bundle shipped with moejit, measured on this device model, template unchanged
  heuristic = 4,       // the KernelSpec's built-in choice
};
inline constexpr int kRungCount = 5;
const char* to_string(Rung rung);  // "exact", "nearest_bucket", "same_arch", "shipped", "heuristic"
// Served by a measured decision (any rung above the heuristic).
inline bool is_tuned(Rung rung) {
  return rung != Rung::heuristic;
}

}  // namespace moejit
