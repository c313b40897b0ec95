// Profiler scopes timed on the cuda backend's stream (profile.hpp's DeviceTimer): a CUDA event per
// mark, read once the step is done. Only in eager steps: a captured or replayed step runs as one
// graph launch, with no per-family times (bench_train_host profiles the cuda step with
// MOEJIT_NO_GRAPH=1 for its breakdown). Compiled here; runs only on a GPU.
#pragma once
#include <vector>

#include "cuda_backend.hpp"
#include "cuda_step_graph.hpp"
#include "profile.hpp"

namespace moejit::runtime {

class CudaStepTimer final : public DeviceTimer {
 public:
  CudaStepTimer(CudaBackend& gpu, const StepGraph& graph) : gpu_(gpu), graph_(graph) {}
  ~CudaStepTimer() override;
  CudaStepTimer(const CudaStepTimer&) = delete;
  CudaStepTimer& operator=(const CudaStepTimer&) = delete;

  int mark() override;
  double seconds(int from, int to) override;
  void reset() override { used_ = 0; }

 private:
  CudaBackend& gpu_;
  const StepGraph& graph_;
  std::vector<CUevent> events_;  // created on demand, reused after reset()
  size_t used_ = 0;
};

}  // namespace moejit::runtime
