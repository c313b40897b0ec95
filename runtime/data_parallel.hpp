// The pieces of data-parallel training over a Communicator (comm.hpp): the gradient all-reduce in
// buckets, the check that every rank runs the same kernel decisions, and the check that the ranks'
// parameters are still the same bits. The trainer (trainer.cpp) calls them; with one rank they cost
// nothing.
#pragma once
#include <span>
#include <string>
#include <vector>

#include "comm.hpp"
#include "optimizer.hpp"
#include "step_backend.hpp"

namespace moejit::runtime {

// Gradients are reduced in buckets of this many floats (4 MiB): MPI moves each bucket while the
// staging copy of the next one (device backends) is made, and no bucket exceeds MPI's int counts.
inline constexpr int64_t kGradientBucketFloats = int64_t(1) << 20;

// grads (n floats in backend memory) = the sum over ranks, bucket by bucket. In place where the
// backend's memory is process memory; otherwise through `staging` (host). Identical on every rank.
void allreduce_gradients(Communicator& comm, BackendMemory& memory, TypedPtr grads, int64_t n,
                         std::vector<float>& staging, int64_t bucket_floats = kGradientBucketFloats);

// The gradients in the order the backward finishes them, for summing as it goes: group l holds layer
// l's tensors ("layers.<l>."), the last group (index `layers`) the rest (embedding, final norm, LM
// head), each group as contiguous ranges. split_experts: the expert tensors' ranges apart from the
// others' (per_expert: summed over their replicas only); else adjacent tensors merge regardless.
// Every tensor lands in exactly one range.
std::vector<std::vector<ParamRange>> gradient_groups(const std::vector<ParamTensor>& tensors, int layers,
                                                     bool split_experts);

// Whether a communication thread gets a core of its own: the node's ranks, each computing on
// threads_per_rank threads, leave at least one of its hardware threads per rank idle. Without one,
// MPI's progress on that thread (it polls) slows the compute more than the overlap hides: 4 ranks
// of 1 thread on 2 cores ran 6-16 % slower overlapped (bench/results/2026-11-27-overlap.md).
bool spare_core_for_communication(int ranks_on_node, unsigned threads_per_rank, unsigned hardware_threads);

// One line per kernel decision, "kernel config", in the order the backend reports them.
std::string decisions_text(const std::vector<KernelChoice>& choices);

// Empty when every rank's decisions text equals rank 0's; else the error: the first rank and kernel
// that differ, with both configs, and what to do. A pure function of the gathered texts.
std::string decision_mismatch(const std::vector<std::string>& per_rank);

// The decisions every rank must share: all of them under data parallelism. With expert parallelism the
// expert GEMM steps (up_swiglu ... up_wgrad) run on each rank's own row count (the tokens its experts
// received), so their lookups may rightly land on other token buckets: those are left out.
std::vector<KernelChoice> shared_decisions(std::vector<KernelChoice> choices, bool expert_parallel);

// Collective: throws Error (decision_mismatch's text) on every rank when the ranks' decisions differ,
// so that no rank runs a kernel config another does not. Cheap when they agree: a hash is gathered,
// the texts only on a mismatch.
void verify_same_decisions(Communicator& comm, const std::vector<KernelChoice>& choices);

// Collective: throws Error naming the first rank whose parameters differ from rank 0's (a rank that
// diverged: a reduction that was not bit-identical everywhere, a different binary).
void verify_same_parameters(Communicator& comm, std::span<const float> params);

}  // namespace moejit::runtime
