// The C++ API's Session: the tuning cache's lookup ladder, the autotuner, the templates' renderers
// and launchers, on one of jit's backends. Nothing here decides anything of its own.
#include "moejit/session.hpp"

#include <map>

#include "autotuner.hpp"
#include "bundle.hpp"
#include "files.hpp"
#include "host/grouped_gemm_spec.hpp"
#include "lookup.hpp"
#include "moejit/backend.hpp"
#include "moejit/kernel_spec.hpp"
#include "open_backend.hpp"
#include "swiglu/swiglu_spec.hpp"
#include "workload.hpp"

namespace fs = std::filesystem;

namespace moejit {
namespace {

// Every dimension of the shape and the token count must be positive: a kernel for an empty or
// negative extent has nothing to compute, and the specs' arithmetic assumes it cannot happen.
void check_problem(const Problem& problem) {
  for (const ShapeDim& dim : shape_dims(problem.shape))
    if (dim.value <= 0)
      throw InvalidProblemError("bad shape for " + std::string(to_string(problem.family)) + ": " +
                                std::string(dim.name) + " is " + std::to_string(dim.value) +
                                ", every dimension must be > 0 (" + problem.to_string() + ")");
  if (problem.tokens <= 0)
    throw InvalidProblemError("bad token count " + std::to_string(problem.tokens) + " for " + problem.to_string() +
                              ": tokens must be > 0");
}

// Opening the cache reads every file in it, so a damaged one is reported here, naming it, rather
// than silently served by the heuristic (which is what the training runtime prefers).
void check_cache(const fs::path& dir) {
  try {
    (void)TuningStore(dir).load_all();
  } catch (const Error& e) {
    throw CacheError(std::string("tuning cache ") + dir.string() + ": " + e.what() +
                     "; move the file away or rebuild it with `moejit tune`");
  }
}

Choice choice_of(const Problem& problem, const LookupResult& found) {
  Choice c{problem, found.config, found.rung, 0, ""};
  if (found.decision) {
    c.time_ms = found.decision->time_ms;
    c.uri = found.decision->uri();
  }
  return c;
}

class LoadedKernelImpl final : public LoadedKernel {
 public:
  LoadedKernelImpl(Backend& backend, Choice choice, std::vector<std::unique_ptr<Kernel>> kernels)
      : backend_(backend), choice_(std::move(choice)), kernels_(std::move(kernels)) {}
  const Choice& choice() const override { return choice_; }
  void launch(std::span<void* const> t) override;

 private:
  Backend& backend_;
  Choice choice_;
  std::vector<std::unique_ptr<Kernel>> kernels_;
};

void LoadedKernelImpl::launch(std::span<void* const> t) {
  const Problem& p = choice_.problem;
  const int want = launch_tensor_count(p.family, backend_.name());
  if (want == 0)
    throw Error("launching " + std::string(to_string(p.family)) + " on " + backend_.name() +
                " is not in the library API yet (docs/api.md lists the families it launches)");
  if (static_cast<int>(t.size()) != want)
    throw InvalidProblemError(std::string(to_string(p.family)) + " takes " + std::to_string(want) +
                              " tensors (docs/api.md), got " + std::to_string(t.size()));
  Kernel& k = *kernels_.at(0);
  const Config& c = choice_.config;
  switch (p.family) {
    case Family::swiglu_fwd:
      return launch_swiglu_fwd(k, p, c, backend_.device(), t[0], t[1]);
    case Family::swiglu_bwd:
      return launch_swiglu_bwd(k, p, c, backend_.device(), t[0], t[1], t[2]);
    case Family::grouped_gemm_fwd:  // host only (launch_tensor_count)
      return launch_host_gemm_fwd(k, p, c, static_cast<const float*>(t[0]), static_cast<const float*>(t[1]),
                                  static_cast<float*>(t[2]), static_cast<const int64_t*>(t[3]));
    default:
      throw Error("unreachable: launch_tensor_count admits " + std::string(to_string(p.family)));
  }
}

}  // namespace

int launch_tensor_count(Family family, std::string_view backend) {
  switch (family) {
    case Family::swiglu_fwd:
      return 2;  // gate_up (rows, 2F), out (rows, F)
    case Family::swiglu_bwd:
      return 3;  // gate_up (rows, 2F), dh (rows, F), d_gate_up (rows, 2F)
    case Family::grouped_gemm_fwd:
      return backend == "host" ? 4 : 0;  // x (rows, K), w (E, K, N), y (rows, N), offsets (E + 1, int64)
    default:
      return 0;
  }
}

struct Session::Impl {
  explicit Impl(const SessionOptions& o)
      : backend(open_backend(o.backend, o.threads)),
        backend_name(backend->name()),
        dir(o.tuning_dir.empty() ? TuningStore::default_dir() : o.tuning_dir),
        lookup(TuningStore(dir)) {}

