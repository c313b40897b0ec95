#include "comm.hpp"

#include <algorithm>
#include <cstdlib>
#include <iostream>

#include "moejit/error.hpp"

namespace moejit::runtime {

#ifdef MOEJIT_WITH_MPI
std::unique_ptr<Communicator> make_mpi_communicator();  // mpi_comm.cpp
#endif

namespace {

// One rank: every collective is the identity.
class SingleProcess final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  std::string name() const override { return "single process"; }
  void allreduce_sum(std::span<float>) override {}
  void allreduce_sum(std::span<double>) override {}
  std::vector<std::string> allgather(const std::string& text) override { return {text}; }
  void alltoallv(std::span<const float> send, std::span<const int64_t> send_counts,
                 std::span<const int64_t> send_offsets, std::span<float> recv, std::span<const int64_t>,
                 std::span<const int64_t> recv_offsets) override {
    std::copy_n(send.begin() + send_offsets[0], send_counts[0], recv.begin() + recv_offsets[0]);
  }
  std::vector<int64_t> alltoall(std::span<const int64_t> send) override { return {send.begin(), send.end()}; }
  std::unique_ptr<Communicator> split(int, int) override { return std::make_unique<SingleProcess>(); }
  [[noreturn]] void abort(const std::string& message, int code) override {
    std::cerr << "moejit: " << message << '\n';
    std::exit(code);
  }
};

}  // namespace

bool launched_by_mpi() {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"})
    if (std::getenv(v)) return true;
  return false;
}

std::unique_ptr<Communicator> make_single_process_communicator() {
  return std::make_unique<SingleProcess>();
}

Communicator& process_communicator() {
  static const std::unique_ptr<Communicator> world = []() -> std::unique_ptr<Communicator> {
    if (!launched_by_mpi()) return make_single_process_communicator();
#ifdef MOEJIT_WITH_MPI
    return make_mpi_communicator();
#else
    throw Error(
        "this process was started by an MPI launcher (mpirun), but this moejit was built without MPI: "
        "rebuild with -DMOEJIT_WITH_MPI=ON (Debian: libopenmpi-dev), or run it without mpirun");
#endif
  }();
  return *world;
}

}  // namespace moejit::runtime
