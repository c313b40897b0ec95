#include "autotuner.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <deque>
#include <future>
#include <limits>
#include <map>

#include "compile_pool.hpp"
#include "hash.hpp"
#include "journal.hpp"
#include "moejit/error.hpp"
#include "moejit/log.hpp"
#include "search.hpp"
#include "tuning_store.hpp"
#include "validators.hpp"

namespace moejit {
namespace {

using Clock = std::chrono::steady_clock;
constexpr double kInf = std::numeric_limits<double>::infinity();

LoadedCandidate load_candidate(Backend& backend, const std::shared_ptr<const Binary>& binary, const Source& source,
                               const Config& config) {
  LoadedCandidate c;
  c.config = config;
  for (const std::string& entry : source.entries) c.kernels.push_back(backend.load(binary, entry));
  return c;
}

std::string format_ms(double ms) {
  char text[32];
  std::snprintf(text, sizeof text, "%.4g ms", ms);
  return text;
}

std::string journal_file(const KernelSpec& spec, const Problem& p, const Backend& backend, const Config& heuristic,
                         const TimingOptions& t) {
  const DeviceDescription& d = backend.device();
  Hasher h;
  h.field(p.key()).field(d.backend).field(d.name).field(d.arch).field(d.features);
  h.field(std::to_string(d.compute_units)).field(d.driver).field(backend.compiler().id());
  h.field(template_hash(spec, p, heuristic, d, backend.compiler()));
  h.field(std::to_string(t.warmup) + "/" + std::to_string(t.repeats) + "/" + std::to_string(t.cold) + "/" +
          std::to_string(t.min_sample_ms));
  return std::string(to_string(p.family)) + "." + h.hex().substr(0, 16) + ".jsonl";
}

}  // namespace

int TuneResult::count(CandidateStatus status) const {
  return static_cast<int>(
      std::count_if(results.begin(), results.end(), [&](const auto& r) { return r.status == status; }));
}

std::string TuneResult::summary() const {
  std::string s = problem.key() + ": " + prune.summary() + "; " + strategy + " measured " +
                  std::to_string(results.size()) + " (" + std::to_string(resumed) + " from journal)";
  for (auto st : {CandidateStatus::wrong, CandidateStatus::crashed, CandidateStatus::timeout,
                  CandidateStatus::compile_error, CandidateStatus::failed})
    if (int n = count(st)) s += ", " + std::to_string(n) + " " + to_string(st);
  if (partial) s += ", stopped by budget";
  if (decision)
    s += " -> " + decision->config.to_string() + " " + format_ms(decision->time_ms);
  else
    s += " -> no candidate passed";
  return s;
}

std::vector<std::string> worker_arguments(const Problem& p, const Config& config, const TimingOptions& t) {
  std::vector<std::string> a = {"--problem",       p.to_string(),
                                "--config",        config.to_string(),
                                "--warmup",        std::to_string(t.warmup),
                                "--repeats",       std::to_string(t.repeats),
                                "--min-sample-ms", std::to_string(t.min_sample_ms)};
  if (t.cold) a.push_back("--cold");
  if (t.abandon_above_ms > 0) a.insert(a.end(), {"--abandon-above-ms", std::to_string(t.abandon_above_ms)});
  return a;
}

CandidateResult measure_candidate(Backend& backend, const KernelSpec& spec, Workload& workload, const Problem& problem,
                                  const Config& config, const TimingOptions& timing) {
  CandidateResult result;
  result.config = config.to_string();
  Source source;
  std::shared_ptr<const Binary> binary;
  try {
    source = spec.render(problem, config, backend.device());
    binary = backend.build(source);
  } catch (const std::exception& e) {
    result.status = CandidateStatus::compile_error;
    result.detail = e.what();
    return result;
  }
  const int copies = rotation_copies(timing, backend.device(), workload.bytes_per_copy(problem));
  workload.prepare(backend, problem, copies);
  LoadedCandidate loaded = load_candidate(backend, binary, source, config);
  return evaluate_loaded(backend, workload, loaded, timing, copies);
}

TuneResult tune(Backend& backend, const KernelSpec& spec, Workload& workload, const Problem& problem_in,
                const TuneOptions& options) {
  const auto start = Clock::now();
  const DeviceDescription& device = backend.device();
  TuneResult out;
  Problem problem = problem_in;
  problem.tokens = token_bucket(problem_in.tokens);
  out.problem = problem;
  out.prune = enumerate_and_prune(spec, problem, device);
  const std::vector<Config>& configs = out.prune.survivors;
  if (configs.empty())
    throw Error(problem.key() + ": every config was pruned (" + out.prune.summary() +
                "); the problem is not supported");
  MOEJIT_LOG(info, "tune ", problem.key(), " on ", device.name, ": ", out.prune.summary());

  const Config heuristic = spec.heuristic(problem, device);
  const size_t heuristic_index =
      static_cast<size_t>(std::find(configs.begin(), configs.end(), heuristic) - configs.begin());
  std::map<std::string, size_t> index_of;
  for (size_t i = 0; i < configs.size(); ++i) index_of[configs[i].to_string()] = i;

  const std::filesystem::path dir = options.tuning_dir.empty() ? TuningStore::default_dir() : options.tuning_dir;
  Journal journal(dir / "journal" /
                  journal_file(spec, problem, backend, configs[heuristic_index < configs.size() ? heuristic_index : 0],
                               options.timing));
  std::map<size_t, double> times;
  for (const auto& [text, r] : journal.load()) {
    auto it = index_of.find(text);
    if (it == index_of.end()) continue;
    times[it->second] = r.status == CandidateStatus::ok ? r.time_ms : kInf;
    out.results.push_back(r);
    ++out.resumed;
  }
  if (out.resumed)
    MOEJIT_LOG(info, "resuming ", problem.key(), ": ", out.resumed, " candidates from ", journal.path().string());

  const int copies = rotation_copies(options.timing, device, workload.bytes_per_copy(problem));
  workload.prepare(backend, problem, copies);

  std::unique_ptr<Search> search = make_search(configs, heuristic_index, options.exhaustive_limit);
  out.strategy = search->name();
  Progress progress(options.progress, "tune " + problem.key(), static_cast<int>(configs.size()));
  if (configs.size() > options.exhaustive_limit) progress.set_total(-1);
  auto best_text = [&] {
    auto best = std::min_element(times.begin(), times.end(), [](auto& a, auto& b) { return a.second < b.second; });
    return best == times.end() || best->second == kInf
               ? std::string("-")
               : configs[best->first].to_string() + " " + format_ms(best->second);
  };

  ThreadPool pool(options.compile_threads);
  const size_t window = std::max<size_t>(2, 2 * pool.size());
  bool stop = false;
  while (!stop) {
    std::vector<size_t> batch = search->next(times);
    if (batch.empty()) break;
    if (configs.size() > options.exhaustive_limit) progress.set_total(static_cast<int>(times.size() + batch.size()));
    std::vector<Source> sources(batch.size());
    std::deque<std::future<std::shared_ptr<const Binary>>> compiling;
    size_t submitted = 0;
    auto submit_more = [&] {
      while (submitted < batch.size() && compiling.size() < window) {
        const size_t k = submitted++;
        compiling.push_back(pool.submit([&, k] {
          sources[k] = spec.render(problem, configs[batch[k]], device);
          return backend.build(sources[k]);
        }));
      }
    };
    submit_more();
    for (size_t k = 0; k < batch.size(); ++k) {
      const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
      if ((options.max_candidates > 0 && static_cast<int>(times.size()) >= options.max_candidates) ||
          (options.max_seconds > 0 && elapsed >= options.max_seconds)) {
        out.partial = stop = true;
        break;
      }
      auto future = std::move(compiling.front());
      compiling.pop_front();
      submit_more();  // keep the pool busy while this candidate is measured
      const Config& config = configs[batch[k]];
      TimingOptions timing = options.timing;
      if (options.abandon_factor > 0) {
        double best = kInf;
        for (const auto& [i, t] : times) best = std::min(best, t);
        if (best < kInf) timing.abandon_above_ms = best * options.abandon_factor;
      }
      CandidateResult result;
      result.config = config.to_string();
      std::shared_ptr<const Binary> binary;
      try {
        binary = future.get();
      } catch (const std::exception& e) {
        result.status = CandidateStatus::compile_error;
        result.detail = e.what();
      }
      if (binary) {
        try {
          if (options.isolation == Isolation::spawn) {
            std::vector<std::string> argv = options.worker_command;
            for (auto& a : worker_arguments(problem, config, timing)) argv.push_back(std::move(a));
            result = run_in_worker(result.config, argv, options.candidate_timeout_s);
          } else {
            LoadedCandidate loaded = load_candidate(backend, binary, sources[k], config);
            auto measure = [&] { return evaluate_loaded(backend, workload, loaded, timing, copies); };
            result = options.isolation == Isolation::fork
                         ? run_in_fork(result.config, measure, options.candidate_timeout_s)
                         : measure();
          }
        } catch (const std::exception& e) {
          result.status = CandidateStatus::failed;
          result.detail = e.what();
        }
      }
      if (result.status != CandidateStatus::ok)
        MOEJIT_LOG(info, problem.key(), " ", result.config, " rejected (", to_string(result.status),
                   "): ", result.detail);
      journal.append(result);
      times[batch[k]] = result.status == CandidateStatus::ok ? result.time_ms : kInf;
      out.results.push_back(result);
      ++out.measured;
      progress.step(result.config + " " +
                        (result.status == CandidateStatus::ok ? format_ms(result.time_ms) : to_string(result.status)),
                    best_text());
    }
    // A budget stop leaves at most `window` compiles running; they write into `sources`, so wait.
    for (auto& f : compiling) f.wait();
  }

  // Re-time the top few in this process, interleaved, so drift and process-to-process noise hit
  // them alike; the medians decide.
  std::vector<std::pair<double, size_t>> ranked;
  for (const auto& [i, t] : times)
    if (t < kInf) ranked.emplace_back(t, i);
  std::sort(ranked.begin(), ranked.end());
  if (ranked.empty()) {
    progress.finish("no candidate passed the correctness gate");
    if (!out.partial) journal.remove();
    return out;
  }
  ranked.resize(std::min<size_t>(ranked.size(), static_cast<size_t>(std::max(options.retime_top, 1))));
  struct Finalist {
    size_t index;
    LoadedCandidate loaded;
    std::unique_ptr<Timer> timer;
    std::vector<double> samples;
  };
  std::vector<Finalist> finalists;
  for (const auto& [t, i] : ranked) {
    try {
      Source source = spec.render(problem, configs[i], device);
      Finalist f{i, load_candidate(backend, backend.build(source), source, configs[i]), nullptr, {}};
      f.timer = std::make_unique<Timer>(Timer{backend, workload, copies});
      f.timer->calibrate(f.loaded, options.timing);
      finalists.push_back(std::move(f));
    } catch (const std::exception& e) {
      MOEJIT_LOG(warn, "re-timing ", configs[i].to_string(), " failed: ", e.what());
    }
  }
  for (int round = 0; round < options.timing.warmup + std::max(options.timing.repeats, 1); ++round)
    for (Finalist& f : finalists) {
      double ms = f.timer->sample(f.loaded);
      if (round >= options.timing.warmup) f.samples.push_back(ms);
    }
  double best = kInf;
  for (Finalist& f : finalists) {
    out.retimed.emplace_back(configs[f.index].to_string(), median(f.samples));
    best = std::min(best, out.retimed.back().second);
  }
  // Deterministic tie-break: within tolerance of the best, prefer the heuristic, then space order.
  size_t winner = configs.size();
  double winner_time = 0;
  for (size_t k = 0; k < finalists.size(); ++k) {
    const size_t i = finalists[k].index;
    const double t = out.retimed[k].second;
    if (t > best * (1 + options.tie_tolerance)) continue;
    const bool better = winner == configs.size() || (i == heuristic_index) || (winner != heuristic_index && i < winner);
    if (better) {
      winner = i;
      winner_time = t;
    }
  }
  if (winner == configs.size()) {  // every finalist failed to re-time: fall back to the first ranking
    winner = ranked.front().second;
    winner_time = ranked.front().first;
  }

  Decision d;
  d.problem = problem;
  d.config = configs[winner];
  d.time_ms = winner_time;
  Throughput tp = workload.throughput(problem, winner_time);
  d.throughput = tp.value;
  d.throughput_unit = tp.unit;
  d.validators = current_validators(spec, problem, d.config, device, backend.compiler());
  d.provenance = Provenance::here(out.strategy);
  d.provenance.candidates = static_cast<int64_t>(out.results.size());
  d.provenance.partial = out.partial;
  out.decision = d;
  if (options.record) TuningStore(dir).record({d});
  if (!out.partial) journal.remove();
  progress.finish(out.summary());
  return out;
}

}  // namespace moejit
