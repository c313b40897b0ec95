// Host scaling of training over MPI ranks: run under `mpirun -np N` (bench/distributed_scaling.sh runs
// N = 1, 2, 4). Every rank trains its share of the same global batch (data parallel; with
// expert_parallel P > 1 the experts are split over groups of P ranks). Rank 0 reports, over the timed
// steps: global tokens/s (median), the communication share of a step (MPI all-reduce of the
// gradients and the expert dispatch/combine, as timed on each rank: it includes waiting for slower
// ranks), the all-reduce volume, and the all-to-all volume measured (bytes sent to other ranks) next
// to the one computed for balanced routing; with overlap (the default) also the all-reduce time the
// backward hid (the communication thread's, minus what the step still waited for).
// Usage: mpirun -np N bench_distributed [steps=6] [config=tiny-moe-r20] [backend=host] [expert_parallel=1] [threads=1]
//                                       [overlap=1]
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iostream>

#include "bench_util.hpp"
#include "model_config.hpp"
#include "trainer.hpp"

using namespace moejit;
using namespace moejit::runtime;

namespace {

struct Args {
  int steps = 6;
  std::string config{kDefaultSmallConfig}, backend = "host";
  int64_t expert_parallel = 1;
  unsigned threads = 1;
  bool overlap = true;
};

double seconds_in(const Profiler& p, std::initializer_list<const char*> names) {
  double s = 0;
  for (const char* n : names)
    if (auto it = p.entries().find(n); it != p.entries().end()) s += it->second.seconds;
  return s;
}

// Bytes a rank sends to other ranks' experts per step if routing is balanced: each MoE layer sends
// the (P-1)/P of its N_local K rows owned elsewhere out and their results back, forward and backward.
double balanced_all_to_all_bytes(const Trainer& t, const ModelConfig& c, int64_t P) {
  if (!c.moe || P == 1) return 0;
  int64_t moe_layers = 0;
  for (int l = 0; l < c.layers; ++l) moe_layers += is_moe_layer(c, l) ? 1 : 0;
  const double rows = double(t.local_batch() * c.seq_len * c.moe->top_k) * double(P - 1) / double(P);
  return 4.0 * rows * double(c.d_model) * 4.0 * double(moe_layers * t.options().grad_accum);
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  if (argc > 1) a.steps = std::atoi(argv[1]);
  if (argc > 2) a.config = argv[2];
  if (argc > 3) a.backend = argv[3];
  if (argc > 4) a.expert_parallel = std::atoll(argv[4]);
  if (argc > 5) a.threads = unsigned(std::atoi(argv[5]));
  if (argc > 6) a.overlap = std::atoi(argv[6]) != 0;  // forced either way, spare core or not
  Communicator& comm = process_communicator();
  TrainOptions o;
  o.config = find_model_config(a.config);
  o.backend = a.backend;
  o.threads = a.threads;
  o.backend_options.kernel_threads = a.threads;
  o.expert_parallel = a.expert_parallel;
  o.overlap_allreduce = a.overlap ? "on" : "off";
  o.tokens = int64_t(a.steps + 2) * o.batch * o.config.seq_len;
  Trainer t(o, comm);
  t.train_step();  // warm-up: allocations, JIT builds or binary-cache loads
  t.train_step();
  t.profiler().clear();
  const int64_t bytes_before = t.model().expert_bytes_sent();
  std::vector<double> rates;
  double total = 0;
  for (int i = 0; i < a.steps; ++i) {
    const StepStats s = t.train_step();
    rates.push_back(double(s.tokens) / s.seconds);
    total += s.seconds;
  }
  const double comm_share = seconds_in(t.profiler(), {"allreduce", "moe.dispatch", "moe.combine"}) / total;
  const double allreduce_busy = seconds_in(t.profiler(), {"allreduce.overlapped"}) / total;
  const double allreduce_exposed = seconds_in(t.profiler(), {"allreduce"}) / total;
  double bytes = double(t.model().expert_bytes_sent() - bytes_before) / a.steps;
  comm.allreduce_sum(std::span<double>(&bytes, 1));  // the job's all-to-all bytes per step
  const auto shares = comm.allgather(std::to_string(comm_share));
  double max_share = 0;
  for (const auto& s : shares) max_share = std::max(max_share, std::stod(s));
  if (!comm.root()) return 0;
  const double tokens_per_s = bench::median(rates);
  const double computed = balanced_all_to_all_bytes(t, o.config, a.expert_parallel) * comm.size();
  const double allreduce_mb = double(t.model().param_count()) * 4 / 1e6;
  std::printf(
      "%s %s, %d ranks (%s), expert parallel %lld, %u thread(s) per rank: %.0f tokens/s (median of %d steps), "
      "communication %.1f%% of a step on rank 0 (max over ranks %.1f%%), all-reduce %.2f MB per step, "
      "all-to-all %.2f MB per step measured / %.2f MB computed for balanced routing; all-reduce %s: "
      "%.1f%% of a step waited for%s\n",
      a.config.c_str(), a.backend.c_str(), comm.size(), comm.name().c_str(), (long long)a.expert_parallel, a.threads,
      tokens_per_s, a.steps, 100 * comm_share, 100 * max_share, allreduce_mb, bytes / 1e6, computed / 1e6,
      t.overlaps_allreduce() ? "overlapped" : "after the backward", 100 * allreduce_exposed,
      t.overlaps_allreduce()
          ? (", " + std::to_string(int(std::lround(100 * allreduce_busy))) + "% of a step summing on its thread")
                .c_str()
          : "");
  nlohmann::json j = {{"config", a.config},
                      {"backend", a.backend},
                      {"ranks", comm.size()},
                      {"expert_parallel", a.expert_parallel},
                      {"threads_per_rank", a.threads},
                      {"allreduce_overlapped", t.overlaps_allreduce()},
                      {"allreduce_waited_share", allreduce_exposed},
                      {"allreduce_thread_share", allreduce_busy},
                      {"steps", a.steps},
                      {"tokens_per_s", tokens_per_s},
                      {"communication_share_rank0", comm_share},
                      {"communication_share_max", max_share},
                      {"allreduce_mb_per_step", allreduce_mb},
                      {"all_to_all_mb_per_step_measured", bytes / 1e6},
                      {"all_to_all_mb_per_step_computed", computed / 1e6},
                      {"tuning", summarize_tuning(t.backend().kernel_choices())}};
  bench::save("bench_distributed_np" + std::to_string(comm.size()) + "_ep" + std::to_string(a.expert_parallel) +
                  (a.overlap ? "" : "_no_overlap"),
              j, bench::cpu_model() + " (" + std::to_string(comm.size()) + " ranks)");
  return 0;
}
