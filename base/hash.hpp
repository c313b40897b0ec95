// Content hashing for cache keys: XXH3-128 from xxHash (header-only), printed as 32 hex digits.
#pragma once
#include <string>
#include <string_view>

namespace moejit {

class Hasher {
 public:
  Hasher();
  ~Hasher();
  Hasher(const Hasher&) = delete;
  Hasher& operator=(const Hasher&) = delete;
  // Each field is length-prefixed so that ("ab","c") and ("a","bc") differ.
  Hasher& field(std::string_view bytes);
  std::string hex() const;

 private:
  void* state_;
};

std::string hash_hex(std::string_view bytes);

}  // namespace moejit
