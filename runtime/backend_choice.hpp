// Which runtime backends this build and machine can run, and making one by name.
#pragma once
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "step_backend.hpp"
#include "thread_pool.hpp"

namespace moejit::runtime {

struct BackendOptions {
  // The host backend's kernel worker pool (0: one per hardware thread, as `moejit tune` uses, so that
  // the tuned decisions' validators match) and the tuning store to look configs up in (empty:
  // $MOEJIT_CACHE_DIR/tuning).
  unsigned kernel_threads = 0;
  std::filesystem::path tuning_dir;
};

// The backends that can train here, in order of preference: "cuda" where a GPU and driver are
// usable, "host" (when built with the host JIT), then "reference".
std::vector<std::string> available_backends();
// The first of available_backends(): what `moejit train` uses without --backend.
std::string default_backend();

// The dtype a training step on backend `name` runs its activations in (StepBackend::precision()
// .compute), so the problems its kernels are looked up by: what `moejit tune --model` must tune. f32
// on every backend today (cuda keeps fp32 activations; its grouped GEMMs read bf16 copies).
DType step_compute_dtype(std::string_view backend);

// The backend `name` on the loops of `par`. Throws Error before doing any work when it cannot run
// here, naming what is missing and the available backends.
std::unique_ptr<StepBackend<float>> make_step_backend(const std::string& name, ThreadPool& par,
                                                      const BackendOptions& options = {});

}  // namespace moejit::runtime
