#include "search.hpp"

#include <algorithm>
#include <set>

namespace moejit {
namespace {

class Exhaustive final : public Search {
 public:
  explicit Exhaustive(size_t count) : count_(count) {}
  std::string name() const override { return "exhaustive"; }
  std::vector<size_t> next(const std::map<size_t, double>& times) override {
    std::vector<size_t> batch;
    if (issued_) return batch;
    issued_ = true;
    for (size_t i = 0; i < count_; ++i)
      if (!times.count(i)) batch.push_back(i);
    return batch;
  }

 private:
  size_t count_;
  bool issued_ = false;
};

// Number of parameters in which two configs differ (configs of one spec share parameter names).
int distance(const Config& a, const Config& b) {
  int d = 0;
  for (const auto& [name, value] : a.params())
    if (b.get_or(name, -1) != value) ++d;
  return d;
}

class LocalSearch final : public Search {
 public:
  LocalSearch(const std::vector<Config>& configs, size_t heuristic, size_t seeds, size_t beam)
      : configs_(configs), heuristic_(heuristic), seeds_(seeds), beam_(beam) {}
  std::string name() const override { return "local_search"; }

  std::vector<size_t> next(const std::map<size_t, double>& times) override {
    std::vector<size_t> batch;
    auto add = [&](size_t i) {
      if (i < configs_.size() && !times.count(i) && !issued_.count(i)) {
        issued_.insert(i);
        batch.push_back(i);
      }
    };
    if (issued_.empty()) {
      add(heuristic_);
      // Evenly spread seeds cover different corners of the space.
      const size_t n = configs_.size();
      for (size_t s = 0; s < seeds_ && s < n; ++s) add(s * n / seeds_ + n / (2 * seeds_));
      return batch;
    }
    // Move from the best `beam_` configs measured so far.
    std::vector<std::pair<double, size_t>> ranked;
    for (const auto& [i, t] : times) ranked.emplace_back(t, i);
    std::sort(ranked.begin(), ranked.end());
    for (size_t b = 0; b < beam_ && b < ranked.size(); ++b) {
      const Config& centre = configs_[ranked[b].second];
      for (size_t i = 0; i < configs_.size(); ++i)
        if (distance(configs_[i], centre) == 1) add(i);
    }
    return batch;
  }

 private:
  const std::vector<Config>& configs_;
  size_t heuristic_, seeds_, beam_;
  std::set<size_t> issued_;
};

}  // namespace

std::unique_ptr<Search> make_exhaustive_search(size_t count) { return std::make_unique<Exhaustive>(count); }

std::unique_ptr<Search> make_local_search(const std::vector<Config>& configs, size_t heuristic, size_t seeds,
                                          size_t beam) {
  return std::make_unique<LocalSearch>(configs, heuristic, seeds, beam);
}

std::unique_ptr<Search> make_search(const std::vector<Config>& configs, size_t heuristic, size_t exhaustive_limit) {
  if (configs.size() <= exhaustive_limit) return make_exhaustive_search(configs.size());
  return make_local_search(configs, heuristic);
}

}  // namespace moejit
