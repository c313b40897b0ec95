#include "toy_backend.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <random>
#include <thread>

#include "moejit/error.hpp"

namespace moejit::toy {
namespace {

double default_cost(const Config& c) {
  // One clear optimum at a=5, b=4.
  const double a = static_cast<double>(c.get("a")), b = std::log2(static_cast<double>(c.get("b")));
  return 100.0 + 10.0 * (a - 5) * (a - 5) + 7.0 * (b - 2) * (b - 2);
}

class ToyKernel final : public Kernel {
 public:
  explicit ToyKernel(std::string entry) : name_(std::move(entry)), config_(Config::parse(name_.substr(4))) {
    auto it = world().plans.find(config_.to_string());
    plan_ = it == world().plans.end() ? Plan::normal : it->second;
    cost_ns_ = static_cast<long>(1000.0 * (world().cost_us ? world().cost_us(config_) : default_cost(config_)));
    load_ = ++world().loads[config_.to_string()];
  }
  // args: (const float* x, float* y, int64 n)
  void launch(const LaunchDims&, void** args) override {
    const float* x = *static_cast<const float**>(args[0]);
    float* y = *static_cast<float**>(args[1]);
    const int64_t n = *static_cast<int64_t*>(args[2]);
    if (plan_ == Plan::crash) std::raise(SIGSEGV);
    if (plan_ == Plan::hang)
      for (;;) std::this_thread::sleep_for(std::chrono::seconds(1));
    for (int64_t i = 0; i < n; ++i) y[i] = plan_ == Plan::wrong && i == n / 2 ? 2 * x[i] : 2 * x[i] + 1;
    const double slowdown = world().slowdown ? world().slowdown(config_, load_, calls_++) : 1.0;
    world().virtual_ns.fetch_add(static_cast<long>(slowdown * static_cast<double>(cost_ns_)));
  }
  const std::string& name() const override { return name_; }

