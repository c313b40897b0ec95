// The decoder: token embedding -> L x [pre-norm attention (ALiBi) + pre-norm FFN or MoE] -> final
// RMSNorm -> LM head -> cross-entropy. All parameters live in one flat buffer (llm.c style) so that the
// optimiser, gradient clipping and checkpoints treat them uniformly; `tensors()` names the views.
#pragma once
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "moe_layer.hpp"
#include "trainable_config.hpp"

namespace moejit::runtime {

struct ParamTensor {
  std::string name;  // e.g. "layers.1.moe.w_up"
  std::vector<int64_t> shape;
  int64_t offset = 0, size = 0;
  bool decay = false;  // AdamW weight decay: matrices yes, norm gains no
};

template <typename T>
class Model {
 public:
  // kernels: the MoE backend; null selects the reference kernels.
  Model(const ModelConfig& config, ThreadPool& par, MoeKernels<T>* kernels = nullptr);
  ~Model();

  const ModelConfig& config() const { return c_; }
  const std::vector<ParamTensor>& tensors() const { return tensors_; }
  const ParamTensor& tensor(const std::string& name) const;
  std::vector<T>& params() { return params_; }
  std::vector<T>& grads() { return grads_; }
  MoeKernels<T>& kernels() { return *kernels_; }

  // Normal(0, 0.02) matrices, residual output projections scaled by 1/sqrt(2L), norm gains 1.
  void init(std::mt19937_64& rng);

  // tokens, targets (B, S') with S' <= seq_len. Returns the training loss: mean cross-entropy + each
  // MoE layer's aux_loss_coef * aux + z_loss_coef * z. ce_loss() is the cross-entropy part alone.
  T forward(const int32_t* tokens, const int32_t* targets, i64 B, i64 S);
  T ce_loss() const { return ce_loss_; }
  // Accumulates d(loss_scale * loss)/d(params) into grads() (for gradient accumulation).
  void backward(T loss_scale);
  void zero_grad();

  Profiler* profiler = nullptr;

 private:
  struct Layer;
  T* p(const std::string& name) { return params_.data() + tensor(name).offset; }
  T* g(const std::string& name) { return grads_.data() + tensor(name).offset; }
  MoeWeights<const T> moe_weights(int l);
  MoeWeights<T> moe_grads(int l);

  ModelConfig c_;
  ThreadPool& par_;
  std::unique_ptr<MoeKernels<T>> owned_kernels_;
  MoeKernels<T>* kernels_;
  std::vector<ParamTensor> tensors_;
  std::vector<T> params_, grads_;
  std::vector<std::unique_ptr<Layer>> layers_;
  // forward state of the last call
  i64 B_ = 0, S_ = 0;
  std::vector<int32_t> tokens_, targets_;
  std::vector<T> x0_, lnf_, lnf_rstd_, logits_, probs_, d_resid_, d_tmp_, d_logits_, d_lnf_;
  T ce_loss_ = 0;
};

extern template class Model<float>;
extern template class Model<double>;

}  // namespace moejit::runtime
