// Helpers shared by the routing tests: a Kernel that runs a host loop (the same launch helpers drive
// it as drive the GPU kernels), random routing inputs and tolerance checks.
#pragma once
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "common/host_device.h"
#include "moejit/abi/host_launch.h"
#include "moejit/backend.hpp"
#include "moejit/problem.hpp"
#include "routing/routing_gate.h"
#include "routing_reference.hpp"

namespace moejit::test {

// A host loop behind the Kernel interface: launch() hands the argument array to the loop, which
// runs serially (no HostLaunch: the host backend's worker threads are tested through the JIT).
class FunctionKernel final : public Kernel {
 public:
  using Fn = void (*)(void**, const HostLaunch*);
  explicit FunctionKernel(Fn fn, std::string name = "host-loop") : fn_(fn), name_(std::move(name)) {}
  void launch(const LaunchDims&, void** args) override { fn_(args, nullptr); }
  const std::string& name() const override { return name_; }

 private:
  Fn fn_;
  std::string name_;
};

// The kernels' gate parameters for a reference router.
inline GateParams to_params(const RefRouter& r) {
  GateParams p;
  p.score = r.sigmoid ? kScoreSigmoid : kScoreSoftmax;
  p.renormalize = r.renormalize;
  p.scaling = static_cast<float>(r.scaling);
  p.n_groups = r.n_groups;
  p.topk_groups = r.topk_groups;
  return p;
}

inline DeviceDescription host_device() {
  DeviceDescription d;
  d.backend = "host";
  d.name = "test host";
  return d;
}

inline Problem routing_problem(Family family, int64_t experts, int64_t top_k, int64_t tokens, int64_t width = 64,
                               DType dtype = DType::bf16) {
  return Problem(family, dtype, RoutingShape{experts, top_k, width}, tokens);
}

inline std::vector<float> random_floats(size_t n, std::mt19937& rng, float lo = -3.0f, float hi = 3.0f) {
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

enum class Load { uniform, skewed, one_expert };

// K distinct experts per token: uniform, skewed (most choices on a few experts, many experts empty)
// or "one expert" (every token picks experts 0..K-1: expert 0 gets all tokens, experts >= K none).
inline std::vector<int> random_choices(int64_t tokens, int experts, int top_k, Load load, std::mt19937& rng) {
  std::vector<int> index(tokens * top_k);
  std::vector<int> pool(experts);
  for (int64_t t = 0; t < tokens; ++t) {
    for (int e = 0; e < experts; ++e) pool[e] = e;
    for (int r = 0; r < top_k; ++r) {
      int pick = r;
      if (load == Load::uniform) pick = r + static_cast<int>(rng() % (experts - r));
      if (load == Load::skewed) {
        const int span = std::max(top_k + 2, experts / 8) - r;
        pick = r + static_cast<int>(rng() % std::min(span, experts - r));
      }
      std::swap(pool[r], pool[pick]);
      index[t * top_k + r] = pool[r];
    }
  }
  return index;
}

template <typename T>
std::vector<T> to_storage(const std::vector<float>& v) {
  std::vector<T> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = from_float<T>(v[i]);
  return out;
}

template <typename T>
std::vector<float> to_floats(const std::vector<T>& v) {
  std::vector<float> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = to_float(v[i]);
  return out;
}

// Fill with 0xFF bytes: NaN floats, -1 ints; unwritten outputs fail the checks.
template <typename T>
std::vector<T> poisoned(size_t n) {
  std::vector<T> v(n);
  if (n) std::memset(static_cast<void*>(v.data()), 0xFF, n * sizeof(T));
  return v;
}

template <typename T>
bool same_bits(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0);
}

// |got - want| <= abs + |want| * rel (NaN fails).
inline ::testing::AssertionResult near(double got, double want, double abs, double rel, const std::string& what) {
  if (std::abs(got - want) <= abs + std::abs(want) * rel) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << what << ": got " << got << ", want " << want << " (tol abs " << abs
                                       << " + rel " << rel << ")";
}

}  // namespace moejit::test
