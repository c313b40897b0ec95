// Search strategies over the pruned space. The autotuner asks for batches of candidates (indices
// into the survivors) and reports each one's time; an empty batch ends the search.
//   exhaustive    every survivor (small spaces)
//   local_search  multi-start coordinate descent: the heuristic plus `seeds` configs spread over
//                 every parameter each start a walker that measures all one-parameter moves around
//                 it and steps to the best, until none improves; then the best `beam` configs are
//                 expanded once more. The "exhaustive winner or within 3%" claim is measured in
//                 tests/autotune/search_test.cpp: 40 random two-basin, noisy 720-config landscapes,
//                 40/40 exact winners while measuring ~35% of the space.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "moejit/config.hpp"

namespace moejit {

class Search {
 public:
  virtual ~Search() = default;
  virtual std::string name() const = 0;
  // `times`: index -> time for every candidate measured so far (infinity when not ok).
  virtual std::vector<size_t> next(const std::map<size_t, double>& times) = 0;
};

// Exhaustive when the space has at most `exhaustive_limit` configs, else local search seeded at
// `heuristic` (an index into `configs`, or configs.size() when the heuristic is not among them).
std::unique_ptr<Search> make_search(const std::vector<Config>& configs, size_t heuristic, size_t exhaustive_limit);
std::unique_ptr<Search> make_exhaustive_search(size_t count);
std::unique_ptr<Search> make_local_search(const std::vector<Config>& configs, size_t heuristic, size_t seeds = 6,
                                          size_t beam = 2);

}  // namespace moejit
