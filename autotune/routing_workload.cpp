#include "routing_workload.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <set>
#include <type_traits>

#include "common/host_device.h"
#include "moejit/error.hpp"
#include "routing_reference.hpp"
#include "workload_data.hpp"

namespace moejit {

struct RoutingWorkload::Reference {
  RefRouter router;
  GateParams params;
  float z_coef = 0.001f;
  LossParams loss{0.01f, 0.001f};
  float gamma = 0.125f;
  // Inputs.
  std::vector<float> logits, probs, lse, d_weight, aux, weight, bias;
  std::vector<int> index;       // (T, K): the plan's and rows' input; the gating's reference choice
  std::vector<char> src, rows;  // activations in the problem's dtype: (T, D), (R, D)
  RefPlan plan;
  // Expected outputs.
  std::vector<double> scores, lse_out;  // gate fwd: (T, E), (T)
  std::vector<double> expect;           // gate bwd: d_logits (T, E); the row steps compute theirs in check()
  std::vector<double> aux_scale, losses;
};

namespace {

bool gate_kind(Family k) {
  return k == Family::route_gate_fwd || k == Family::route_gate_bwd;
}
bool scatter_kind(Family k) {
  return k == Family::route_permute_fwd || k == Family::route_combine_bwd;
}
bool rows_kind(Family k) {
  return !gate_kind(k) && k != Family::route_plan;
}

std::vector<float> uniform(size_t n, float lo, float hi, std::mt19937_64& rng) {
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

// K distinct experts per token, popularity ~ 1 / (1 + e / 4); the last expert stays empty when E > K.
std::vector<int> skewed_choices(int64_t tokens, int experts, int top_k, std::mt19937_64& rng) {
  const int usable = experts > top_k ? experts - 1 : experts;
  std::vector<double> popularity(usable);
  for (int e = 0; e < usable; ++e) popularity[e] = 1.0 / (1.0 + e / 4.0);
  std::discrete_distribution<int> pick(popularity.begin(), popularity.end());
  std::vector<int> index(tokens * top_k);
  for (int64_t t = 0; t < tokens; ++t)
    for (int r = 0; r < top_k; ++r) {
      int e;
      do e = pick(rng);
      while (std::find(&index[t * top_k], &index[t * top_k + r], e) != &index[t * top_k + r]);
      index[t * top_k + r] = e;
    }
  return index;
}

// Bytes a step must read and write (its traffic; R estimated from the problem before prepare()).
double traffic_bytes(Family kind, const Problem& p) {
  const double T = static_cast<double>(p.tokens), E = static_cast<double>(p.routing().experts);
  const double K = static_cast<double>(p.routing().top_k),
               R = static_cast<double>(route_max_rows(p, -1, RoutingWorkload::kPadTo));
  const double row = static_cast<double>(p.routing().width) * static_cast<double>(dtype_bytes(p.dtype));
  switch (kind) {
    case Family::route_gate_fwd:
      return T * (2 * E * 4 + K * 8 + 4);
    case Family::route_gate_bwd:
      return T * (2 * E * 4 + K * 8);
    case Family::route_plan:
      return T * (3 * K * 4 + E * 4 + 4) + R * 4;
    case Family::route_permute_fwd:
      return T * row + R * row + T * K * 4;
    case Family::route_combine_bwd:
      return T * row + 2 * R * row + T * K * 12;
    case Family::route_combine_fwd:
    case Family::route_permute_bwd:
      return R * row + T * row + T * K * 8;
    default:
      return 0;  // not a routing family
  }
}

// Collects the first failure (as detail) and the largest error beyond tolerance.
struct Checker {
  CheckResult result{true, 0, ""};
  // what: the element's name, or a function that makes it (called only for a failure: the row
  // steps check hundreds of millions of elements).
  template <typename Name>
  bool value(const Name& what, double got, double want, double abs, double rel) {
    const double error = std::fabs(got - want);
    if (error <= abs + std::fabs(want) * rel) return true;  // NaN fails
    std::string name;
    if constexpr (std::is_invocable_v<Name>)
      name = what();
    else
      name = what;
    fail(name + " = " + std::to_string(got) + ", expected " + std::to_string(want));
    result.max_error = std::isnan(error) ? error : std::max(result.max_error, error);
    return false;
  }
  bool exact(const std::string& what, int64_t got, int64_t want) {
    if (got == want) return true;
    fail(what + " = " + std::to_string(got) + ", expected " + std::to_string(want));
    return false;
  }
  void fail(const std::string& detail) {
    if (result.ok) result.detail = detail;
    result.ok = false;
  }
};

std::string at(const char* name, int64_t i, int64_t width) {
  return std::string(name) + "[" + std::to_string(i / width) + ", " + std::to_string(i % width) + "]";
}

}  // namespace

size_t RoutingWorkload::bytes_per_copy(const Problem& problem) const {
  return static_cast<size_t>(traffic_bytes(kind_, problem));
}

Throughput RoutingWorkload::throughput(const Problem& problem, double time_ms) const {
  return {time_ms > 0 ? traffic_bytes(kind_, problem) / (time_ms * 1e-3) / 1e9 : 0.0, "GB/s"};
}

namespace {

// Gating: skewed logits (lower experts are preferred; the last expert, when E > K, is never
// chosen), their scores, log-sum-exp and top-k choice; gate_bwd also the logits' gradient.
void gate_reference(RoutingWorkload::Reference& r, Family kind, int64_t T, int E, int K, std::mt19937_64& rng) {
  std::normal_distribution<float> noise(0.0f, 1.0f);
  r.logits.resize(T * E);
  for (int64_t t = 0; t < T; ++t)
    for (int e = 0; e < E; ++e)
      r.logits[t * E + e] = (E > K && e == E - 1) ? -30.0f : noise(rng) + 2.0f * (1.0f - float(e) / E);
  r.scores.resize(T * E), r.lse_out.resize(T), r.index.resize(T * K);
  for (int64_t t = 0; t < T; ++t) {
    const std::vector<double> l(r.logits.begin() + t * E, r.logits.begin() + (t + 1) * E);
    const auto s = ref_scores(l.data(), r.router, &r.lse_out[t]);
    std::copy(s.begin(), s.end(), r.scores.begin() + t * E);
    const auto choice = ref_select(s, nullptr, r.router);
    std::copy(choice.begin(), choice.end(), r.index.begin() + t * K);
  }
  if (kind == Family::route_gate_bwd) {
    r.d_weight = uniform(T * K, -1.0f, 1.0f, rng);
    r.aux = uniform(E, 0.0f, 0.01f, rng);
    const std::vector<double> aux(r.aux.begin(), r.aux.end());
    r.expect.resize(T * E);
    for (int64_t t = 0; t < T; ++t) {
      const std::vector<double> l(r.logits.begin() + t * E, r.logits.begin() + (t + 1) * E);
      const auto g =
          ref_logit_grad(l.data(), &r.index[t * K], &r.d_weight[t * K], aux, T ? double(r.z_coef) / T : 0.0, r.router);
      std::copy(g.begin(), g.end(), r.expect.begin() + t * E);
    }
  }
}

// The plan's other inputs (probabilities, log-sum-exp, bias) and its auxiliary and z losses.
void plan_reference(RoutingWorkload::Reference& r, int64_t T, int E, int K, std::mt19937_64& rng) {
  r.probs = uniform(T * E, 0.0f, 1.0f, rng);
  r.lse = uniform(T, 0.0f, 5.0f, rng);
  r.bias = uniform(E, -0.1f, 0.1f, rng);
  r.aux_scale.resize(E);
  double aux = 0, z = 0;
  for (int e = 0; e < E; ++e) {
    double prob = 0;
    for (int64_t t = 0; t < T; ++t) prob += r.probs[t * E + e];
    const double f = T ? double(r.plan.counts[e]) / double(T * K) : 0.0;
    aux += T ? f * prob / T : 0.0;
    r.aux_scale[e] = T ? r.loss.aux_coef * E * f / T : 0.0;
  }
  for (int64_t t = 0; t < T; ++t) z += double(r.lse[t]) * r.lse[t];
  r.losses = {r.loss.aux_coef * E * aux, T ? r.loss.z_coef * z / T : 0.0};
}

// Permute / combine: the combine weights, the token activations (x or d_out, (T, D)) and the
// expert rows (y or d_permuted, (R, D)); check() computes what each step makes of them.
// Each step gets only the inputs it reads: at the largest buckets one is gigabytes.
void rows_inputs(RoutingWorkload::Reference& r, Family kind, ThreadPool& cpu, DType dtype, int64_t T, int64_t D, int K,
                 std::mt19937_64& rng) {
  const int64_t R = r.plan.offsets.back();
  r.weight = uniform(T * K, 0.0f, 1.0f, rng);
  const uint64_t src_seed = rng(), rows_seed = rng();
  if (scatter_kind(kind)) r.src = random_tensor(cpu, dtype, T * D, src_seed, -3.0f, 3.0f);
  if (kind != Family::route_permute_fwd) r.rows = random_tensor(cpu, dtype, R * D, rows_seed, -3.0f, 3.0f);
}

}  // namespace

void RoutingWorkload::prepare(Backend& backend, const Problem& problem, int copies, std::shared_ptr<ThreadPool> cpu) {
  if (rows_kind(kind_) && problem.routing().width <= 0)
    throw Error(problem.to_string() + ": the problem needs width > 0");
  backend_ = &backend;
  cpu_ = std::move(cpu);
  problem_ = problem;
  const int64_t T = problem.tokens, D = problem.routing().width;
  const int E = static_cast<int>(problem.routing().experts), K = static_cast<int>(problem.routing().top_k);
  auto ref = std::make_shared<Reference>();
  Reference& r = *ref;
  std::mt19937_64 rng(0x5eed1000u + static_cast<unsigned>(kind_));
  r.router.experts = E, r.router.top_k = K, r.router.renormalize = true;
  r.params.renormalize = 1;
  if (gate_kind(kind_)) {
    gate_reference(r, kind_, T, E, K, rng);
  } else {
    r.index = skewed_choices(T, E, K, rng);
    r.plan = ref_plan(r.index, T, E, K, -1, kPadTo);
  }
  if (kind_ == Family::route_plan) plan_reference(r, T, E, K, rng);
  if (rows_kind(kind_)) rows_inputs(r, kind_, *cpu_, problem.dtype, T, D, K, rng);
  ref_ = std::move(ref);
  sets_.clear();
  for (int c = 0; c < std::max(copies, 1); ++c) {
    sets_.emplace_back();
    allocate_set(sets_.back());
  }
}

void RoutingWorkload::allocate_set(Set& s) const {
  Backend& b = *backend_;
  const Reference& r = *ref_;
  const int64_t T = problem_.tokens, E = problem_.routing().experts, K = problem_.routing().top_k;
  const size_t act = dtype_bytes(problem_.dtype);
  if (gate_kind(kind_)) {
    s.logits = DeviceBuffer::from(b, r.logits);
    if (kind_ == Family::route_gate_fwd) {
      s.index = DeviceBuffer(b, T * K * 4), s.weight = DeviceBuffer(b, T * K * 4);
      s.probs = DeviceBuffer(b, T * E * 4), s.lse = DeviceBuffer(b, T * 4);
    } else {
      s.index = DeviceBuffer::from(b, r.index), s.d_weight_in = DeviceBuffer::from(b, r.d_weight);
      s.aux_in = DeviceBuffer::from(b, r.aux), s.d_logits = DeviceBuffer(b, T * E * 4);
    }
    return;
  }
  if (kind_ == Family::route_plan) {
    const Config any{{"warps", 1}};  // the workspace is largest for the smallest chunk
    s.index = DeviceBuffer::from(b, r.index), s.probs = DeviceBuffer::from(b, r.probs);
    s.lse = DeviceBuffer::from(b, r.lse), s.workspace = DeviceBuffer(b, route_plan_workspace_bytes(problem_, any));
    s.counts = DeviceBuffer(b, E * 4), s.dropped = DeviceBuffer(b, E * 4), s.offsets = DeviceBuffer(b, (E + 1) * 4);
    s.slot = DeviceBuffer(b, T * K * 4), s.row_source = DeviceBuffer(b, route_max_rows(problem_, -1, kPadTo) * 4);
    s.aux_scale = DeviceBuffer(b, E * 4), s.losses = DeviceBuffer(b, 2 * 4);
    return;
  }
  s.slot = DeviceBuffer::from(b, r.plan.slot), s.offsets = DeviceBuffer::from(b, r.plan.offsets);
  s.row_source = DeviceBuffer::from(b, r.plan.row_source), s.weight = DeviceBuffer::from(b, r.weight);
  if (!r.src.empty()) s.src = DeviceBuffer::from(b, r.src);
  if (!r.rows.empty()) s.rows = DeviceBuffer::from(b, r.rows);
  s.dst = DeviceBuffer(b, (scatter_kind(kind_) ? r.plan.offsets.back() : T) * problem_.routing().width * act);
  if (kind_ == Family::route_combine_bwd) s.d_weight = DeviceBuffer(b, T * K * 4);
}

// Floats are poisoned with 0xFF bytes (NaN), integers with 0x7F bytes (not -1: that is a valid slot
// and row_source value), so an unwritten output never passes.
std::vector<std::pair<DeviceBuffer*, uint8_t>> RoutingWorkload::outputs(Set& s) const {
  constexpr uint8_t kNan = 0xFF, kBigInt = 0x7F;
  switch (kind_) {
    case Family::route_gate_fwd:
      return {{&s.index, kBigInt}, {&s.weight, kNan}, {&s.probs, kNan}, {&s.lse, kNan}};
    case Family::route_gate_bwd:
      return {{&s.d_logits, kNan}};
    case Family::route_plan:
      return {{&s.workspace, kBigInt}, {&s.counts, kBigInt},     {&s.dropped, kBigInt}, {&s.offsets, kBigInt},
              {&s.slot, kBigInt},      {&s.row_source, kBigInt}, {&s.aux_scale, kNan},  {&s.losses, kNan}};
    default:
      return {{&s.dst, kNan}, {&s.d_weight, kNan}};
  }
}

void RoutingWorkload::launch(LoadedCandidate& c, Set& s) const {
  const Reference& r = *ref_;
  const Config& config = c.config;
  auto f = [](const DeviceBuffer& b) { return static_cast<float*>(b.get()); };
  auto i = [](const DeviceBuffer& b) { return static_cast<int*>(b.get()); };
  switch (kind_) {
    case Family::route_gate_fwd: {
      GateForwardArgs a;
      a.logits = f(s.logits), a.params = r.params, a.index = i(s.index), a.weight = f(s.weight);
      a.probs = f(s.probs), a.lse = f(s.lse);
      return launch_route_gate_fwd(*c.kernels.at(0), problem_, config, a);
    }
    case Family::route_gate_bwd: {
      GateBackwardArgs a;
      a.logits = f(s.logits), a.index = i(s.index), a.d_weight = f(s.d_weight_in), a.aux_scale = f(s.aux_in);
      a.params = r.params, a.grad.z_scale = route_z_scale(r.z_coef, problem_.tokens), a.d_logits = f(s.d_logits);
      return launch_route_gate_bwd(*c.kernels.at(0), problem_, config, a);
    }
    case Family::route_plan: {
      PlanArgs a;
      a.index = i(s.index), a.probs = f(s.probs), a.lse = f(s.lse), a.pad_to = kPadTo, a.loss = r.loss;
      a.workspace = s.workspace.get(), a.counts = i(s.counts), a.dropped = i(s.dropped), a.offsets = i(s.offsets);
      a.slot = i(s.slot), a.row_source = i(s.row_source), a.aux_scale = f(s.aux_scale), a.losses = f(s.losses);
      return launch_route_plan(*c.kernels.at(0), *c.kernels.at(1), *c.kernels.at(2), problem_, config, a);
    }
    case Family::route_permute_fwd:
    case Family::route_combine_bwd: {
      ScatterArgs a;
      a.src = s.src.get(), a.slot = i(s.slot), a.dst = s.dst.get(), a.offsets = i(s.offsets);
      a.row_source = i(s.row_source);
      if (kind_ == Family::route_combine_bwd) a.weight = f(s.weight), a.y = s.rows.get(), a.d_weight = f(s.d_weight);
      return launch_route_scatter(*c.kernels.at(0), problem_, config, a);
    }
    default: {
      GatherArgs a;
      a.rows = s.rows.get(), a.slot = i(s.slot), a.out = s.dst.get();
      if (kind_ == Family::route_combine_fwd) a.weight = f(s.weight);
      return launch_route_gather(*c.kernels.at(0), problem_, config, a);
    }
  }
}

void RoutingWorkload::run(LoadedCandidate& candidate, int copy) {
  launch(candidate, sets_[static_cast<size_t>(copy) % sets_.size()]);
}

CheckResult RoutingWorkload::check(LoadedCandidate& candidate) {
  Set& s = sets_.at(0);
  for (auto [out, poison] : outputs(s)) out->fill(poison);
  launch(candidate, s);
  backend_->synchronize();
  const Reference& r = *ref_;
  const int64_t T = problem_.tokens, E = problem_.routing().experts, K = problem_.routing().top_k;
  Checker c;
  if (kind_ == Family::route_gate_fwd) {
    const auto index = s.index.to_host<int>();
    const auto weight = s.weight.to_host<float>(), probs = s.probs.to_host<float>(), lse = s.lse.to_host<float>();
    for (int64_t t = 0; t < T && c.result.ok; ++t) {
      const int* got = &index[t * K];
      const std::vector<double> scores(r.scores.begin() + t * E, r.scores.begin() + (t + 1) * E);
      for (int64_t k = 0; k < K && c.result.ok; ++k) {
        const int want = r.index[t * K + k];
        const bool valid = got[k] >= 0 && got[k] < E && std::count(got, got + K, got[k]) == 1;
        if (!valid || (got[k] != want && std::fabs(scores[got[k]] - scores[want]) >= 1e-6))
          c.exact(at("index", t * K + k, K) + " (not a near tie)", got[k], want);
      }
      if (!c.result.ok) break;
      const auto w = ref_weights(scores, got, r.router);
      for (int64_t k = 0; k < K; ++k) c.value(at("weight", t * K + k, K), weight[t * K + k], w[k], 1e-5, 1e-5);
      for (int64_t e = 0; e < E; ++e) c.value(at("probs", t * E + e, E), probs[t * E + e], scores[e], 1e-5, 1e-5);
      c.value("lse[" + std::to_string(t) + "]", lse[t], r.lse_out[t], 1e-5, 1e-5);
    }
  } else if (kind_ == Family::route_gate_bwd) {
    const auto d_logits = s.d_logits.to_host<float>();
    for (int64_t i = 0; i < T * E; ++i) c.value(at("d_logits", i, E), d_logits[i], r.expect[i], 1e-6, 1e-4);
  } else if (kind_ == Family::route_plan) {
    const auto counts = s.counts.to_host<int>(), dropped = s.dropped.to_host<int>();
    const auto offsets = s.offsets.to_host<int>(), slot = s.slot.to_host<int>();
    const auto row_source = s.row_source.to_host<int>();
    const auto aux_scale = s.aux_scale.to_host<float>(), losses = s.losses.to_host<float>();
    for (int64_t e = 0; e < E; ++e) {
      c.exact("counts[" + std::to_string(e) + "]", counts[e], r.plan.counts[e]);
      c.exact("dropped[" + std::to_string(e) + "]", dropped[e], r.plan.dropped[e]);
      c.value("aux_scale[" + std::to_string(e) + "]", aux_scale[e], r.aux_scale[e], 1e-9, 1e-5);
    }
    for (int64_t e = 0; e <= E; ++e) c.exact("offsets[" + std::to_string(e) + "]", offsets[e], r.plan.offsets[e]);
    for (int64_t i = 0; i < T * K && c.result.ok; ++i) c.exact(at("slot", i, K), slot[i], r.plan.slot[i]);
    for (size_t i = 0; i < r.plan.row_source.size() && c.result.ok; ++i)
      c.exact("row_source[" + std::to_string(i) + "]", row_source[i], r.plan.row_source[i]);
    c.value("aux loss", losses[0], r.losses[0], 1e-7, 1e-4);
    c.value("z loss", losses[1], r.losses[1], 1e-7, 1e-4);
    // The fourth entry, the bias update, reads the counts just checked.
    if (c.result.ok) {
      DeviceBuffer bias = DeviceBuffer::from(*backend_, r.bias);
      launch_route_bias_update(*candidate.kernels.at(3), problem_, static_cast<int*>(s.counts.get()),
                               static_cast<float*>(bias.get()), r.gamma);
      backend_->synchronize();
      const auto got = bias.to_host<float>();
      const double mean = double(T * K) / double(E);
      for (int64_t e = 0; e < E; ++e) {
        const double diff = mean - r.plan.counts[e];
        c.value("bias[" + std::to_string(e) + "] after the update", got[e],
                r.bias[e] + r.gamma * double((diff > 0) - (diff < 0)), 1e-7, 1e-6);
      }
    }
  } else {
    return check_rows(s);
  }
  return c.result;
}

// Output row `item` of a row step, in double from the inputs, into want[0, D). Scatter steps write
// (R, D): row `item` holds choice i = row_source[item] of token i / K, or zeros (a padding row);
// gather steps write (T, D): token `item`'s sum over its choices in k order. `scratch`: D doubles.
void RoutingWorkload::expected_row(int64_t item, double* want, double* scratch) const {
  const Reference& r = *ref_;
  const DType dt = problem_.dtype;
  const int64_t D = problem_.routing().width, K = problem_.routing().top_k;
  std::fill(want, want + D, 0.0);
  if (scatter_kind(kind_)) {
    const int i = r.plan.row_source[static_cast<size_t>(item)];
    if (i < 0) return;
    const double w = kind_ == Family::route_permute_fwd ? 1.0 : double(r.weight[static_cast<size_t>(i)]);
    read_row(dt, r.src, i / K * D, D, want);
    for (int64_t d = 0; d < D; ++d) want[d] *= w;
    return;
  }
  for (int64_t k = 0; k < K; ++k) {
    const int s = r.plan.slot[static_cast<size_t>(item * K + k)];
    if (s < 0) continue;
    const double w = kind_ == Family::route_combine_fwd ? double(r.weight[static_cast<size_t>(item * K + k)]) : 1.0;
    read_row(dt, r.rows, s * D, D, scratch);
    for (int64_t d = 0; d < D; ++d) want[d] += w * scratch[d];
  }
}

// The row steps' outputs against expected_row, a row at a time, rows in parallel; combine_bwd's
// d_weight (token t's choice k: x_t . y_slot) too. Permuted rows are copies: exact.
CheckResult RoutingWorkload::check_rows(const Set& s) const {
  const Reference& r = *ref_;
  const DType dt = problem_.dtype;
  const int64_t T = problem_.tokens, D = problem_.routing().width, K = problem_.routing().top_k;
  const std::vector<char> dst = s.dst.to_host<char>();
  const double tol = kind_ == Family::route_permute_fwd ? 0.0 : dt == DType::bf16 ? 1e-2 : 1e-5;
  const char* name = kind_ == Family::route_permute_fwd   ? "permuted"
                     : kind_ == Family::route_combine_bwd ? "d_y"
                     : kind_ == Family::route_combine_fwd ? "out"
                                                          : "d_x";
  const int64_t items = scatter_kind(kind_) ? r.plan.offsets.back() : T;
  CheckResult result = check_in_parallel(*cpu_, items, [&](int64_t begin, int64_t end, CheckResult& part) {
    std::vector<double> got(static_cast<size_t>(D)), want(static_cast<size_t>(D)), scratch(static_cast<size_t>(D));
    Checker c;
    for (int64_t item = begin; item < end && c.result.ok; ++item) {
      read_row(dt, dst, item * D, D, got.data());
      expected_row(item, want.data(), scratch.data());
      for (int64_t d = 0; d < D && c.result.ok; ++d)
        c.value([&] { return at(name, item * D + d, D); }, got[d], want[d], tol, tol);
    }
    part = c.result;
  });
  if (kind_ != Family::route_combine_bwd) return result;
  const auto d_weight = s.d_weight.to_host<float>();
  merge_check(result, check_in_parallel(*cpu_, T * K, [&](int64_t begin, int64_t end, CheckResult& part) {
                std::vector<double> x(static_cast<size_t>(D)), y(static_cast<size_t>(D));
                Checker c;
                for (int64_t i = begin; i < end; ++i) {
                  const int slot = r.plan.slot[static_cast<size_t>(i)];
                  double want = 0;
                  if (slot >= 0) {
                    read_row(dt, r.src, i / K * D, D, x.data());
                    read_row(dt, r.rows, slot * D, D, y.data());
                    for (int64_t d = 0; d < D; ++d) want += x[d] * y[d];
                  }
                  c.value([&] { return at("d_weight", i, K); }, d_weight[static_cast<size_t>(i)], want, 1e-4, 1e-4);
                }
                part = c.result;
              }));
  return result;
}

}  // namespace moejit