 private:
  std::string name_;
  Config config_;
  Plan plan_ = Plan::normal;
  long cost_ns_ = 0;
  int load_ = 0;
  long calls_ = 0;
};

}  // namespace

World& world() {
  static World* w = new World;
  return *w;
}

void reset_world() {
  World& w = world();
  w.params = {{"a", {1, 2, 3, 4, 5, 6, 7, 8}}, {"b", {1, 2, 4, 8}}};
  w.max_product = 32;
  w.heuristic = Config{{"a", 2}, {"b", 2}};
  w.cost_us = nullptr;
  w.slowdown = nullptr;
  w.loads.clear();
  w.plans.clear();
  w.measured_log.clear();
  w.check_sleep_ms = 0;
  w.compiles = 0;
  w.virtual_ns = 0;
  w.include_dirs.clear();
  w.template_include.clear();
}

Binary ToyCompiler::do_compile(const Source& source) const {
  world().compiles.fetch_add(1);
  if (source.code.find("#error") != std::string::npos)
    throw CompileError(source.file_name + ":2: error: planted compile error", source.code);
  Binary b;
  b.family = source.family;
  b.config = source.config;
  b.arch = arch();
  b.kind = binary_kind();
  b.compiler = id();
  b.key = source.family + "." + source.config;
  b.image.assign(source.code.begin(), source.code.end());
  return b;
}

ToyBackend::ToyBackend() {
  device_.backend = "toy";
  device_.name = "Toy CPU";
  device_.arch = "toy1";
  device_.compute_units = 2;
  device_.l2_bytes = 1 << 20;
}

std::shared_ptr<const Binary> ToyBackend::build(const Source& source) {
  {
    std::lock_guard lock(mutex_);
    if (auto it = built_.find(source.code); it != built_.end()) return it->second;
  }
  auto binary = std::make_shared<const Binary>(compiler_.compile(source));
  std::lock_guard lock(mutex_);
  return built_.emplace(source.code, binary).first->second;
}

std::unique_ptr<Kernel> ToyBackend::load(std::shared_ptr<const Binary>, const std::string& entry) {
  if (entry.rfind("toy:", 0) != 0) throw Error("toy backend: unknown entry " + entry);
  return std::make_unique<ToyKernel>(entry);
}

void* ToyBackend::allocate(size_t bytes) {
  void* p = std::malloc(bytes);
  if (!p) throw Error("toy backend: out of memory");
  return p;
}
void ToyBackend::release(void* ptr) noexcept {
  std::free(ptr);
}
void ToyBackend::copy_to_device(void* dst, const void* src, size_t bytes) {
  std::memcpy(dst, src, bytes);
}
void ToyBackend::copy_to_host(void* dst, const void* src, size_t bytes) {
  std::memcpy(dst, src, bytes);
}
void ToyBackend::copy_device_to_device(void* dst, const void* src, size_t bytes) {
  std::memcpy(dst, src, bytes);
}
void ToyBackend::fill_bytes(void* dst, uint8_t value, size_t bytes) {
  std::memset(dst, value, bytes);
}

double ToyBackend::time_ms(const std::function<void()>& work) {
  const long before = world().virtual_ns.load();
  work();
  return static_cast<double>(world().virtual_ns.load() - before) / 1e6;
}

std::vector<Config> ToySpec::space(const Problem&, const DeviceDescription&) const {
  std::vector<Config> configs{Config{}};
  for (const auto& [name, values] : world().params) {
    std::vector<Config> grown;
    for (const Config& c : configs)
      for (int64_t v : values) {
        Config next = c;
        next.set(name, v);
        grown.push_back(next);
      }
    configs = std::move(grown);
  }
  return configs;
}

std::string ToySpec::prune_reason(const Problem&, const Config& config, const DeviceDescription&) const {
  int64_t product = 1;
  for (const auto& [name, value] : config.params()) product *= value;
  if (product > world().max_product)
    return "too big: product " + std::to_string(product) + " > " + std::to_string(world().max_product);
  return {};
}

Config ToySpec::heuristic(const Problem&, const DeviceDescription&) const {
  return world().heuristic;
}

Source ToySpec::render(const Problem& problem, const Config& config, const DeviceDescription& device) const {
  if (std::string why = prune_reason(problem, config, device); !why.empty()) throw Error("toy: " + why);
  Source s;
  s.family = to_string(family_);
  s.dtype = to_string(problem.dtype);
  s.shape = "any";
  s.config = config.to_string();
  s.file_name = s.stem() + ".cpp";
  s.code = "// toy " + s.config + "\n";
  if (!world().template_include.empty()) s.code += "#include \"" + world().template_include + "\"\n";
  auto it = world().plans.find(s.config);
  if (it != world().plans.end() && it->second == Plan::compile_error) s.code += "#error planted\n";
  s.entries = {"toy:" + s.config};
  return s;
}

Problem toy_problem(int64_t tokens) {
  return Problem(kToyFamily, DType::f32, RowsShape{2, 32}, tokens);
}

size_t ToyWorkload::bytes_per_copy(const Problem& p) const {
  return static_cast<size_t>(p.tokens * p.row_shape().width) * 2 * sizeof(float);
}

void ToyWorkload::prepare(Backend& backend, const Problem& problem, int copies, std::shared_ptr<ThreadPool>) {
  backend_ = &backend;
  n_ = problem.tokens * problem.row_shape().width;
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> dist(-1, 1);
  host_x_.resize(static_cast<size_t>(n_));
  for (float& v : host_x_) v = dist(rng);
  x_.clear();
  y_.clear();
  for (int c = 0; c < copies; ++c) {
    x_.push_back(DeviceBuffer::from(backend, host_x_));
    y_.emplace_back(backend, host_x_.size() * sizeof(float));
  }
}

void ToyWorkload::run(LoadedCandidate& candidate, int copy) {
  const size_t c = static_cast<size_t>(copy) % x_.size();
  void* x = x_[c].get();
  void* y = y_[c].get();
  void* args[] = {&x, &y, &n_};
  candidate.kernels.at(0)->launch(LaunchDims{}, args);
}

CheckResult ToyWorkload::check(LoadedCandidate& candidate) {
  World& w = world();
  if (!w.measured_log.empty()) {
    std::string line = candidate.config.to_string() + "\n";
    int fd = ::open(w.measured_log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      (void)!::write(fd, line.data(), line.size());
      ::close(fd);
    }
  }
  if (w.check_sleep_ms) std::this_thread::sleep_for(std::chrono::milliseconds(w.check_sleep_ms));
  y_[0].fill(0xFF);
  run(candidate, 0);
  std::vector<float> y = y_[0].to_host<float>();
  CheckResult r;
  r.ok = true;
  for (size_t i = 0; i < y.size(); ++i) {
    const double want = 2.0 * host_x_[i] + 1.0, error = std::fabs(y[i] - want);
    if (!(error <= 1e-6 + std::fabs(want) * 1e-6)) {
      if (r.ok)
        r.detail = "y[" + std::to_string(i) + "] = " + std::to_string(y[i]) + ", expected " + std::to_string(want);
      r.ok = false;
      if (!(error <= r.max_error)) r.max_error = error;
    }
  }
  return r;
}

Throughput ToyWorkload::throughput(const Problem& problem, double time_ms) const {
  return {time_ms > 0 ? static_cast<double>(bytes_per_copy(problem)) / (time_ms * 1e-3) / 1e9 : 0, "GB/s"};
}

}  // namespace moejit::toy
