// The C++ API's Session: the tuning cache's lookup ladder, the autotuner, the templates' renderers
// and launchers, on one of jit's backends. Nothing here decides anything of its own.
#include "moejit/session.hpp"

#include <map>

#include "autotuner.hpp"
#include "bundle.hpp"
#include "cuda_backend.hpp"
#include "files.hpp"
#include "grouped_gemm/grouped_gemm_spec.hpp"
#include "host/grouped_gemm_spec.hpp"
#include "lookup.hpp"
#include "moejit/backend.hpp"
#include "moejit/kernel_spec.hpp"
#include "open_backend.hpp"
#include "swiglu/swiglu_spec.hpp"
#include "tune_layer.hpp"
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

bool is_grouped_gemm(Family f) {
  return f == Family::grouped_gemm_fwd || f == Family::grouped_gemm_up_swiglu || f == Family::grouped_gemm_dgrad ||
         f == Family::grouped_gemm_wgrad;
}

// The grouped GEMM families' tensors in docs/api.md's order; offsets last (int64 on the host, int32
// on cuda, as each backend's launcher takes them).
void launch_grouped(Kernel& k, const Problem& p, const Config& c, const Backend& backend, std::span<void* const> t) {
  if (backend.name() == "host") {
    const auto* off = static_cast<const int64_t*>(t.back());
    auto f = [&](int i) { return static_cast<float*>(t[i]); };
    switch (p.family) {
      case Family::grouped_gemm_fwd:
        return launch_host_gemm_fwd(k, p, c, f(0), f(1), f(2), off);
      case Family::grouped_gemm_up_swiglu:
        return launch_host_gemm_swiglu(k, p, c, f(0), f(1), f(2), f(3), off);
      case Family::grouped_gemm_dgrad:
        return launch_host_gemm_dgrad(k, p, c, f(0), f(1), f(2), off);
      default:
        return launch_host_gemm_wgrad(k, p, c, f(0), f(1), f(2), off);
    }
  }
  GroupedGemmArgs a;
  a.a = t[0], a.b = t[1], a.out = t[2];
  a.offsets = static_cast<const int*>(t.back());
  if (p.family == Family::grouped_gemm_up_swiglu) a.out_gate_up = t[2], a.out = t[3];
  launch_grouped_gemm(k, p, c, backend.device(), a);  // wgrad overwrites dw, as on the host
}

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
  if (is_grouped_gemm(p.family)) return launch_grouped(k, p, c, backend_, t);
  switch (p.family) {
    case Family::swiglu_fwd:
      return launch_swiglu_fwd(k, p, c, backend_.device(), t[0], t[1]);
    case Family::swiglu_bwd:
      return launch_swiglu_bwd(k, p, c, backend_.device(), t[0], t[1], t[2]);
    default:
      throw Error("unreachable: launch_tensor_count admits " + std::string(to_string(p.family)));
  }
}

}  // namespace

int launch_tensor_count(Family family, std::string_view backend) {
  if (backend != "host" && backend != "cuda") return 0;
  switch (family) {
    case Family::swiglu_fwd:
      return 2;  // gate_up (rows, 2F), out (rows, F)
    case Family::swiglu_bwd:
      return 3;                       // gate_up (rows, 2F), dh (rows, F), d_gate_up (rows, 2F)
    case Family::grouped_gemm_fwd:    // x (rows, K), w (E, K, N), y (rows, N), offsets (E + 1)
    case Family::grouped_gemm_dgrad:  // dy (rows, N), w (E, K, N), dx (rows, K), offsets
    case Family::grouped_gemm_wgrad:  // x (rows, K), dy (rows, N), dw (E, K, N), offsets
      return 4;
    case Family::grouped_gemm_up_swiglu:  // x (rows, K), w (E, K, 2N), gate_up (rows, 2N), h (rows, N), offsets
      return 5;
    default:
      return 0;
  }
}

