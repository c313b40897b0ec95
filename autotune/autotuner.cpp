#include "autotuner.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <deque>
#include <functional>
#include <future>
#include <limits>
#include <map>

#include "hash.hpp"
#include "journal.hpp"
#include "moejit/error.hpp"
#include "moejit/log.hpp"
#include "search.hpp"
#include "thread_pool.hpp"
#include "tuning_store.hpp"
#include "validators.hpp"

namespace moejit {
namespace {

using Clock = std::chrono::steady_clock;
constexpr double kInf = std::numeric_limits<double>::infinity();
// Re-timing runs per finalist (retime()): enough that one of them misses a burst of the VM taking a core away.
constexpr int kRetimeRuns = 5;

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
          std::to_string(t.min_sample_ms) + "/" + std::to_string(t.min_warmup_ms));
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
  if (seconds > 0) {  // where a slow tune's time went: the workload's inputs, or the candidates
    char t[96];
    std::snprintf(t, sizeof t, "; %.1f s (inputs %.1f s)", seconds, prepare_seconds);
    s += t;
  }
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
                                  const Config& config, const TimingOptions& timing, unsigned cpu_threads) {
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
  workload.prepare(backend, problem, copies, std::make_shared<ThreadPool>(cpu_threads));
  LoadedCandidate loaded = load_candidate(backend, binary, source, config);
  return evaluate_loaded(backend, workload, loaded, timing, copies);
}

namespace {

// Compiles one batch's candidates on the pool ahead of the measuring thread, at most `window` in
// flight, so the pool stays busy while a candidate is measured. Binaries come back in batch order.
class CompilePipeline {
 public:
  using Build = std::function<std::shared_ptr<const Binary>(size_t k)>;
  CompilePipeline(ThreadPool& pool, size_t count, size_t window, Build build)
      : pool_(pool), count_(count), window_(window), build_(std::move(build)) {
    refill();
  }
  // A budget stop or an exception leaves compiles running that write into the caller's sources.
  ~CompilePipeline() { wait_all(); }
  // Waits until every compile in flight has finished (errors stay in their futures).
  void wait_all() {
    for (auto& f : compiling_) f.wait();
  }
  // The next candidate's binary; rethrows its compile error.
  std::shared_ptr<const Binary> next() {
    auto future = std::move(compiling_.front());
    compiling_.pop_front();
    refill();
    return future.get();
  }

 private:
  void refill() {
    while (submitted_ < count_ && compiling_.size() < window_) {
      const size_t k = submitted_++;
      compiling_.push_back(pool_.submit([this, k] { return build_(k); }));
    }
  }
  ThreadPool& pool_;
  const size_t count_, window_;
  Build build_;
  size_t submitted_ = 0;
  std::deque<std::future<std::shared_ptr<const Binary>>> compiling_;
};

// One tune() call, stage by stage: prune, resume from the journal, search (compile pipeline +
// measure), decide (re-time the finalists, tie-break), save.
class Tuning {
 public:
  Tuning(Backend& backend, const KernelSpec& spec, Workload& workload, const Problem& problem,
         const TuneOptions& options);
  void resume();
  void search();
  TuneResult finish();

 private:
  struct Finalist {
    size_t index;
    LoadedCandidate loaded;
    std::unique_ptr<Timer> timer;
    std::vector<std::vector<double>> rounds;  // samples, one run of consecutive launches each
    // The best round's median: see retime().
    double time() const {
      double best = kInf;
      for (const auto& r : rounds) best = std::min(best, median(r));
      return best;
    }
  };
  bool run_batch(const std::vector<size_t>& batch, ThreadPool& pool);
  bool over_budget() const;
  CandidateResult measure(const Config& config, CompilePipeline& compiled, const Source& source);
  void record(size_t index, const CandidateResult& result);
  std::vector<std::pair<double, size_t>> ranking() const;
  std::vector<Finalist> retime(const std::vector<std::pair<double, size_t>>& ranked);
  std::pair<size_t, double> decide(const std::vector<std::pair<double, size_t>>& ranked);
  TuneResult save(size_t winner, double winner_time);
  std::string best_text() const;

