// One step's device work as a CUDA graph: captured once from the backend's stream (the step's host
// code runs, its ops are recorded into the graph and into the backend's EnqueueLog), then replayed
// (the step's host code runs again with enqueueing off, each op checked against the capture, the
// staged uploads rewritten; then one cuGraphLaunch). Compiled here; runs only where a GPU is lent.
#pragma once
#include "cuda_backend.hpp"

namespace moejit {

class CudaGraph {
 public:
  explicit CudaGraph(CudaBackend& gpu) : gpu_(gpu) {}
  ~CudaGraph() { reset(); }
  CudaGraph(const CudaGraph&) = delete;
  CudaGraph& operator=(const CudaGraph&) = delete;

  // Capture: drops the previous graph, starts recording the stream (relaxed mode: allocation by
  // other threads stays legal; the backend itself refuses to allocate inside the step).
  void begin_capture();
  // Ends the capture, instantiates it and launches it once (the captured step has not run yet).
  void end_capture();
  // Replay: the step's host code runs between the two; end_replay throws if it diverged.
  void begin_replay();
  void end_replay();
  // A step that threw: ends a capture in progress and drops the graph (the next step runs eagerly).
  void abandon() noexcept;
  bool ready() const { return exec_ != nullptr; }

 private:
  void reset() noexcept;
  void launch();

  CudaBackend& gpu_;
  CUgraph graph_ = nullptr;
  CUgraphExec exec_ = nullptr;
  bool capturing_ = false;
};

}  // namespace moejit
