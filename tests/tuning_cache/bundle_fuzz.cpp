// Fuzz target for the bundle and store-file parsers: any input either parses or throws Error, never
// crashes; what parses renders back to text that parses to the same decisions.
// Built with libFuzzer when a clang with -fsanitize=fuzzer is found (see CMakeLists.txt), and always
// with fuzz_replay_main.cpp as a deterministic mutation driver for CI.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "bundle.hpp"
#include "moejit/error.hpp"
#include "tuning_store.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    moejit::Bundle b = moejit::parse_bundle(text, "fuzz");
    moejit::Bundle again = moejit::parse_bundle(moejit::render_bundle(b), "fuzz-rendered");
    if (!(again.decisions == b.decisions)) std::abort();  // a round trip must be lossless
  } catch (const moejit::Error&) {
  }
  try {
    auto decisions = moejit::parse_store_file(std::string(text), "fuzz");
    if (moejit::parse_store_file(moejit::render_store_file(moejit::Family::swiglu_fwd, decisions), "r") != decisions)
      std::abort();
  } catch (const moejit::Error&) {
  }
  return 0;
}
