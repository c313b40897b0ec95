// `moejit tune` under mpirun (docs/distributed.md): the ranks split the problem list, each measures
// its share without recording, and the decisions meet in the tuning cache: rank 0 merges them all
// into its cache, then every other rank takes rank 0's answers into its own (one cache per machine),
// so every rank ends holding the same decision for every problem tuned.
#pragma once
#include <string>
#include <vector>

#include "comm.hpp"
#include "decision.hpp"
#include "tune_layer.hpp"
#include "tuning_store.hpp"

namespace moejit::cli {

// Calls i with i % ranks == rank: round-robin, so that the token buckets of one kernel (its cheap and
// its expensive problems) spread over the ranks.
std::vector<StepCall> share_of_calls(const std::vector<StepCall>& calls, int rank, int ranks);

// Collective. Throws Error naming the first rank whose device differs from rank 0's: a decision
// measured on one kind of device does not answer for another, so those ranks cannot share the work.
void check_same_device(runtime::Communicator& comm, const std::string& device);

// Collective. `mine`: this rank's decisions (not recorded yet). Merges every rank's into rank 0's
// store (atomic, under its lock; `since`: the tuning run's start, TuningStore::record), then rank 0's
// answers for those problems into every other rank's store where it answers differently (a cache
// directory that is not shared), and checks that every rank now answers alike (Error naming the
// first that does not). Returns the decisions the job made.
int merge_over_ranks(runtime::Communicator& comm, TuningStore& store, const std::vector<Decision>& mine,
                     const std::string& since);

}  // namespace moejit::cli
