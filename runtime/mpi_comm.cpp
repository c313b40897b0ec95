// The communicator of an MPI job (Open MPI from Debian): host buffers, MPI_COMM_WORLD.
#include <mpi.h>

#include <unistd.h>
#include <algorithm>
#include <climits>
#include <cstdio>
#include <iostream>
#include <string>
#include <utility>

#include "comm.hpp"
#include "moejit/error.hpp"

namespace moejit::runtime {
namespace {

// MPI counts are int: larger spans go in pieces.
constexpr int64_t kMaxPiece = INT_MAX / 2;

int to_int(int64_t v, const char* what) {
  if (v < 0 || v > INT_MAX) throw Error(std::string("MPI: ") + what + " " + std::to_string(v) + " exceeds an int");
  return int(v);
}

std::string library_version() {
  char version[MPI_MAX_LIBRARY_VERSION_STRING];
  int length = 0;
  MPI_Get_library_version(version, &length);
  const std::string text(version, size_t(length));
  return text.substr(0, text.find(','));
}

// MPI_COMM_WORLD (owning MPI's lifetime: Init here, Finalize at exit) or a group split from it.
class MpiComm final : public Communicator {
 public:
  MpiComm() : world_(true) {
    // MULTIPLE: the gradient all-reduce runs on a thread of its own while the backward's expert
    // dispatch calls MPI on the main thread (gradient_reducer.hpp). An MPI that gives less still
    // runs: the all-reduce then waits for the backward (concurrent_calls() false).
    int provided = 0;
    MPI_Init_thread(nullptr, nullptr, MPI_THREAD_MULTIPLE, &provided);
    comm_ = MPI_COMM_WORLD;
    init();
  }
  explicit MpiComm(MPI_Comm comm) : comm_(comm) { init(); }
  ~MpiComm() override {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (finalized) return;
    if (!world_)
      MPI_Comm_free(&comm_);
    else
      MPI_Finalize();
  }

  int rank() const override { return rank_; }
  bool concurrent_calls() const override { return provided_ >= MPI_THREAD_MULTIPLE; }
  int ranks_on_this_node() const override { return ranks_on_node_; }
  int size() const override { return size_; }
  std::string name() const override { return "MPI (" + library_version() + ")"; }

  void allreduce_sum(std::span<float> data) override { reduce(data.data(), int64_t(data.size()), MPI_FLOAT); }
  void allreduce_sum(std::span<double> data) override { reduce(data.data(), int64_t(data.size()), MPI_DOUBLE); }

  std::vector<std::string> allgather(const std::string& text) override {
    int length = to_int(int64_t(text.size()), "text length");
    std::vector<int> lengths(static_cast<size_t>(size_)), offsets(static_cast<size_t>(size_));
    MPI_Allgather(&length, 1, MPI_INT, lengths.data(), 1, MPI_INT, comm_);
    int64_t total = 0;
    for (int r = 0; r < size_; ++r) offsets[r] = to_int(std::exchange(total, total + lengths[r]), "gathered text");
    std::string all(size_t(total), '\0');
    MPI_Allgatherv(text.data(), length, MPI_CHAR, all.data(), lengths.data(), offsets.data(), MPI_CHAR, comm_);
    std::vector<std::string> out;
    for (int r = 0; r < size_; ++r) out.push_back(all.substr(size_t(offsets[r]), size_t(lengths[r])));
    return out;
  }

  void alltoallv(std::span<const float> send, std::span<const int64_t> send_counts,
                 std::span<const int64_t> send_offsets, std::span<float> recv, std::span<const int64_t> recv_counts,
                 std::span<const int64_t> recv_offsets) override {
    auto ints = [&](std::span<const int64_t> v, const char* what) {
      std::vector<int> out(v.size());
      for (size_t i = 0; i < v.size(); ++i) out[i] = to_int(v[i], what);
      return out;
    };
    const auto sc = ints(send_counts, "send count"), so = ints(send_offsets, "send offset"),
               rc = ints(recv_counts, "receive count"), ro = ints(recv_offsets, "receive offset");
    MPI_Alltoallv(send.data(), sc.data(), so.data(), MPI_FLOAT, recv.data(), rc.data(), ro.data(), MPI_FLOAT, comm_);
  }

  std::vector<int64_t> alltoall(std::span<const int64_t> send) override {
    if (send.size() % size_t(size_))
      throw Error("alltoall: " + std::to_string(send.size()) + " values for " + std::to_string(size_) + " ranks");
    std::vector<int64_t> out(send.size());
    const int block = to_int(int64_t(send.size()) / size_, "alltoall block");
    MPI_Alltoall(send.data(), block, MPI_INT64_T, out.data(), block, MPI_INT64_T, comm_);
    return out;
  }

  std::unique_ptr<Communicator> split(int color, int key) override {
    MPI_Comm group;
    MPI_Comm_split(comm_, color, key, &group);
    return std::make_unique<MpiComm>(group);
  }

  [[noreturn]] void abort(const std::string& message, int code) override {
    int rank = 0, size = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    // One write of the whole line: cerr is unbuffered, and mpirun's own abort banner would otherwise
    // land between its pieces.
    const std::string line =
        "moejit: rank " + std::to_string(rank) + " of " + std::to_string(size) + ": " + message + "\n";
    std::fflush(stderr);
    [[maybe_unused]] const ssize_t written = ::write(2, line.data(), line.size());  // atomic below PIPE_BUF
    MPI_Abort(MPI_COMM_WORLD, code);
    std::_Exit(code);  // MPI_Abort does not return; this keeps [[noreturn]] honest
  }

 private:
  void reduce(void* data, int64_t count, MPI_Datatype type) {
    int bytes = 0;
    MPI_Type_size(type, &bytes);
    for (int64_t done = 0; done < count; done += kMaxPiece)
      MPI_Allreduce(MPI_IN_PLACE, static_cast<char*>(data) + done * bytes, int(std::min(kMaxPiece, count - done)), type,
                    MPI_SUM, comm_);
  }

  void init() {
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
    MPI_Query_thread(&provided_);
    MPI_Comm node;
    MPI_Comm_split_type(comm_, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &node);
    MPI_Comm_size(node, &ranks_on_node_);
    MPI_Comm_free(&node);
  }

  MPI_Comm comm_;
  bool world_ = false;
  int rank_ = 0, size_ = 1, provided_ = MPI_THREAD_SINGLE, ranks_on_node_ = 1;
};

}  // namespace

std::unique_ptr<Communicator> make_mpi_communicator() {
  return std::make_unique<MpiComm>();
}

}  // namespace moejit::runtime
