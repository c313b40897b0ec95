#include "nccl_comm.hpp"

#include <dlfcn.h>

#include <cstring>
#include <string>

#include "moejit/error.hpp"

namespace moejit::runtime {
namespace {

#define MOEJIT_NCCL_FUNCTIONS(X) \
  X(ncclGetVersion)              \
  X(ncclGetUniqueId)             \
  X(ncclCommInitRank)            \
  X(ncclCommDestroy) X(ncclAllReduce) X(ncclSend) X(ncclRecv) X(ncclGroupStart) X(ncclGroupEnd) X(ncclGetErrorString)

struct Nccl {
#define MOEJIT_DECLARE_FN(name) decltype(&::name) name = nullptr;
  MOEJIT_NCCL_FUNCTIONS(MOEJIT_DECLARE_FN)
#undef MOEJIT_DECLARE_FN

  // Loaded once per process; throws UnavailableError naming what is missing.
  static const Nccl& get() {
    static const Nccl nccl = load();
    return nccl;
  }

 private:
  static Nccl load() {
    void* lib = dlopen("libnccl.so.2", RTLD_NOW | RTLD_LOCAL);
    if (!lib)
      throw UnavailableError(std::string("no NCCL (libnccl.so.2): ") + dlerror() +
                             "; multi-GPU training needs NCCL (the host backend trains over MPI without it)");
    Nccl n;
#define MOEJIT_LOAD_FN(name)                                       \
  n.name = reinterpret_cast<decltype(&::name)>(dlsym(lib, #name)); \
  if (!n.name) throw UnavailableError("libnccl.so.2 lacks " #name ": NCCL is too old");
    MOEJIT_NCCL_FUNCTIONS(MOEJIT_LOAD_FN)
#undef MOEJIT_LOAD_FN
    return n;
  }
};

void check(ncclResult_t result, const char* what) {
  if (result != ncclSuccess) throw Error(std::string(what) + " failed: " + Nccl::get().ncclGetErrorString(result));
}

// Rank 0's id, sent to every rank through the host communicator (MPI).
ncclUniqueId broadcast_id(Communicator& host) {
  ncclUniqueId id{};
  if (host.root()) check(Nccl::get().ncclGetUniqueId(&id), "ncclGetUniqueId");
  const auto all = host.allgather(std::string(reinterpret_cast<const char*>(&id), sizeof id));
  if (all[0].size() != sizeof id) throw Error("NCCL bootstrap: rank 0 sent a unique id of the wrong size");
  std::memcpy(&id, all[0].data(), sizeof id);
  return id;
}

cudaStream_t as_stream(void* stream) {
  return static_cast<cudaStream_t>(stream);
}

}  // namespace

bool NcclCommunicator::available(std::string* why) {
  try {
    Nccl::get();
    return true;
  } catch (const UnavailableError& e) {
    if (why) *why = e.what();
    return false;
  }
}

NcclCommunicator::NcclCommunicator(Communicator& host, void* stream)
    : stream_(stream), rank_(host.rank()), size_(host.size()) {
  const Nccl& nccl = Nccl::get();
  const ncclUniqueId id = broadcast_id(host);
  check(nccl.ncclCommInitRank(&comm_, size_, id, rank_), "ncclCommInitRank");
}

NcclCommunicator::~NcclCommunicator() {
  if (comm_) Nccl::get().ncclCommDestroy(comm_);
}

void NcclCommunicator::allreduce_sum(float* device, int64_t n) {
  check(Nccl::get().ncclAllReduce(device, device, size_t(n), ncclFloat32, ncclSum, comm_, as_stream(stream_)),
        "ncclAllReduce");
}

// NCCL has no all-to-all-v: point-to-point pairs in one group are its all-to-all (and what NCCL's own
// documentation shows for it); a pair with nothing to move is left out.
void NcclCommunicator::alltoallv(const float* send, std::span<const int64_t> send_counts,
                                 std::span<const int64_t> send_offsets, float* recv,
                                 std::span<const int64_t> recv_counts, std::span<const int64_t> recv_offsets) {
  const Nccl& nccl = Nccl::get();
  check(nccl.ncclGroupStart(), "ncclGroupStart");
  for (int q = 0; q < size_; ++q) {
    if (send_counts[q] > 0)
      check(nccl.ncclSend(send + send_offsets[q], size_t(send_counts[q]), ncclFloat32, q, comm_, as_stream(stream_)),
            "ncclSend");
    if (recv_counts[q] > 0)
      check(nccl.ncclRecv(recv + recv_offsets[q], size_t(recv_counts[q]), ncclFloat32, q, comm_, as_stream(stream_)),
            "ncclRecv");
  }
  check(nccl.ncclGroupEnd(), "ncclGroupEnd");
}

}  // namespace moejit::runtime
