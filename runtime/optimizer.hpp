// AdamW with decoupled weight decay, global-norm gradient clipping, and the paper's schedule: linear
// warm-up for clip(0.01 * total_steps, 200, 2000) steps, then cosine decay to a floor.
#pragma once
#include <cstdint>
#include <vector>

#include "model.hpp"

namespace moejit::runtime {

struct LrSchedule {
  double max_lr = 3e-3;
  double min_lr = 1e-5;  // the floor (the paper decays to 1e-5)
  int64_t total_steps = 1;
  int64_t warmup_steps = 0;

  // The paper's rule: clip(0.01 * total_steps, 200, 2000), but never more than half the run, so tiny
  // runs (a few hundred steps) still spend most of their steps at a useful rate; `override_steps` >= 0
  // replaces the rule (the CLI's --warmup).
  static int64_t warmup_rule(int64_t total_steps, int64_t override_steps = -1);
  double lr(int64_t step) const;  // step counts from 0
};

class AdamW {
 public:
  double beta1 = 0.9, beta2 = 0.95, eps = 1e-8, weight_decay = 0.1;

  explicit AdamW(size_t n_params = 0) : m_(n_params, 0.0f), v_(n_params, 0.0f) {}
  // One update; `decay` marks which elements get weight decay (matrices; not norm gains).
  void update(std::vector<float>& params, const std::vector<float>& grads, const std::vector<uint8_t>& decay,
              double lr);
  int64_t step() const { return step_; }
  void set_step(int64_t s) { step_ = s; }
  std::vector<float>& m() { return m_; }
  std::vector<float>& v() { return v_; }

 private:
  std::vector<float> m_, v_;
  int64_t step_ = 0;
};

// Scales grads so that their global L2 norm is at most max_norm; returns the norm before clipping.
double clip_grad_norm(std::vector<float>& grads, double max_norm);

// 1 per element of tensors with decay = true.
std::vector<uint8_t> decay_mask(const std::vector<ParamTensor>& tensors, size_t n_params);

}  // namespace moejit::runtime
