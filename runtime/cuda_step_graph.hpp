// One CUDA graph per training step (issue 15): after kGraphWarmupSteps eager steps (the first ones
// size every buffer, look every config up and load every kernel), a step is captured once on the
// backend's stream and then replayed: forward, backward and optimizer in one cuGraphLaunch, with no
// host sync inside (the loss and grad-norm stay on the device until the trainer logs them). Per-step
// values (tokens, targets, the AdamW coefficients) reach the graph through staged uploads
// (cuda_backend.hpp). Any change of the backend's buffers (an allocation or a release, e.g. by an
// evaluation) invalidates the graph: the next steps warm up and capture again.
//
// Steps run eagerly, with a one-line notice, under MOEJIT_NO_GRAPH=1 and for steps the trainer
// cannot capture (a data-parallel step sums its gradients through the host). step_mode() is the
// decision, a pure function tested on the CPU; StepGraph runs it (compiled, run only on a GPU).
#pragma once
#include <cstdint>
#include <functional>
#include <string>

#include "cuda_graph.hpp"

namespace moejit::runtime {

inline constexpr int64_t kGraphWarmupSteps = 2;

enum class StepMode { eager, capture, replay };

struct StepGraphState {
  bool disabled = false;       // MOEJIT_NO_GRAPH=1
  std::string refusal;         // why this step cannot be captured; empty when it can
  int64_t eager_steps = 0;     // steps run eagerly since the buffers last changed
  bool graph_current = false;  // a graph was captured since the buffers last changed
};

StepMode step_mode(const StepGraphState& state);

// The notice for a run whose steps are not captured, or empty: MOEJIT_NO_GRAPH, else the refusal.
std::string eager_notice(const StepGraphState& state);

// True when MOEJIT_NO_GRAPH is set to anything but "" or "0".
bool graphs_disabled_by_env();

class StepGraph {
 public:
  // `notify` prints a notice (once per distinct text); the backend outlives this object.
  StepGraph(CudaBackend& gpu, std::function<void(const std::string&)> notify);

  void begin_step(const std::string& refusal);
  void end_step();
  void abandon_step() noexcept;
  // The backend's buffers changed: the captured graph addresses stale memory.
  void buffers_changed();
  int64_t replays() const { return replays_; }
  // A step in progress is being captured or replayed (its work runs as one graph launch).
  bool graph_step() const { return mode_ != StepMode::eager; }

 private:
  CudaGraph graph_;
  std::function<void(const std::string&)> notify_;
  std::string last_notice_;
  StepGraphState state_;
  StepMode mode_ = StepMode::eager;  // of the step in progress
  int64_t replays_ = 0;
};

}  // namespace moejit::runtime
