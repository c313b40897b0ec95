// The processes of a run and the few collectives the trainer needs, behind one small interface so
// that the trainer is written once: a single process (no MPI at all) or the ranks of an MPI job
// (mpi_comm.cpp, built with MOEJIT_WITH_MPI). Data moves through host buffers; a GPU backend would
// add a device communicator (NCCL) beside this one, bootstrapped over it.
//
// Every call is collective: every rank makes the same calls in the same order (the trainer's step is
// the same on every rank), else the job hangs. An error on one rank ends the whole job (abort()).
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace moejit::runtime {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual std::string name() const = 0;  // "single process", "MPI (Open MPI 4.1.4)"

  // In place: data = the sum over ranks of data, the same bits on every rank.
  virtual void allreduce_sum(std::span<float> data) = 0;
  virtual void allreduce_sum(std::span<double> data) = 0;
  // Every rank's `text`, indexed by rank.
  virtual std::vector<std::string> allgather(const std::string& text) = 0;
  // All-to-all-v of floats: rank r sends send[send_offsets[q] .. + send_counts[q]) to rank q and
  // receives recv_counts[q] floats from rank q at recv_offsets[q]. Counts are in floats.
  virtual void alltoallv(std::span<const float> send, std::span<const int64_t> send_counts,
                         std::span<const int64_t> send_offsets, std::span<float> recv,
                         std::span<const int64_t> recv_counts, std::span<const int64_t> recv_offsets) = 0;
  // All-to-all of int64: send holds size() equal blocks, block q for rank q; returns the blocks
  // received, block q from rank q (the per-expert token counts before a dispatch).
  virtual std::vector<int64_t> alltoall(std::span<const int64_t> send) = 0;
  // The ranks with the same `color` as a communicator of their own, ranked by `key` (the expert-
  // parallel groups). Collective over this communicator.
  virtual std::unique_ptr<Communicator> split(int color, int key) = 0;
  // Ends every rank of the job with `code` after printing `message` (this rank's, "rank R: ..." is
  // added). For a single process: prints and exits.
  [[noreturn]] virtual void abort(const std::string& message, int code) = 0;
  // Whether two threads may call collectives at once (on different communicators): MPI started
  // with MPI_THREAD_MULTIPLE. The gradient all-reduce overlaps the backward only then.
  virtual bool concurrent_calls() const { return true; }
  // How many ranks of this communicator run on this machine (they share its cores).
  virtual int ranks_on_this_node() const { return 1; }

  bool root() const { return rank() == 0; }
};

// The communicator of this process, made on first use: MPI's world when the process was started by
// an MPI launcher (mpirun, or a scheduler starting MPI ranks) and moejit was built with MPI, else a
// single process. MPI is initialised then and finalised at exit; a plain `moejit train` never
// touches it. Throws Error when an MPI launcher started the process but moejit has no MPI.
Communicator& process_communicator();

// True when an MPI launcher started this process (its environment: Open MPI, PMIx or PMI).
bool launched_by_mpi();

// A one-rank communicator for library users and tests that run no job.
std::unique_ptr<Communicator> make_single_process_communicator();

}  // namespace moejit::runtime
