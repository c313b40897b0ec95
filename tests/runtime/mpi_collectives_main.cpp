// Run under `mpirun -np N` (N >= 2; tests/runtime/CMakeLists.txt): the data-parallel collectives over
// real MPI ranks, each checked on every rank against a reference computed there in double.
//  - allreduce_gradients: random gradients per rank (seeded by rank, so every rank can rebuild all of
//    them), in buckets smaller than the buffer and not dividing it; the result equals on every rank.
//  - ExpertExchange: rows tagged with their source rank, expert and position reach the rank owning
//    their expert, expert-major and source-minor, and come back unchanged.
//  - verify_same_decisions: agreeing ranks pass; when rank 1 holds another config for one kernel,
//    every rank stops with the error naming rank 1, the kernel and both configs.
// Prints "PASS" on rank 0 when every rank passed; any failure exits non-zero (mpirun reports it).
#include <cmath>
#include <cstdio>
#include <random>
#include <string>

#include "backend_choice.hpp"
#include "data_parallel.hpp"
#include "expert_parallel.hpp"
#include "moejit/error.hpp"

using namespace moejit::runtime;

namespace {

int failures = 0;
void check(bool ok, const std::string& what, int rank) {
  if (ok) return;
  std::fprintf(stderr, "rank %d: FAIL %s\n", rank, what.c_str());
  ++failures;
}

std::vector<float> random_gradients(int rank, int64_t n) {
  std::mt19937_64 rng(1000 + uint64_t(rank));
  std::normal_distribution<float> normal(0.f, 1.f);
  std::vector<float> g(static_cast<size_t>(n));
  for (auto& v : g) v = normal(rng);
  return g;
}

void test_allreduce(Communicator& comm) {
  const int64_t n = 2500, bucket = 1000;  // three buckets, the last one short
  moejit::ThreadPool pool(1);
  auto backend = make_step_backend("reference", pool);
  Buffer grads = backend->alloc(moejit::DType::f32, n);
  backend->upload<float>(grads, random_gradients(comm.rank(), n));
  std::vector<float> staging;
  allreduce_gradients(comm, *backend, grads, n, staging, bucket);
  const auto got = backend->download<float>(grads, n);
  std::vector<double> want(size_t(n), 0.0);
  for (int r = 0; r < comm.size(); ++r) {
    const auto g = random_gradients(r, n);
    for (int64_t i = 0; i < n; ++i) want[i] += double(g[i]);
  }
  double worst = 0;
  for (int64_t i = 0; i < n; ++i)
    worst = std::max(worst, std::abs(double(got[i]) - want[i]) / (1e-6 + std::abs(want[i])));
  check(worst < 1e-5 * comm.size(), "allreduce_gradients relative error " + std::to_string(worst), comm.rank());
  try {
    verify_same_parameters(comm, got);  // the reduced values must be the same bits everywhere
  } catch (const moejit::Error& e) {
    check(false, e.what(), comm.rank());
  }
}

// Rank r sends (r + e + 1) % 3 rows to expert e (some experts get none from some ranks); a row is
// {rank, expert, index within the rank's rows of that expert}.
void test_expert_exchange(Communicator& comm) {
  const int64_t E = 2 * comm.size(), width = 3;
  ExpertExchange ex(comm, E);
  std::vector<int32_t> offsets(size_t(E + 1), 0);
  for (int64_t e = 0; e < E; ++e) offsets[e + 1] = offsets[e] + int32_t((comm.rank() + e + 1) % 3);
  std::vector<float> rows;
  for (int64_t e = 0; e < E; ++e)
    for (int32_t i = 0; i < offsets[e + 1] - offsets[e]; ++i)
      rows.insert(rows.end(), {float(comm.rank()), float(e), float(i)});
  const int64_t M = ex.plan(offsets.data());
  std::vector<float> local(size_t(M * width), -1.f);
  ex.dispatch(rows.data(), local.data(), width);
  std::vector<float> want;  // expert-major, then source rank, then index
  for (int64_t j = 0; j < ex.local_experts(); ++j)
    for (int src = 0; src < comm.size(); ++src)
      for (int64_t i = 0; i < (src + ex.first_expert() + j + 1) % 3; ++i)
        want.insert(want.end(), {float(src), float(ex.first_expert() + j), float(i)});
  check(local == want, "dispatch: rows out of place", comm.rank());
  check(ex.local_offsets().back() == M, "local offsets", comm.rank());
  std::vector<float> back(rows.size(), -1.f);
  ex.combine(local.data(), back.data(), width);
  check(back == rows, "combine does not invert dispatch", comm.rank());
}

void test_decisions(Communicator& comm) {
  std::vector<KernelChoice> same = {{"gate_fwd", "w4", std::nullopt}, {"up_swiglu", "bm32_bn64", std::nullopt}};
  try {
    verify_same_decisions(comm, same);
  } catch (const moejit::Error& e) {
    check(false, std::string("agreeing ranks refused: ") + e.what(), comm.rank());
  }
  auto mine = same;
  if (comm.rank() == 1) mine[1].config = "bm64_bn64";
  try {
    verify_same_decisions(comm, mine);
    check(false, "mismatched decisions accepted", comm.rank());
  } catch (const moejit::Error& e) {
    const std::string want = "rank 1 would run kernel up_swiglu with config bm64_bn64, rank 0 with bm32_bn64";
    check(std::string(e.what()).find(want) != std::string::npos, std::string("message: ") + e.what(), comm.rank());
  }
}

}  // namespace

int main() {
  Communicator& comm = process_communicator();
  if (comm.size() < 2) {
    std::fprintf(stderr, "run me under mpirun -np 2 (or more)\n");
    return 2;
  }
  test_allreduce(comm);
  test_expert_exchange(comm);
  test_decisions(comm);
  double failed = failures;
  comm.allreduce_sum(std::span<double>(&failed, 1));
  if (comm.root()) std::printf(failed == 0 ? "PASS\n" : "FAIL on %g checks\n", failed);
  return failed == 0 ? 0 : 1;
}
