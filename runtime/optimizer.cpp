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

void AdamW::update(std::vector<float>& params, const std::vector<float>& grads, const std::vector<uint8_t>& decay,
                   double lr) {
  ++step_;
  const float b1 = float(beta1), b2 = float(beta2);
  const float c1 = float(1.0 - std::pow(beta1, double(step_))), c2 = float(1.0 - std::pow(beta2, double(step_)));
  const float flr = float(lr), fwd = float(weight_decay), feps = float(eps);
  for (size_t i = 0; i < params.size(); ++i) {
    float g = grads[i];
    m_[i] = b1 * m_[i] + (1.0f - b1) * g;
    v_[i] = b2 * v_[i] + (1.0f - b2) * g * g;
    float update = (m_[i] / c1) / (std::sqrt(v_[i] / c2) + feps);
    if (decay[i]) update += fwd * params[i];
    params[i] -= flr * update;
  }
}

double clip_grad_norm(std::vector<float>& grads, double max_norm) {
  double sum = 0;
  for (float g : grads) sum += double(g) * double(g);
  double norm = std::sqrt(sum);
  if (norm > max_norm) {
    float scale = float(max_norm / norm);
    for (float& g : grads) g *= scale;
  }
  return norm;
}

std::vector<uint8_t> decay_mask(const std::vector<ParamTensor>& tensors, size_t n_params) {
  std::vector<uint8_t> mask(n_params, 0);
  for (const auto& t : tensors)
    if (t.decay) std::fill(mask.begin() + t.offset, mask.begin() + t.offset + t.size, uint8_t(1));
  return mask;
}

}  // namespace moejit::runtime
