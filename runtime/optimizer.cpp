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

std::vector<ParamRange> param_ranges(const std::vector<ParamTensor>& tensors, bool split_experts) {
  std::vector<ParamRange> v;
  for (const auto& t : tensors) {
    const bool per_expert = split_experts && t.per_expert();
    if (!v.empty() && v.back().per_expert == per_expert && v.back().offset + v.back().size == t.offset)
      v.back().size += t.size;
    else
      v.push_back({t.offset, t.size, per_expert});
  }
  return v;
}

template <typename T>
AdamW<T>::AdamW(Model<T>& model, Communicator* expert_group)
    : model_(model), expert_group_(expert_group), segments_(param_segments(model.tensors())) {
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
  if (expert_group_ && expert_group_->size() > 1)
    sharded_grad_norm();
  else
    be.grad_norm(norm_, model_.grads(), n);
  ++step_;
  AdamWStep s{lr, beta1, beta2, eps, weight_decay, step_, max_norm};
  be.adamw(model_.params(), model_.weights(), model_.grads(), m_, v_, norm_, n, segments_, s);
}

// The norm of the whole model's gradient when this rank holds only its experts' part: the squared
// norms of its per-expert ranges summed over the expert group (each rank holds other experts), plus
// those of the tensors every rank holds (already the same everywhere). Waits for the backend.
template <typename T>
void AdamW<T>::sharded_grad_norm() {
  StepBackend<T>& be = model_.backend();
  double squares[2] = {0, 0};  // [shared tensors, per-expert tensors]
  for (const ParamRange& r : param_ranges(model_.tensors())) {
    be.grad_norm(norm_, model_.grads().at(r.offset), r.size);
    const double part = double(be.template download<T>(norm_, 1)[0]);
    squares[r.per_expert ? 1 : 0] += part * part;
  }
  expert_group_->allreduce_sum(std::span<double>(&squares[1], 1));
  const T norm = T(std::sqrt(squares[0] + squares[1]));
  be.upload(norm_, std::span<const T>(&norm, 1));
}

template class AdamW<float>;
template class AdamW<double>;

}  // namespace moejit::runtime
