// Runs one toy tuning (fork isolation, journal in <dir>) and prints the winner: the process the
// resume test kills with SIGKILL mid-run and then starts again.
//   toy_tune_driver <tuning dir> <measured log> <check sleep ms>
#include <cstdio>
#include <cstdlib>

#include "autotuner.hpp"
#include "toy_backend.hpp"

int main(int argc, char** argv) {
  using namespace moejit;
  if (argc != 4) {
    std::fprintf(stderr, "usage: toy_tune_driver DIR MEASURED_LOG CHECK_SLEEP_MS\n");
    return 2;
  }
  toy::reset_world();
  toy::world().measured_log = argv[2];
  toy::world().check_sleep_ms = std::atoi(argv[3]);
  toy::ToyBackend backend;
  toy::ToySpec spec;
  toy::ToyWorkload workload;
  TuneOptions options;
  options.tuning_dir = argv[1];
  options.progress = nullptr;
  options.timing.warmup = 1;
  options.timing.repeats = 3;
  options.timing.min_sample_ms = 0;
  options.compile_threads = 2;
  TuneResult r = tune(backend, spec, workload, toy::toy_problem(), options);
  std::printf("%s %d %d\n", r.decision ? r.decision->config.to_string().c_str() : "none", r.resumed, r.measured);
  return 0;
}