  Backend& backend_;
  const KernelSpec& spec_;
  Workload& workload_;
  const TuneOptions& options_;
  const DeviceDescription& device_;
  const Clock::time_point start_ = Clock::now();
  const std::string started_ = Provenance::here().date;  // decisions stored after this: a concurrent run
  TuneResult out_;
  const Problem problem_;  // tokens: the token bucket
  std::vector<Config> configs_;
  size_t heuristic_index_;
  std::filesystem::path dir_;
  Journal journal_;
  std::map<size_t, double> times_;  // config index -> ms (infinity: not ok)
  Progress progress_;
  int copies_ = 1;
};

// Prune: the survivors, or an error naming why none is left.
std::vector<Config> survivors(const KernelSpec& spec, const Problem& problem, const DeviceDescription& device,
                              PruneReport& report) {
  report = enumerate_and_prune(spec, problem, device);
  if (report.survivors.empty())
    throw Error(problem.key() + ": every config was pruned (" + report.summary() + "); the problem is not supported");
  MOEJIT_LOG(info, "tune ", problem.key(), " on ", device.name, ": ", report.summary());
  return report.survivors;
}

// The survivors with the heuristic's config among them: a heuristic may size its blocks for the
// problem (the host GEMMs halve theirs until every thread has work), off the space's grid, and the
// tuner must still measure it, or a decision could be slower than running without one.
std::vector<Config> with_heuristic(std::vector<Config> configs, const KernelSpec& spec, const Problem& problem,
                                   const DeviceDescription& device) {
  const Config heuristic = spec.heuristic(problem, device);
  if (std::find(configs.begin(), configs.end(), heuristic) == configs.end() &&
      spec.prune_reason(problem, heuristic, device).empty())
    configs.push_back(heuristic);
  return configs;
}

Problem bucketed(Problem problem) {
  problem.tokens = token_bucket(problem.tokens);
  return problem;
}

Tuning::Tuning(Backend& backend, const KernelSpec& spec, Workload& workload, const Problem& problem,
               const TuneOptions& options)
    : backend_(backend),
      spec_(spec),
      workload_(workload),
      options_(options),
      device_(backend.device()),
      problem_(bucketed(problem)),
      configs_(with_heuristic(survivors(spec, problem_, device_, out_.prune), spec, problem_, device_)),
      heuristic_index_(static_cast<size_t>(
          std::find(configs_.begin(), configs_.end(), spec.heuristic(problem_, device_)) - configs_.begin())),
      dir_(options.tuning_dir.empty() ? TuningStore::default_dir() : options.tuning_dir),
      journal_(dir_ / "journal" /
               journal_file(spec, problem_, backend,
                            configs_[heuristic_index_ < configs_.size() ? heuristic_index_ : 0], options.timing)),
      progress_(options.progress, "tune " + problem_.key(), static_cast<int>(configs_.size())) {
  out_.problem = problem_;
  if (configs_.size() > options.exhaustive_limit) progress_.set_total(-1);
}

// Resume: what the journal of an interrupted run already measured counts as measured.
void Tuning::resume() {
  std::map<std::string, size_t> index_of;
  for (size_t i = 0; i < configs_.size(); ++i) index_of[configs_[i].to_string()] = i;
  int retried = 0;
  for (const auto& [text, r] : journal_.load()) {
    auto it = index_of.find(text);
    if (it == index_of.end()) continue;
    // A timeout says more about the machine then (load, another --timeout) than about the config:
    // measure it again rather than exclude a possible winner for good.
    if (r.status == CandidateStatus::timeout) {
      ++retried;
      continue;
    }
    times_[it->second] = r.status == CandidateStatus::ok ? r.time_ms : kInf;
    out_.results.push_back(r);
    ++out_.resumed;
  }
  if (out_.resumed || retried)
    MOEJIT_LOG(info, "resuming ", problem_.key(), ": ", out_.resumed, " candidates from ", journal_.path().string(),
               retried ? ", " + std::to_string(retried) + " that timed out there measured again" : "");
}

// Search: the strategy hands out batches until it is done or a budget stops the run.
void Tuning::search() {
  copies_ = rotation_copies(options_.timing, device_, workload_.bytes_per_copy(problem_));
  workload_.prepare(backend_, problem_, copies_, std::make_shared<ThreadPool>(options_.cpu_threads));
  out_.prepare_seconds = std::chrono::duration<double>(Clock::now() - start_).count();
  std::unique_ptr<Search> search = make_search(configs_, heuristic_index_, options_.exhaustive_limit);
  out_.strategy = search->name();
  ThreadPool pool(options_.compile_threads);
  for (;;) {
    std::vector<size_t> batch = search->next(times_);
    if (batch.empty()) return;
    if (configs_.size() > options_.exhaustive_limit)
      progress_.set_total(static_cast<int>(times_.size() + batch.size()));
    if (!run_batch(batch, pool)) return;
  }
}

bool Tuning::over_budget() const {
  const double elapsed = std::chrono::duration<double>(Clock::now() - start_).count();
  return (options_.max_candidates > 0 && static_cast<int>(times_.size()) >= options_.max_candidates) ||
         (options_.max_seconds > 0 && elapsed >= options_.max_seconds);
}

// Compile pipeline + measure: false when a budget stopped the run.
bool Tuning::run_batch(const std::vector<size_t>& batch, ThreadPool& pool) {
  // A host candidate runs on the cores that compiles use: the batch compiles first, so that no Clang
  // run shares a core with a measurement. (Overlapped, a 2-thread kernel measured no faster than its
  // 1-thread config, and the 1-thread configs that won were slower in the training step.) A GPU
  // candidate overlaps its measurement with the next compiles.
  const bool measures_on_cpu = device_.backend == "host";
  std::vector<Source> sources(batch.size());
  const size_t window = measures_on_cpu ? batch.size() : std::max<size_t>(2, 2 * pool.threads());
  CompilePipeline compiled(pool, batch.size(), window, [&](size_t k) {
    sources[k] = spec_.render(problem_, configs_[batch[k]], device_);
    return backend_.build(sources[k]);
  });
  if (measures_on_cpu) compiled.wait_all();
  for (size_t k = 0; k < batch.size(); ++k) {
    if (over_budget()) {
      out_.partial = true;
      return false;
    }
    record(batch[k], measure(configs_[batch[k]], compiled, sources[k]));
  }
  return true;
}

// Measure one candidate: its compile's outcome, then the gate and timing, isolated as asked.
CandidateResult Tuning::measure(const Config& config, CompilePipeline& compiled, const Source& source) {
  TimingOptions timing = options_.timing;
  if (options_.abandon_factor > 0) {
    double best = kInf;
    for (const auto& [i, t] : times_) best = std::min(best, t);
    if (best < kInf) timing.abandon_above_ms = best * options_.abandon_factor;
  }
  CandidateResult result;
  result.config = config.to_string();
  std::shared_ptr<const Binary> binary;
  try {
    binary = compiled.next();
  } catch (const std::exception& e) {
    result.status = CandidateStatus::compile_error;
    result.detail = e.what();
    return result;
  }
  try {
    if (options_.isolation == Isolation::spawn) {
      std::vector<std::string> argv = options_.worker_command;
      for (auto& a : worker_arguments(problem_, config, timing)) argv.push_back(std::move(a));
      return run_in_worker(result.config, argv, options_.candidate_timeout_s);
    }
    LoadedCandidate loaded = load_candidate(backend_, binary, source, config);
    auto evaluate = [&] { return evaluate_loaded(backend_, workload_, loaded, timing, copies_); };
    return options_.isolation == Isolation::fork ? run_in_fork(result.config, evaluate, options_.candidate_timeout_s)
                                                 : evaluate();
  } catch (const std::exception& e) {
    result.status = CandidateStatus::failed;
    result.detail = e.what();
    return result;
  }
}

void Tuning::record(size_t index, const CandidateResult& result) {
  if (result.status != CandidateStatus::ok)
    MOEJIT_LOG(info, problem_.key(), " ", result.config, " rejected (", to_string(result.status), "): ", result.detail);
  journal_.append(result);
  times_[index] = result.status == CandidateStatus::ok ? result.time_ms : kInf;
  out_.results.push_back(result);
  ++out_.measured;
  progress_.step(result.config + " " +
                     (result.status == CandidateStatus::ok ? format_ms(result.time_ms) : to_string(result.status)),
                 best_text());
}

std::string Tuning::best_text() const {
  auto best = std::min_element(times_.begin(), times_.end(), [](auto& a, auto& b) { return a.second < b.second; });
  return best == times_.end() || best->second == kInf
             ? std::string("-")
             : configs_[best->first].to_string() + " " + format_ms(best->second);
}

// The candidates that passed, fastest first: (time, config index).
std::vector<std::pair<double, size_t>> Tuning::ranking() const {
  std::vector<std::pair<double, size_t>> ranked;
  for (const auto& [i, t] : times_)
    if (t < kInf) ranked.emplace_back(t, i);
  std::sort(ranked.begin(), ranked.end());
  return ranked;
}

// Re-time the top few in this process, in turns, so drift and process-to-process noise hit them
// alike; the medians decide.
std::vector<Tuning::Finalist> Tuning::retime(const std::vector<std::pair<double, size_t>>& ranked) {
  std::vector<Finalist> finalists;
  for (size_t r = 0; r < std::min<size_t>(ranked.size(), static_cast<size_t>(std::max(options_.retime_top, 1))); ++r) {
    const size_t i = ranked[r].second;
    try {
      Source source = spec_.render(problem_, configs_[i], device_);
      Finalist f{i, load_candidate(backend_, backend_.build(source), source, configs_[i]), nullptr, {}};
      f.timer = std::make_unique<Timer>(Timer{backend_, workload_, copies_});
      f.timer->calibrate(f.loaded, options_.timing);
      finalists.push_back(std::move(f));
    } catch (const std::exception& e) {
      MOEJIT_LOG(warn, "re-timing ", configs_[i].to_string(), " failed: ", e.what());
    }
  }
  // Runs of consecutive launches per finalist (warm-up, then samples), rotating over the finalists:
  // a kernel runs back to back with others in a step, so its samples must not each follow another
  // config's. Sampled one at a time, a 2-thread config's helper fell asleep during a 1-thread
  // config's sample and woke for each of its own, and lost to 1-thread configs that were slower in
  // the step (tiny-moe-r20's down_dgrad: a 1-thread config re-timed at 0.85 ms won over the 2-thread
  // heuristic, which the search had measured at 0.49).
  // A finalist's time is its best run's median. On a shared virtual machine the other core is now
  // and then taken away for milliseconds, a whole run of a 2-thread config long: it then runs on
  // one thread. Such noise only ever adds time; a median over every sample let two spoiled runs of
  // three pick the 1-thread gate backward and permute backward, 2x slower in the step
  // (bench/results/2026-12-07-host-emr). Each run warms up for at least min_warmup_ms: a helper
  // woken onto the caller's CPU stays there for whole runs until the scheduler moves it
  // (bench/results/2026-12-08-host-emr).
  const int samples = std::max(options_.timing.repeats, 1), runs = std::min(samples, kRetimeRuns);
  for (int run = 0; run < runs; ++run)
    for (Finalist& f : finalists) {
      f.timer->warm_up(f.loaded, std::max(options_.timing.warmup, 1), options_.timing.min_warmup_ms);
      std::vector<double>& round = f.rounds.emplace_back();
      for (int k = 0; k < samples / runs + (run < samples % runs ? 1 : 0); ++k)
        round.push_back(f.timer->sample(f.loaded));
    }
  return finalists;
}

// Decide: the re-timed best, with a deterministic tie-break: within tolerance of the best, prefer
// the heuristic, then space order. Returns (config index, time).
std::pair<size_t, double> Tuning::decide(const std::vector<std::pair<double, size_t>>& ranked) {
  const std::vector<Finalist> finalists = retime(ranked);
  double best = kInf;
  for (const Finalist& f : finalists) {
    out_.retimed.emplace_back(configs_[f.index].to_string(), f.time());
    best = std::min(best, out_.retimed.back().second);
  }
  size_t winner = configs_.size();
  double winner_time = 0;
  for (size_t k = 0; k < finalists.size(); ++k) {
    const size_t i = finalists[k].index;
    const double t = out_.retimed[k].second;
    if (t > best * (1 + options_.tie_tolerance)) continue;
    if (winner == configs_.size() || i == heuristic_index_ || (winner != heuristic_index_ && i < winner)) {
      winner = i;
      winner_time = t;
    }
  }
  if (winner == configs_.size()) return {ranked.front().second, ranked.front().first};  // none re-timed
  return {winner, winner_time};
}

// Save: the Decision, stored unless options say not to; a finished run's journal is removed.
TuneResult Tuning::save(size_t winner, double winner_time) {
  Decision d;
  d.problem = problem_;
  d.config = configs_[winner];
  d.time_ms = winner_time;
  Throughput tp = workload_.throughput(problem_, winner_time);
  d.throughput = tp.value;
  d.throughput_unit = tp.unit;
  d.validators = current_validators(spec_, problem_, d.config, device_, backend_.compiler());
  d.provenance = Provenance::here(out_.strategy);
  d.provenance.candidates = static_cast<int64_t>(out_.results.size());
  d.provenance.partial = out_.partial;
  out_.decision = d;
  out_.seconds = std::chrono::duration<double>(Clock::now() - start_).count();
  if (options_.record) TuningStore(dir_).record({d}, TuningStore::Policy::replace, started_);
  if (!out_.partial) journal_.remove();
  progress_.finish(out_.summary());
  return std::move(out_);
}

TuneResult Tuning::finish() {
  const std::vector<std::pair<double, size_t>> ranked = ranking();
  if (ranked.empty()) {
    out_.seconds = std::chrono::duration<double>(Clock::now() - start_).count();
    progress_.finish("no candidate passed the correctness gate");
    if (!out_.partial) journal_.remove();
    return std::move(out_);
  }
  const auto [winner, winner_time] = decide(ranked);
  return save(winner, winner_time);
}

}  // namespace

TuneResult tune(Backend& backend, const KernelSpec& spec, Workload& workload, const Problem& problem,
                const TuneOptions& options) {
  Tuning tuning(backend, spec, workload, problem, options);
  tuning.resume();
  tuning.search();
  return tuning.finish();
}

}  // namespace moejit
