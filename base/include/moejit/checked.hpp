// int64 arithmetic that throws Error instead of wrapping. Sizes come from user configs and flags and
// can be absurd; a wrapped product prints as a plausible wrong number ("attention 0") or allocates
// garbage, an error names what was too large.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

#include "moejit/error.hpp"

namespace moejit {

[[noreturn]] inline void throw_overflow(std::string_view what) {
  throw Error(std::string(what) + " does not fit a 64-bit integer: the dimensions are too large");
}

inline int64_t checked_mul(int64_t a, int64_t b, std::string_view what) {
  int64_t r;
  if (__builtin_mul_overflow(a, b, &r)) throw_overflow(what);
  return r;
}

inline int64_t checked_add(int64_t a, int64_t b, std::string_view what) {
  int64_t r;
  if (__builtin_add_overflow(a, b, &r)) throw_overflow(what);
  return r;
}

}  // namespace moejit