  const KernelSpec& spec(const Problem& problem) {
    check_problem(problem);
    return spec_for(problem.family, backend_name);  // throws naming the backends of the family
  }

  std::unique_ptr<Backend> backend;
  std::string backend_name;
  fs::path dir;
  TuningLookup lookup;
};

Session::Session(const SessionOptions& options) {
  check_cache(options.tuning_dir.empty() ? TuningStore::default_dir() : options.tuning_dir);
  impl_ = std::make_unique<Impl>(options);
}
Session::~Session() = default;

const std::string& Session::backend() const {
  return impl_->backend_name;
}
const DeviceDescription& Session::device() const {
  return impl_->backend->device();
}
const fs::path& Session::tuning_dir() const {
  return impl_->dir;
}

Choice Session::lookup(const Problem& problem) {
  const KernelSpec& spec = impl_->spec(problem);
  return choice_of(problem, impl_->lookup.lookup(spec, problem, *impl_->backend));
}

Choice Session::tune(const Problem& problem, const TuneSettings& settings) {
  const KernelSpec& spec = impl_->spec(problem);
  std::unique_ptr<Workload> workload = make_workload(problem.family, impl_->backend_name);
  TuneOptions options;
  // A faulting host candidate is contained in a child process; a CUDA context does not survive
  // fork and spawning needs the CLI, so a library tunes CUDA kernels in process.
  options.isolation = impl_->backend_name == "host" ? Isolation::fork : Isolation::none;
  options.max_candidates = settings.max_candidates;
  options.max_seconds = settings.max_seconds;
  options.tuning_dir = impl_->dir;
  options.progress = settings.quiet ? nullptr : stderr;
  const TuneResult result = moejit::tune(*impl_->backend, spec, *workload, problem, options);
  if (!result.decision) throw Error("tuning " + problem.to_string() + " found no correct config: " + result.summary());
  impl_->lookup.refresh();
  return lookup(problem);
}

std::unique_ptr<LoadedKernel> Session::load(const Problem& problem) {
  Choice choice = lookup(problem);
  Backend& backend = *impl_->backend;
  const Source source = spec_for(problem.family, impl_->backend_name).render(problem, choice.config, backend.device());
  auto binary = backend.build(source);
  std::vector<std::unique_ptr<Kernel>> kernels;
  for (const auto& entry : source.entries) kernels.push_back(backend.load(binary, entry));
  return std::make_unique<LoadedKernelImpl>(backend, std::move(choice), std::move(kernels));
}

void Session::synchronize() {
  impl_->backend->synchronize();
}

BundleReport Session::export_bundle(const fs::path& file) {
  const Bundle bundle = moejit::export_bundle(TuningStore(impl_->dir));
  write_file_atomic(file, render_bundle(bundle));
  BundleReport report;
  report.decisions = static_cast<int>(bundle.decisions.size());
  return report;
}

BundleReport Session::import_bundle(const fs::path& file) {
  const auto text = read_file(file);
  if (!text) throw Error("bundle " + file.string() + " does not exist");
  Bundle bundle;
  try {
    bundle = parse_bundle(*text, file.string());  // all or nothing: the cache is untouched on error
  } catch (const Error& e) {
    throw CacheError(e.what());
  }
  TuningStore store(impl_->dir);
  const TuningStore::WriteReport w = moejit::import_bundle(store, bundle);
  impl_->lookup.refresh();
  return {w.added + w.replaced + w.unchanged, w.added, w.replaced, w.unchanged, w.conflicts};
}

}  // namespace moejit
