// Search strategies. The claim "local search finds the exhaustive winner or one within 3% of it"
// is measured here on 40 random synthetic landscapes shaped like tile-size spaces: a separable
// bowl per parameter with a second basin up to 10% worse (two good tile shapes), a pairwise
// interaction, and +-5% unstructured noise (what makes a greedy search stop early). Each landscape has 4 parameters,
// 6*6*5*4 = 720 configs.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <random>

#include "search.hpp"

namespace moejit {
namespace {

std::vector<Config> grid() {
  std::vector<Config> configs;
  for (int64_t a = 0; a < 6; ++a)
    for (int64_t b = 0; b < 6; ++b)
      for (int64_t c = 0; c < 5; ++c)
        for (int64_t d = 0; d < 4; ++d) configs.push_back(Config{{"a", a}, {"b", b}, {"c", c}, {"d", d}});
  return configs;
}

struct Landscape {
  double opt[4], opt2[4], weight[4], coupling, second;  // second: the other basin's floor (>= 1)
  std::vector<double> noise;
  double operator()(const Config& c, size_t index) const {
    const double x[4] = {double(c.get("a")), double(c.get("b")), double(c.get("c")), double(c.get("d"))};
    double t = 1.0, t2 = second;
    for (int i = 0; i < 4; ++i) {
      t += weight[i] * (x[i] - opt[i]) * (x[i] - opt[i]);
      t2 += weight[i] * (x[i] - opt2[i]) * (x[i] - opt2[i]);
    }
    t += coupling * std::fabs((x[0] - opt[0]) * (x[1] - opt[1]));
    return std::min(t, t2) * noise[index];
  }
};

Landscape random_landscape(std::mt19937& rng, size_t n) {
  std::uniform_real_distribution<double> u(0, 1);
  Landscape l;
  const double sizes[4] = {6, 6, 5, 4};
  for (int i = 0; i < 4; ++i) {
    l.opt[i] = u(rng) * (sizes[i] - 1);
    l.opt2[i] = u(rng) * (sizes[i] - 1);
    l.weight[i] = 0.01 + 0.2 * u(rng);
  }
  l.coupling = 0.3 * u(rng);
  l.second = 1.0 + 0.1 * u(rng);
  for (size_t i = 0; i < n; ++i) l.noise.push_back(0.95 + 0.10 * u(rng));
  return l;
}

// Runs a search to completion; returns (best time found, candidates measured).
std::pair<double, size_t> run(Search& search, const std::vector<Config>& configs, const Landscape& cost) {
  std::map<size_t, double> times;
  for (;;) {
    auto batch = search.next(times);
    if (batch.empty()) break;
    for (size_t i : batch) times[i] = cost(configs[i], i);
  }
  double best = std::numeric_limits<double>::infinity();
  for (const auto& [i, t] : times) best = std::min(best, t);
  return {best, times.size()};
}

TEST(Search, ExhaustiveMeasuresEverythingOnceAndSkipsJournaled) {
  auto s = make_exhaustive_search(10);
  std::map<size_t, double> times = {{3, 1.0}, {7, 2.0}};
  auto batch = s->next(times);
  EXPECT_EQ(batch.size(), 8u);
  EXPECT_EQ(std::count(batch.begin(), batch.end(), 3), 0);
  EXPECT_TRUE(s->next(times).empty());
}

TEST(Search, MakeSearchPicksByTheExhaustiveLimit) {
  auto configs = grid();
  EXPECT_EQ(make_search(configs, 0, 1000)->name(), "exhaustive");
  EXPECT_EQ(make_search(configs, 0, 64)->name(), "local_search");
}

TEST(Search, LocalSearchIsWithinThreePercentOfExhaustive) {
  const auto configs = grid();
  std::mt19937 rng(2026);
  size_t exact = 0, measured = 0;
  double worst = 0;
  const int landscapes = 40;
  for (int k = 0; k < landscapes; ++k) {
    const Landscape cost = random_landscape(rng, configs.size());
    auto exhaustive = make_exhaustive_search(configs.size());
    const double optimum = run(*exhaustive, configs, cost).first;
    auto local = make_local_search(configs, static_cast<size_t>(k * 17) % configs.size());
    auto [found, count] = run(*local, configs, cost);
    const double gap = found / optimum - 1;
    worst = std::max(worst, gap);
    exact += gap == 0;
    measured += count;
    EXPECT_LE(gap, 0.03) << "landscape " << k;
  }
  const double fraction = double(measured) / (landscapes * configs.size());
  std::printf("local search: %zu/%d exact winners, worst gap %.2f%%, measured %.1f%% of the space\n", exact, landscapes,
              100 * worst, 100 * fraction);
  EXPECT_LT(fraction, 0.45);  // and much cheaper than exhaustive (measured: 35% of 720 configs)
}

}  // namespace
}  // namespace moejit
