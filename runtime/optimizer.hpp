// AdamW with decoupled weight decay, global-norm gradient clipping, and the paper's schedule: linear
// warm-up for clip(0.01 * total_steps, 200, 2000) steps, then cosine decay to a floor. The moments
// live in backend memory and the update is one backend op (StepBackend::adamw). With sharded experts
// a rank's moments cover only its parameters (its own experts'), and the norm is the whole model's.
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

// The segments of the flat parameter buffer with their weight-decay flag (matrices yes, gains no).
std::vector<ParamSegment> param_segments(const std::vector<ParamTensor>& tensors);

// Maximal runs of neighbouring tensors that are all per-expert or all not: with sharded experts the
// two kinds are reduced over different ranks (the gradient all-reduce, the gradient norm).
// split_experts false: runs of neighbours of either kind (per_expert false), where one communicator
// sums everything.
struct ParamRange {
  int64_t offset = 0, size = 0;
  bool per_expert = false;
};
std::vector<ParamRange> param_ranges(const std::vector<ParamTensor>& tensors, bool split_experts = true);

template <typename T>
class AdamW {
 public:
  double beta1 = 0.9, beta2 = 0.95, eps = 1e-8, weight_decay = 0.1;
  double max_norm = 1.0;  // global-norm clipping

  // `expert_group`: the ranks that hold the other experts when the model's experts are sharded
  // (null: this process holds every parameter); the gradient norm then sums over them.
  explicit AdamW(Model<T>& model, Communicator* expert_group = nullptr);
  // Computes the gradients' global norm into grad_norm() (backend memory), clips and updates the
  // model's parameters and compute weights. Reads nothing back.
  void step(double lr);
  int64_t steps() const { return step_; }
  void set_steps(int64_t s) { step_ = s; }
  TypedPtr m() const { return m_; }
  TypedPtr v() const { return v_; }
  TypedPtr grad_norm() const { return norm_; }  // (1) of the last step, before clipping

 private:
  void sharded_grad_norm();

  Model<T>& model_;
  Communicator* expert_group_;
  std::vector<ParamSegment> segments_;
  Buffer m_, v_, norm_;
  int64_t step_ = 0;
};

extern template class AdamW<float>;
extern template class AdamW<double>;

}  // namespace moejit::runtime
