// Deterministic stand-in for libFuzzer's driver (GCC builds, CI): feeds every seed file, every
// truncation of it, and `iterations` random byte-level mutations (flip, insert, delete, splice
// JSON tokens) to LLVMFuzzerTestOneInput. Usage: bundle_fuzz_replay ITERATIONS SEED_FILE...
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {
void feed(const std::string& s) {
  LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}
}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s ITERATIONS SEED_FILE...\n", argv[0]);
    return 2;
  }
  const long iterations = std::atol(argv[1]);
  std::vector<std::string> seeds;
  for (int i = 2; i < argc; ++i) {
    std::ifstream in(argv[i], std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    seeds.push_back(ss.str());
  }
  for (const auto& s : seeds)
    for (size_t n = 0; n <= s.size(); ++n) feed(s.substr(0, n));
  const char* tokens[] = {"{",
                          "}",
                          "[",
                          "]",
                          ",",
                          ":",
                          "\"",
                          "null",
                          "true",
                          "-1",
                          "1e999",
                          "0",
                          "\"\"",
                          "\"moejit_bundle\"",
                          "\"decisions\"",
                          "\\u0000",
                          "9223372036854775807",
                          "65536",
                          "\"moe\"",
                          "\"alternatives\"",
                          "4294967296",
                          "-9223372036854775808"};
  std::mt19937_64 rng(20261125);
  for (long i = 0; i < iterations; ++i) {
    std::string s = seeds[rng() % seeds.size()];
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits && !s.empty(); ++e) {
      const size_t at = rng() % s.size();
      switch (rng() % 4) {
        case 0:
          s[at] = static_cast<char>(rng());
          break;
        case 1:
          s.erase(at, 1 + rng() % 16);
          break;
        case 2:
          s.insert(at, tokens[rng() % (sizeof tokens / sizeof *tokens)]);
          break;
        case 3:
          s.insert(at, s.substr(rng() % s.size(), rng() % 64));
          break;
      }
    }
    feed(s);
  }
  std::printf("fed %zu seeds, their truncations and %ld mutations: no crash\n", seeds.size(), iterations);
  return 0;
}
