#include "cuda_step_graph.hpp"

#include <cstdlib>

namespace moejit::runtime {

StepMode step_mode(const StepGraphState& s) {
  if (s.disabled || !s.refusal.empty()) return StepMode::eager;
  if (s.graph_current) return StepMode::replay;
  return s.eager_steps >= kGraphWarmupSteps ? StepMode::capture : StepMode::eager;
}

std::string eager_notice(const StepGraphState& s) {
  if (s.disabled) return "cuda: MOEJIT_NO_GRAPH is set: every step runs eagerly (no CUDA graph)";
  if (!s.refusal.empty()) return "cuda: steps run eagerly, not as one CUDA graph: " + s.refusal;
  return "";
}

bool graphs_disabled_by_env() {
  const char* v = std::getenv("MOEJIT_NO_GRAPH");
  return v && *v && std::string(v) != "0";
}

StepGraph::StepGraph(CudaBackend& gpu, std::function<void(const std::string&)> notify)
    : graph_(gpu), notify_(std::move(notify)) {
  state_.disabled = graphs_disabled_by_env();
}

void StepGraph::begin_step(const std::string& refusal) {
  state_.refusal = refusal;
  mode_ = step_mode(state_);
  if (const std::string notice = eager_notice(state_); !notice.empty() && notice != last_notice_) {
    notify_(notice);
    last_notice_ = notice;
  }
  if (mode_ == StepMode::capture) graph_.begin_capture();
  if (mode_ == StepMode::replay) graph_.begin_replay();
}

void StepGraph::end_step() {
  switch (mode_) {
    case StepMode::eager:
      ++state_.eager_steps;
      break;
    case StepMode::capture:
      graph_.end_capture();
      state_.graph_current = true;
      break;
    case StepMode::replay:
      graph_.end_replay();
      ++replays_;
      break;
  }
  mode_ = StepMode::eager;
}

void StepGraph::abandon_step() noexcept {
  if (mode_ != StepMode::eager) graph_.abandon();
  state_.graph_current = false;
  state_.eager_steps = 0;
  mode_ = StepMode::eager;
}

void StepGraph::buffers_changed() {
  state_.graph_current = false;
  state_.eager_steps = 0;
}

}  // namespace moejit::runtime