static std::unique_ptr<Backend> open_session_backend(const SessionOptions& o) {
  std::unique_ptr<Backend> backend = open_backend(o.backend, o.threads);
  if (o.cuda_stream) {
    auto* cuda = dynamic_cast<CudaBackend*>(backend.get());
    if (!cuda)
      throw Error("SessionOptions::cuda_stream is for the cuda backend; this session's is " + backend->name() +
                  ": leave it unset");
    cuda->use_stream(static_cast<CUstream>(o.cuda_stream));
  }
  return backend;
}

struct Session::Impl {
  explicit Impl(const SessionOptions& o)
      : backend(open_session_backend(o)),
        backend_name(backend->name()),
        dir(o.tuning_dir.empty() ? TuningStore::default_dir() : o.tuning_dir),
        lookup(TuningStore(dir)) {}

  const KernelSpec& spec(const Problem& problem) {
    check_problem(problem);
    return spec_for(problem.family, backend_name);  // throws naming the backends of the family
  }
  TuneOptions tune_options(const TuneSettings& settings) const;

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

TuneOptions Session::Impl::tune_options(const TuneSettings& settings) const {
  TuneOptions options;
  // In process. A forked child cannot run host kernels: their pool's worker threads do not survive
  // fork(), so a multi-threaded config waits until the candidate timeout and counts as failed (seen
  // under ASan: a layer call left without a decision). A CUDA context does not survive fork either,
  // and spawning isolated workers needs the CLI (`moejit tune` isolates that way).
  options.isolation = Isolation::none;
  options.max_candidates = settings.max_candidates;
  options.max_seconds = settings.max_seconds;
  options.tuning_dir = dir;
  options.progress = settings.quiet ? nullptr : stderr;
  return options;
}

int LayerTuning::tuned() const {
  int n = 0;
  for (const auto& [step, choice] : calls) n += choice.rung == Rung::exact;
  return n;
}

Choice Session::tune(const Problem& problem, const TuneSettings& settings) {
  const KernelSpec& spec = impl_->spec(problem);
  std::unique_ptr<Workload> workload = make_workload(problem.family, impl_->backend_name);
  const TuneResult result = moejit::tune(*impl_->backend, spec, *workload, problem, impl_->tune_options(settings));
  if (!result.decision) throw Error("tuning " + problem.to_string() + " found no correct config: " + result.summary());
  impl_->lookup.refresh();
  return lookup(problem);
}

LayerTuning Session::tune_layer(const LayerSpec& layer, std::span<const int64_t> tokens, const TuneSettings& settings) {
  if (layer.d_model <= 0 || layer.d_expert <= 0 || layer.experts <= 0 || layer.top_k <= 0 ||
      layer.top_k > layer.experts)
    throw InvalidProblemError("bad layer: d_model " + std::to_string(layer.d_model) + ", d_expert " +
                              std::to_string(layer.d_expert) + ", experts " + std::to_string(layer.experts) +
                              ", top_k " + std::to_string(layer.top_k) +
                              ": every dimension must be > 0 and top_k <= experts");
  if (tokens.empty()) throw InvalidProblemError("tune_layer needs at least one token count");
  for (int64_t t : tokens)
    if (t <= 0) throw InvalidProblemError("token count " + std::to_string(t) + ": must be > 0");
  const LayerShape shape{layer.dtype, layer.d_model, layer.d_expert, layer.experts, layer.top_k};
  LayerTuneOptions options;
  options.tune = impl_->tune_options({settings.max_candidates, 0, settings.quiet});
  options.max_seconds = settings.max_seconds;  // the whole layer's budget, not each call's
  const LayerTuneReport report =
      moejit::tune_layer(*impl_->backend, layer_calls(shape, {tokens.begin(), tokens.end()}), options);
  impl_->lookup.refresh();
  LayerTuning out;
  for (const LayerTuneResult& r : report.tuned) out.calls.emplace_back(r.call.name, lookup(r.call.problem));
  out.not_started = static_cast<int>(report.not_started.size());
  out.seconds = report.seconds;
  return out;
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
