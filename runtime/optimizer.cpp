#include "optimizer.hpp"

#include <algorithm>
#include <cmath>

namespace moejit::runtime {

int64_t LrSchedule::warmup_rule(int64_t total_steps, int64_t override_steps) {
  if (override_steps >= 0) return override_steps;
  int64_t rule = std::clamp<int64_t>(int64_t(0.01 * double(total_steps)), 200, 2000);
  return std::min(rule, total_steps / 2);
}

double LrSchedule::lr(int64_t step) const {
  if (step < warmup_steps) return max_lr * double(step + 1) / double(warmup_steps);
  int64_t decay_steps = std::max<int64_t>(1, total_steps - warmup_steps);
  double progress = std::min(1.0, double(step - warmup_steps) / double(decay_steps));
  return min_lr + 0.5 * (max_lr - min_lr) * (1.0 + std::cos(M_PI * progress));
}

std::vector<ParamSegment> param_segments(const std::vector<ParamTensor>& tensors) {
  std::vector<ParamSegment> v;
  for (const auto& t : tensors) {
    if (!v.empty() && v.back().decay == t.decay && v.back().offset + v.back().size == t.offset)
      v.back().size += t.size;  // merge neighbours: fewer, longer segments
    else
      v.push_back({t.offset, t.size, t.decay});
  }
  return v;
}

template <typename T>
AdamW<T>::AdamW(Model<T>& model) : model_(model), segments_(param_segments(model.tensors())) {
  StepBackend<T>& be = model.backend();
  const int64_t n = model.param_count();
  m_ = be.alloc(dtype_of<T>(), n);
  v_ = be.alloc(dtype_of<T>(), n);
  norm_ = be.alloc(dtype_of<T>(), 1);
  be.zero(m_, n);
  be.zero(v_, n);
  be.zero(norm_, 1);
}

template <typename T>
void AdamW<T>::step(double lr) {
  StepBackend<T>& be = model_.backend();
  const int64_t n = model_.param_count();
  be.grad_norm(norm_, model_.grads(), n);
  ++step_;
  AdamWStep s{lr, beta1, beta2, eps, weight_decay, step_, max_norm};
  be.adamw(model_.params(), model_.weights(), model_.grads(), m_, v_, norm_, n, segments_, s);
}

template class AdamW<float>;
template class AdamW<double>;

}  // namespace moejit::runtime
