#include "search.hpp"

#include <algorithm>
#include <limits>
#include <random>
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
    if (!seeded_) {
      seeded_ = true;
      add(heuristic_);
      // Seeds drawn with a fixed generator spread over every parameter (evenly spaced indices
      // would vary only the slowest-changing one), so different basins get a walker.
      std::mt19937 rng(12345);
      for (size_t tries = 0; batch.size() < seeds_ + 1 && tries < 16 * seeds_; ++tries)
        add(std::uniform_int_distribution<size_t>(0, configs_.size() - 1)(rng));
      if (!batch.empty()) return batch;
    }
    // Every seed is a walker doing coordinate descent in its own basin: expand its centre (measure
    // every one-parameter move), step to the best config seen around it, stop when none is better.
    // Walkers that meet merge. Then the best `beam_` configs overall are expanded as a final polish.
    if (walkers_.empty() && !walking_done_) {
      for (const auto& [i, t] : times)
        if (t < std::numeric_limits<double>::infinity()) walkers_.insert(i);
    }
    std::set<size_t> moved;
    for (size_t centre : walkers_) {
      size_t best = centre;
      for (size_t i = 0; i < configs_.size(); ++i) {
        if (distance(configs_[i], configs_[centre]) != 1) continue;
        auto it = times.find(i);
        if (it != times.end() && it->second < times.at(best)) best = i;
      }
      if (best != centre)
        moved.insert(best);
      else if (expanded_.insert(centre).second)
        moved.insert(centre);  // expand before giving up
    }
    walkers_.clear();
    for (size_t centre : moved) {
      if (expanded_.count(centre) && times.count(centre)) {
        bool fresh = false;
        for (size_t i = 0; i < configs_.size(); ++i)
          if (distance(configs_[i], configs_[centre]) == 1 && !times.count(i) && !issued_.count(i)) fresh = true;
        if (!fresh) continue;
      }
      expanded_.insert(centre);
      walkers_.insert(centre);
      for (size_t i = 0; i < configs_.size(); ++i)
        if (distance(configs_[i], configs_[centre]) == 1) add(i);
    }
    if (!batch.empty()) return batch;
    walking_done_ = true;
    walkers_.clear();
    std::vector<std::pair<double, size_t>> ranked;
    for (const auto& [i, t] : times) ranked.emplace_back(t, i);
    std::sort(ranked.begin(), ranked.end());
    for (size_t b = 0; b < beam_ && b < ranked.size(); ++b) {
      if (ranked[b].first == std::numeric_limits<double>::infinity()) break;
      for (size_t i = 0; i < configs_.size(); ++i)
        if (distance(configs_[i], configs_[ranked[b].second]) == 1) add(i);
    }
    return batch;
  }

 private:
  const std::vector<Config>& configs_;
  size_t heuristic_, seeds_, beam_;
  bool seeded_ = false, walking_done_ = false;
  std::set<size_t> issued_, expanded_, walkers_;
};

}  // namespace

std::unique_ptr<Search> make_exhaustive_search(size_t count) {
  return std::make_unique<Exhaustive>(count);
}

std::unique_ptr<Search> make_local_search(const std::vector<Config>& configs, size_t heuristic, size_t seeds,
                                          size_t beam) {
  return std::make_unique<LocalSearch>(configs, heuristic, seeds, beam);
}

std::unique_ptr<Search> make_search(const std::vector<Config>& configs, size_t heuristic, size_t exhaustive_limit) {
  if (configs.size() <= exhaustive_limit) return make_exhaustive_search(configs.size());
  return make_local_search(configs, heuristic);
}

}  // namespace moejit
