#include "cuda_graph.hpp"

namespace moejit {

void CudaGraph::reset() noexcept {
  const CudaDriver& d = CudaDriver::get();  // a CudaBackend exists, so the driver loaded
  if (exec_) d.cuGraphExecDestroy(exec_);
  if (graph_) d.cuGraphDestroy(graph_);
  exec_ = nullptr;
  graph_ = nullptr;
}

void CudaGraph::begin_capture() {
  reset();
  gpu_.begin_enqueue(EnqueueLog::Mode::record);
  gpu_.make_current();
  check_cuda(CudaDriver::get().cuStreamBeginCapture(gpu_.stream(), CU_STREAM_CAPTURE_MODE_RELAXED),
             "cuStreamBeginCapture");
  capturing_ = true;
}

void CudaGraph::end_capture() {
  const CudaDriver& d = CudaDriver::get();
  capturing_ = false;
  gpu_.end_enqueue();
  check_cuda(d.cuStreamEndCapture(gpu_.stream(), &graph_),
             "cuStreamEndCapture (an op of the step cannot be captured: MOEJIT_NO_GRAPH=1 runs it eagerly)");
  check_cuda(d.cuGraphInstantiateWithFlags(&exec_, graph_, 0), "cuGraphInstantiate");
  launch();
}

void CudaGraph::begin_replay() {
  gpu_.begin_enqueue(EnqueueLog::Mode::check);
}

void CudaGraph::end_replay() {
  gpu_.end_enqueue();
  launch();
}

void CudaGraph::launch() {
  gpu_.make_current();
  check_cuda(CudaDriver::get().cuGraphLaunch(exec_, gpu_.stream()), "cuGraphLaunch");
}

void CudaGraph::abandon() noexcept {
  if (capturing_) {
    CUgraph partial = nullptr;
    CudaDriver::get().cuStreamEndCapture(gpu_.stream(), &partial);  // fails if invalidated: nothing to keep
    if (partial) CudaDriver::get().cuGraphDestroy(partial);
    capturing_ = false;
  }
  try {
    gpu_.end_enqueue();
  } catch (...) {  // a replay cut short: its divergence is not the error being reported
  }
  reset();
}

}  // namespace moejit
