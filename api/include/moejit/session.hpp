// The C++ API of libmoejit (docs/api.md): tuned kernels and the tuning cache for a program that has
// its own trainer. A Session is one backend ("host" or "cuda") and one tuning cache; problems are
// described with the registry's typed vocabulary (moejit/family.hpp, moejit/problem.hpp):
//
//   moejit::Session session({.backend = "host"});
//   const moejit::Problem p(moejit::Family::swiglu_fwd, moejit::DType::f32, moejit::RowsShape{1, 256}, 64);
//   session.tune(p);                                   // measured, recorded in the tuning cache
//   moejit::Choice c = session.lookup(p);              // c.rung == moejit::Rung::exact
//   auto kernel = session.load(p);                     // compiled (binary cache) and loaded
//   void* tensors[] = {gate_up, out};
//   kernel->launch(tensors);                           // on the host: returns when done
//
// A thin facade: lookup is tuning_cache's ladder, tune is autotune's tuner, load and launch are the
// templates' renderers and launchers on jit's backends. Errors are thrown as moejit::Error (and its
// subclasses, moejit/error.hpp) with a message naming the fix. The C API (moejit/moejit.h) wraps it.
#pragma once
#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "moejit/config.hpp"
#include "moejit/error.hpp"
#include "moejit/family.hpp"
#include "moejit/problem.hpp"
#include "moejit/rung.hpp"

namespace moejit {

class Backend;
class Kernel;
struct DeviceDescription;

// A problem the library cannot serve as described: a shape dimension or token count <= 0, a wrong
// tensor count (unknown family names throw Error from parse_family, naming the known ones).
class InvalidProblemError : public Error {
 public:
  using Error::Error;
};
// A tuning cache or bundle file that cannot be read (malformed JSON, another schema); the message
// names the file and the fix.
class CacheError : public Error {
 public:
  using Error::Error;
};

struct SessionOptions {
  std::string backend = "host";      // "host" (Clang/LLVM on the CPU) or "cuda"
  std::filesystem::path tuning_dir;  // the tuning cache; empty: $MOEJIT_CACHE_DIR/tuning
  unsigned threads = 0;              // host kernels' worker threads; 0: every hardware thread
  // cuda only: the caller's CUstream (or cudaStream_t; the device's primary context) that every
  // launch is queued on, so the kernels order with the caller's own work; null: the session's own.
  void* cuda_stream = nullptr;
};

// The config that serves a problem and where it came from (the lookup ladder's rung).
struct Choice {
  Problem problem;
  Config config;
  Rung rung = Rung::heuristic;
  double time_ms = 0;  // measured time of the decision; 0 for the heuristic
  std::string uri;     // the decision's kernel URI; empty for the heuristic
};

struct TuneSettings {
  int max_candidates = 0;  // 0: no limit
  double max_seconds = 0;  // 0: no limit
  bool quiet = true;       // no progress lines on stderr
};

// An MoE layer, as `moejit tune --shape d_model,d_expert,E,topk` takes it.
struct LayerSpec {
  int64_t d_model = 0, d_expert = 0, experts = 0, top_k = 0;
  DType dtype = DType::f32;  // bf16 for the cuda tensor-core configs
};

// What tune_layer did: each kernel call of the layer's step, by step name ("up_swiglu", "plan"),
// with the choice that serves it afterwards (rung exact where tuning found a correct config).
struct LayerTuning {
  std::vector<std::pair<std::string, Choice>> calls;
  int not_started = 0;  // calls the time budget did not reach
  double seconds = 0;
  int tuned() const;  // calls now served by a tuned decision
};

struct BundleReport {
  int decisions = 0;  // exported, or imported (added + replaced + unchanged)
  int added = 0, replaced = 0, unchanged = 0;
  std::vector<std::string> conflicts;  // import: both measurements kept, the faster one serves
};

// One problem's kernel, compiled and loaded with the config its lookup chose.
class LoadedKernel {
 public:
  virtual ~LoadedKernel() = default;
  virtual const Choice& choice() const = 0;
  // Runs the kernel on the family's tensors, in the order docs/api.md lists ("Launch"), addresses
  // the backend can use (host memory on the host, device memory on cuda). On the host it returns
  // when the kernel is done; on cuda it is queued on the session's stream (the caller's, with
  // SessionOptions::cuda_stream). Throws Error for a family the API cannot launch yet or a wrong
  // tensor count.
  virtual void launch(std::span<void* const> tensors) = 0;
};

class Session {
 public:
  // Opens the backend and the tuning cache, reading every file in it: throws CacheError naming a
  // damaged one, UnavailableError for a backend this machine or build lacks.
  explicit Session(const SessionOptions& options = {});
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  const std::string& backend() const;
  const DeviceDescription& device() const;
  const std::filesystem::path& tuning_dir() const;

  // The config the runtime would run for `problem`, and the rung that answered.
  Choice lookup(const Problem& problem);
  // Tunes `problem` (at its token bucket) on this session's device and records the decision.
  // Throws Error when no candidate passed the correctness gate.
  Choice tune(const Problem& problem, const TuneSettings& settings = {});
  // Tunes every kernel call of the layer's training step (routing, grouped GEMMs, SwiGLU backward)
  // at each token count, as `moejit tune --shape` does; settings.max_seconds bounds the whole layer.
  // Throws InvalidProblemError for a dimension or token count <= 0 or no token count.
  LayerTuning tune_layer(const LayerSpec& layer, std::span<const int64_t> tokens, const TuneSettings& settings = {});
  // Looks `problem` up, then renders, compiles (through the binary cache) and loads its kernel.
  std::unique_ptr<LoadedKernel> load(const Problem& problem);
  // Waits for every launched kernel (a no-op on the host).
  void synchronize();

  // Bundles (docs/tuning_cache.md): every decision of the cache, or a file merged into it.
  BundleReport export_bundle(const std::filesystem::path& file);
  BundleReport import_bundle(const std::filesystem::path& file);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// How many tensors LoadedKernel::launch takes for `family`; 0 when the API cannot launch it.
int launch_tensor_count(Family family, std::string_view backend);

}  // namespace moejit
