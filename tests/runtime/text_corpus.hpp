// A small byte-level training corpus for trainer tests: random words, 40 kB, the same every run.
#pragma once
#include <filesystem>
#include <fstream>
#include <random>
#include <string>

namespace moejit::runtime {

// Writes <dir>/corpus.txt and returns its path.
inline std::filesystem::path write_text_corpus(const std::filesystem::path& dir) {
  const char* words[] = {"the ", "quick ", "brown ", "fox ", "jumps ", "over ", "a ", "lazy ", "dog. ", "and\n"};
  std::mt19937_64 rng(7);
  std::string text;
  while (text.size() < 40000) text += words[rng() % 10];
  std::filesystem::path p = dir / "corpus.txt";
  std::ofstream(p) << text;
  return p;
}

}  // namespace moejit::runtime
