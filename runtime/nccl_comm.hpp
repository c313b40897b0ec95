// Device-buffer collectives over NCCL, for the cuda step backend: the data-parallel gradient
// all-reduce in place on device memory (the trainer's, queued on the step's stream) and the expert
// dispatch as grouped ncclSend/ncclRecv (NCCL's all-to-all-v; not used by the trainer yet). MPI launches the job and
// moves the host data (comm.hpp); the NCCL communicator is bootstrapped over it: rank 0's ncclUniqueId is broadcast
// through the host Communicator.
//
// NCCL is loaded at run time with dlopen("libnccl.so.2") (nccl.h supplies the types only), as the
// CUDA driver is (jit/cuda_driver.hpp): a binary built with MOEJIT_WITH_NCCL runs where NCCL is absent
// and says so when a run asks for it. Compiled here; it has not run (no GPU on the build machines).
#pragma once
#include <nccl.h>

#include <cstdint>
#include <span>
#include <string>

#include "comm.hpp"

namespace moejit::runtime {

class NcclCommunicator {
 public:
  // Collective over `host`: every rank of the job calls it with its current CUDA device already
  // chosen (one GPU per rank) and the stream the step runs on. Throws UnavailableError without
  // libnccl, Error naming the NCCL call that failed otherwise.
  NcclCommunicator(Communicator& host, void* stream);
  ~NcclCommunicator();
  NcclCommunicator(const NcclCommunicator&) = delete;
  NcclCommunicator& operator=(const NcclCommunicator&) = delete;

  // Whether libnccl.so.2 loads here (false: `why` says what is missing). Not collective.
  static bool available(std::string* why);

  int rank() const { return rank_; }
  int size() const { return size_; }
  // In place, queued on the stream: device[0, n) = the sum over ranks.
  void allreduce_sum(float* device, int64_t n);
  // Queued on the stream: rank r sends send[send_offsets[q] .. + send_counts[q]) floats to rank q
  // and receives recv_counts[q] floats from q at recv_offsets[q]; counts and offsets on the host (the
  // expert dispatch's per-expert counts, exchanged first: its one host synchronisation).
  void alltoallv(const float* send, std::span<const int64_t> send_counts, std::span<const int64_t> send_offsets,
                 float* recv, std::span<const int64_t> recv_counts, std::span<const int64_t> recv_offsets);

 private:
  ncclComm_t comm_ = nullptr;
  void* stream_;
  int rank_ = 0, size_ = 1;
};

}  // namespace moejit::runtime
