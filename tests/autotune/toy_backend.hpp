// A test-only Backend whose "kernels" are C++ functions, so the autotuner's machinery (search,
// gate, journal, isolation, budgets) is tested without a GPU or the LLVM host backend.
// Kernel "toy:<config>" computes y = 2x + 1 over n floats and advances a virtual clock by the
// config's cost, so timings are exact and reruns agree. A plan can make a config compute the wrong
// thing, crash (SIGSEGV), hang, or fail to compile.
#pragma once
#include <atomic>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "moejit/backend.hpp"
#include "moejit/kernel_spec.hpp"
#include "workload.hpp"

namespace moejit::toy {

// Families are a closed enum, so the toy borrows a real element-wise one's name (and its RowsShape).
inline constexpr Family kToyFamily = Family::swiglu_fwd;

enum class Plan { normal, wrong, crash, hang, compile_error };

// Shared by the backend, spec and workload of a test (and inherited by forked workers).
struct World {
  std::map<std::string, std::vector<int64_t>> params = {{"a", {1, 2, 3, 4, 5, 6, 7, 8}}, {"b", {1, 2, 4, 8}}};
  int64_t max_product = 32;  // a*b above this is pruned ("too big")
  Config heuristic{{"a", 2}, {"b", 2}};
  std::function<double(const Config&)> cost_us;  // virtual microseconds per call
  // Multiplies a call's cost: the config, which load of it in this process (1, 2, ...), and the
  // call's number on that loaded kernel (0, 1, ...): a core taken away for a while.
  std::function<double(const Config&, int load, long call)> slowdown;
  std::map<std::string, int> loads;   // kernels loaded so far, by config text
  std::map<std::string, Plan> plans;  // by config text
  std::string measured_log;           // if set, check() appends the config text here
  int check_sleep_ms = 0;             // slow measurement down (resume tests)
  std::atomic<long> compiles{0};
  std::atomic<long> virtual_ns{0};
  std::vector<std::string> include_dirs;  // for template-hash tests
  std::string template_include;           // rendered as #include "..." when set
};
World& world();
void reset_world();

class ToyCompiler final : public Compiler {
 public:
  std::string id() const override { return "toycc-1"; }
  std::string arch() const override { return "toy1"; }
  std::string binary_kind() const override { return "o"; }
  std::vector<std::string> effective_options(const Source& s) const override { return s.options; }
  std::vector<std::string> include_dirs() const override { return world().include_dirs; }

 protected:
  Binary do_compile(const Source& source) const override;
};

class ToyBackend final : public Backend {
 public:
  ToyBackend();
  std::string name() const override { return "toy"; }
  const DeviceDescription& device() const override { return device_; }
  DeviceDescription& mutable_device() { return device_; }
  const Compiler& compiler() const override { return compiler_; }
  std::shared_ptr<const Binary> build(const Source& source) override;
  std::unique_ptr<Kernel> load(std::shared_ptr<const Binary> binary, const std::string& entry) override;
  void* allocate(size_t bytes) override;
  void release(void* ptr) noexcept override;
  void copy_to_device(void* dst, const void* src, size_t bytes) override;
  void copy_to_host(void* dst, const void* src, size_t bytes) override;
  void copy_device_to_device(void* dst, const void* src, size_t bytes) override;
  void fill_bytes(void* dst, uint8_t value, size_t bytes) override;
  void synchronize() override {}
  double time_ms(const std::function<void()>& work) override;

 private:
  DeviceDescription device_;
  ToyCompiler compiler_;
  std::mutex mutex_;
  std::map<std::string, std::shared_ptr<const Binary>> built_;
};

class ToySpec final : public KernelSpec {
 public:
  explicit ToySpec(Family family = kToyFamily) : family_(family) {}
  Family family() const override { return family_; }
  bool supports_backend(std::string_view backend) const override { return backend == "toy"; }
  std::vector<Config> space(const Problem& problem, const DeviceDescription& device) const override;
  std::string prune_reason(const Problem& problem, const Config& config,
                           const DeviceDescription& device) const override;
  Config heuristic(const Problem& problem, const DeviceDescription& device) const override;
  Source render(const Problem& problem, const Config& config, const DeviceDescription& device) const override;

 private:
  Family family_;
};

class ToyWorkload final : public Workload {
 public:
  void prepare(Backend& backend, const Problem& problem, int copies, std::shared_ptr<ThreadPool> cpu) override;
  size_t bytes_per_copy(const Problem& problem) const override;
  void run(LoadedCandidate& candidate, int copy) override;
  CheckResult check(LoadedCandidate& candidate) override;
  Throughput throughput(const Problem& problem, double time_ms) const override;
  int copies() const { return static_cast<int>(x_.size()); }

 private:
  Backend* backend_ = nullptr;
  int64_t n_ = 0;
  std::vector<DeviceBuffer> x_, y_;
  std::vector<float> host_x_;
};

Problem toy_problem(int64_t tokens = 256);

}  // namespace moejit::toy
