// Fuzz target for every JSON file moejit reads from users: tuning bundles, tuning-store (decision)
// files, a single decision record, and model configs. Any input either parses or throws Error,
// never crashes; what parses renders back to text that parses to the same value; a model config
// that parses has a parameter count or an Error (never a wrapped one: see moejit/checked.hpp).
// Built with libFuzzer when a clang with -fsanitize=fuzzer is found (see CMakeLists.txt), and always
// with fuzz_replay_main.cpp as a deterministic mutation driver for CI.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string_view>

#include "bundle.hpp"
#include "model_config.hpp"
#include "moejit/error.hpp"
#include "param_count.hpp"
#include "tuning_store.hpp"

namespace {

template <typename Parse>
void expect_error_or_value(Parse parse) {
  try {
    parse();
  } catch (const moejit::Error&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  expect_error_or_value([&] {
    moejit::Bundle b = moejit::parse_bundle(text, "fuzz");
    moejit::Bundle again = moejit::parse_bundle(moejit::render_bundle(b), "fuzz-rendered");
    if (!(again.decisions == b.decisions)) std::abort();  // a round trip must be lossless
  });
  expect_error_or_value([&] {
    auto decisions = moejit::parse_store_file(std::string(text), "fuzz");
    if (moejit::parse_store_file(moejit::render_store_file(moejit::Family::swiglu_fwd, decisions), "r") != decisions)
      std::abort();
  });
  const auto json = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded()) return 0;
  expect_error_or_value([&] {
    const moejit::Decision d = moejit::decision_from_json(json, "fuzz");
    if (!(moejit::decision_from_json(moejit::to_json(d), "r") == d)) std::abort();
  });
  expect_error_or_value([&] {
    const moejit::ModelConfig c = moejit::model_config_from_json(json, "fuzz");
    if (!(moejit::model_config_from_json(moejit::to_json(c), "r") == c)) std::abort();
    moejit::count_params(c);
  });
  return 0;
}
