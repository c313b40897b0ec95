#include "cuda_step_timer.hpp"

#include "cuda_driver.hpp"

namespace moejit::runtime {

CudaStepTimer::~CudaStepTimer() {
  if (events_.empty()) return;
  gpu_.make_current();
  for (CUevent e : events_) CudaDriver::get().cuEventDestroy(e);
}

int CudaStepTimer::mark() {
  if (graph_.graph_step()) return -1;
  const CudaDriver& d = CudaDriver::get();
  gpu_.make_current();
  if (used_ == events_.size()) {
    CUevent e = nullptr;
    check_cuda(d.cuEventCreate(&e, CU_EVENT_DEFAULT), "cuEventCreate");
    events_.push_back(e);
  }
  check_cuda(d.cuEventRecord(events_[used_], gpu_.stream()), "cuEventRecord");
  return int(used_++);
}

double CudaStepTimer::seconds(int from, int to) {
  const CudaDriver& d = CudaDriver::get();
  gpu_.make_current();
  check_cuda(d.cuEventSynchronize(events_.at(size_t(to))), "cuEventSynchronize");
  float ms = 0;
  check_cuda(d.cuEventElapsedTime(&ms, events_.at(size_t(from)), events_[size_t(to)]), "cuEventElapsedTime");
  return double(ms) * 1e-3;
}

}  // namespace moejit::runtime
