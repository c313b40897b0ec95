// Workload: the per-family piece the autotuner needs to run a candidate and check it. It makes
// inputs for a Problem on a Backend (fresh random data, outputs poisoned), runs a loaded candidate,
// and compares its outputs with a plain C++ reference computed in double precision.
// autotune/workloads.cpp makes one per (family, backend) of the family table, like the specs.
#pragma once
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "moejit/backend.hpp"
#include "moejit/config.hpp"
#include "moejit/problem.hpp"
#include "thread_pool.hpp"

namespace moejit {

// The kernels of one candidate, loaded from its binary in the order of Source::entries.
struct LoadedCandidate {
  Config config;
  std::vector<std::unique_ptr<Kernel>> kernels;
};

struct CheckResult {
  bool ok = false;
  double max_error = 0;  // largest |out - ref| - tolerance allowance seen (in output units)
  std::string detail;    // where it failed: "out[17, 3] = nan, expected 0.25"
};

struct Throughput {
  double value = 0;
  std::string unit;  // "GB/s" or "TFLOP/s"
};

class Workload {
 public:
  virtual ~Workload() = default;
  // Allocates `copies` independent input/output sets (cold-cache timing rotates through them) and
  // computes the reference for set 0. Inputs are random with a fixed seed so reruns agree. Input
  // generation, the reference and check() run on `cpu` (results do not depend on its thread
  // count), which the workload keeps for check() until the next prepare.
  virtual void prepare(Backend& backend, const Problem& problem, int copies, std::shared_ptr<ThreadPool> cpu) = 0;
  // Bytes one input/output set occupies (the autotuner sizes the rotation from it).
  virtual size_t bytes_per_copy(const Problem& problem) const = 0;
  // One call of the candidate on set `copy`; enqueued on the backend, not synchronised.
  virtual void run(LoadedCandidate& candidate, int copy) = 0;
  // Poisons set 0's outputs, runs once, synchronises and compares with the reference.
  virtual CheckResult check(LoadedCandidate& candidate) = 0;
  virtual Throughput throughput(const Problem& problem, double time_ms) const = 0;
};

// The workload that tunes `family` on `backend` ("host" | "cuda"); throws Error when the family
// table does not declare that backend for the family.
std::unique_ptr<Workload> make_workload(Family family, std::string_view backend);

}  // namespace moejit
