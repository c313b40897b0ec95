#include "candidate.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>

#include "moejit/error.hpp"

namespace moejit {

const char* to_string(CandidateStatus status) {
  switch (status) {
    case CandidateStatus::ok:
      return "ok";
    case CandidateStatus::wrong:
      return "wrong";
    case CandidateStatus::crashed:
      return "crashed";
    case CandidateStatus::timeout:
      return "timeout";
    case CandidateStatus::compile_error:
      return "compile_error";
    case CandidateStatus::failed:
      return "failed";
  }
  return "failed";
}

CandidateStatus parse_candidate_status(const std::string& text) {
  for (auto s : {CandidateStatus::ok, CandidateStatus::wrong, CandidateStatus::crashed, CandidateStatus::timeout,
                 CandidateStatus::compile_error, CandidateStatus::failed})
    if (text == to_string(s)) return s;
  throw Error("unknown candidate status '" + text + "'");
}

nlohmann::json to_json(const CandidateResult& r) {
  // max_error may be NaN (an unwritten output): JSON has no NaN, so store it as a string then.
  nlohmann::json error = std::isfinite(r.max_error) ? nlohmann::json(r.max_error) : nlohmann::json("nan");
  return {{"config", r.config},
          {"status", to_string(r.status)},
          {"time_ms", r.time_ms},
          {"max_error", error},
          {"detail", r.detail}};
}

CandidateResult candidate_result_from_json(const nlohmann::json& j) {
  try {
    CandidateResult r;
    r.config = j.at("config").get<std::string>();
    r.status = parse_candidate_status(j.at("status").get<std::string>());
    r.time_ms = j.at("time_ms").get<double>();
    const auto& error = j.at("max_error");
    r.max_error = error.is_number() ? error.get<double>() : std::nan("");
    r.detail = j.at("detail").get<std::string>();
    return r;
  } catch (const nlohmann::json::exception& e) {
    throw Error(std::string("malformed candidate result: ") + e.what());
  }
}

double median(std::vector<double> values) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  return n % 2 ? values[n / 2] : 0.5 * (values[n / 2 - 1] + values[n / 2]);
}

int rotation_copies(const TimingOptions& timing, const DeviceDescription& device, size_t bytes_per_copy) {
  if (!timing.cold || bytes_per_copy == 0) return 1;
  const int64_t llc = device.l2_bytes > 0 ? device.l2_bytes : 64 << 20;
  const int64_t needed = (2 * llc + static_cast<int64_t>(bytes_per_copy) - 1) / static_cast<int64_t>(bytes_per_copy);
  return static_cast<int>(std::clamp<int64_t>(needed + 1, 2, 256));
}

void Timer::calibrate(LoadedCandidate& candidate, const TimingOptions& timing) {
  batch = 1;
  const double once = sample(candidate);
  if (once > 0 && once < timing.min_sample_ms)
    batch = static_cast<int>(std::min(1000.0, std::ceil(timing.min_sample_ms / once)));
}

double Timer::sample(LoadedCandidate& candidate) {
  const double ms = backend.time_ms([&] {
    for (int i = 0; i < batch; ++i) {
      workload.run(candidate, next_copy);
      next_copy = (next_copy + 1) % copies;
    }
  });
  return ms / batch;
}

void Timer::warm_up(LoadedCandidate& candidate, int samples, double min_ms) {
  constexpr int kMostSamples = 100000;  // a backend whose clock reads 0 must not spin forever
  double spent = 0;
  for (int i = 0; i < kMostSamples && (i < samples || spent < min_ms); ++i) spent += sample(candidate) * batch;
}

CandidateResult evaluate_loaded(Backend& backend, Workload& workload, LoadedCandidate& candidate,
                                const TimingOptions& timing, int copies) {
  CandidateResult result;
  result.config = candidate.config.to_string();
  try {
    CheckResult check = workload.check(candidate);
    if (!check.ok) {
      result.status = CandidateStatus::wrong;
      result.max_error = check.max_error;
      result.detail = "wrong result: " + check.detail;
      return result;
    }
    Timer timer{backend, workload, std::max(copies, 1)};
    timer.calibrate(candidate, timing);
    timer.warm_up(candidate, timing.warmup, 0);  // counted only: see TimingOptions::min_warmup_ms
    std::vector<double> samples;
    const int repeats = std::max(timing.repeats, 1);
    double fastest = std::numeric_limits<double>::infinity();
    for (int i = 0; i < repeats; ++i) {
      samples.push_back(timer.sample(candidate));
      fastest = std::min(fastest, samples.back());
      if (timing.abandon_above_ms > 0 && i + 1 >= kRaceSamples && i + 1 < repeats &&
          fastest > timing.abandon_above_ms) {
        result.detail = "raced out after " + std::to_string(i + 1) + " of " + std::to_string(repeats) +
                        " samples: none below " + std::to_string(timing.abandon_above_ms) + " ms";
        break;
      }
    }
    result.time_ms = median(samples);
    result.status = CandidateStatus::ok;
  } catch (const std::exception& e) {
    result.status = CandidateStatus::failed;
    result.detail = e.what();
  }
  return result;
}

}  // namespace moejit
