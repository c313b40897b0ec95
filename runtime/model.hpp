// The decoder: token embedding -> L x [pre-norm attention (ALiBi) + pre-norm FFN or MoE] -> final
// RMSNorm -> LM head (or the embedding matrix, tied) -> cross-entropy, written once against a StepBackend
// (step_backend.hpp). All parameters live in one flat buffer in backend memory (llm.c style) so that the optimiser,
// gradient clipping and checkpoints treat them uniformly; `tensors()` names the views.
#pragma once
#include <functional>
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
  // Per-expert tensors (leading dimension: experts) carry the whole layer's expert count; this
  // process holds experts [first_expert, first_expert + shape[0]) of them: all of them in one
  // process, its own E/P under expert parallelism (sharded). 0 for a tensor every rank holds whole.
  int64_t experts = 0, first_expert = 0;
  bool per_expert() const { return experts > 0; }
  bool sharded() const { return per_expert() && shape[0] != experts; }
  // Elements of one expert's slice, and of the whole tensor over every expert.
  int64_t expert_size() const { return per_expert() ? size / shape[0] : size; }
  int64_t full_size() const { return per_expert() ? expert_size() * experts : size; }
};

// One MoE layer's routing over the last step (since Model::zero_losses()): the choices per expert
// (min, max, mean over experts; imbalance = max / mean), the choices the capacity dropped, and the
// L2 norm of its selection bias.
struct RouterStats {
  int layer = 0;
  double load_min = 0, load_max = 0, load_mean = 0, imbalance = 0, bias_norm = 0;
  int64_t dropped = 0;
};

// Loss sums in backend memory since the last Model::zero_losses(), read with Model::read_losses().
struct LossSums {
  double ce = 0;      // sum over forward calls of the mean cross-entropy
  double router = 0;  // sum of every MoE layer's weighted aux and z losses
  double total() const { return ce + router; }
};

template <typename T>
class Model {
 public:
  // `expert_group`: the ranks that split each MoE layer's experts between them (expert_parallel.hpp);
  // null: this process computes every expert. With a group of P > 1 ranks the expert tensors are
  // sharded: this rank holds (and trains) only its E/P experts' parameters, gradients and moments.
  Model(const ModelConfig& config, StepBackend<T>& backend, Communicator* expert_group = nullptr);
  ~Model();

  const ModelConfig& config() const { return c_; }
  const std::vector<ParamTensor>& tensors() const { return tensors_; }
  const ParamTensor& tensor(const std::string& name) const;
  StepBackend<T>& backend() { return be_; }
  int64_t param_count() const { return n_params_; }

  // The flat buffers (n = param_count()) in backend memory: master parameters and gradients (T), and
  // the compute copy of the weights the ops read (the same buffer when the compute dtype is T).
  TypedPtr params() const { return params_; }
  TypedPtr grads() const { return grads_; }
  TypedPtr weights() const { return weights_ ? weights_.ptr() : params_.ptr(); }
  // Copies to and from the host (they wait for the backend). write_params refreshes the compute copy.
  std::vector<T> read_params() const;
  std::vector<T> read_grads() const;
  void write_params(std::span<const T> params);

  // State that is not a parameter (no gradient, no optimizer): the MoE layers' selection biases
  // "layers.<l>.moe.router_bias" (E) when the config balances by bias (bias_update_rate > 0), in one
  // flat master-dtype buffer; checkpoints carry it.
  const std::vector<ParamTensor>& state_tensors() const { return state_tensors_; }
  std::vector<T> read_state() const;
  void write_state(std::span<const T> state);
  // Auxiliary-loss-free balancing after a step: every bias moves by +-bias_update_rate toward its
  // layer's mean load over the step's forwards (DeepSeek-V3). No-op without a bias.
  void update_router_bias();
  // Per MoE layer, the routing statistics of the forwards since zero_losses() (waits).
  std::vector<RouterStats> read_router_stats() const;
  // Per MoE layer, the choices routed to each expert by those forwards (waits): equal loads on two
  // backends mean they routed alike, which a test comparing their gradients needs.
  std::vector<std::vector<int32_t>> read_expert_loads() const;

  // Normal(0, 0.02) matrices, residual output projections scaled by 1/sqrt(2L), norm gains 1. The
  // draws are those of one process holding every expert (a shard keeps its experts' slice), so a
  // sharded run starts from the single-process weights.
  void init(std::mt19937_64& rng);

  // tokens, targets (B, S') host arrays with S' <= seq_len (validated, then copied to the backend).
  // Adds the mean cross-entropy and each MoE layer's weighted aux and z losses to the loss sums;
  // reads nothing back.
  void forward(const int32_t* tokens, const int32_t* targets, i64 B, i64 S);
  // Accumulates d(loss_scale * loss)/d(params) into grads() (for gradient accumulation).
  // layer_done(l), when given, is called as soon as layer l's gradients are final for this backward
  // (the layers go from the last down; the embedding, final norm and LM head are final on return),
  // so that their all-reduce can overlap the layers below.
  void backward(T loss_scale, const std::function<void(int layer)>& layer_done = {});
  void zero_grad();
  void zero_losses();            // and the MoE layers' load statistics
  LossSums read_losses() const;  // waits for the backend
  // Expert parallel: bytes this rank sent to other ranks' experts and back so far (0 without).
  int64_t expert_bytes_sent() const;

  Profiler* profiler = nullptr;

 private:
  struct Layer;
  TypedPtr w(const std::string& name) const { return weights().at(tensor(name).offset); }
  TypedPtr g(const std::string& name) const { return grads_.at(tensor(name).offset); }
  bool rope() const { return c_.positions == "rope"; }
  const char* lm_head() const { return c_.tie_embeddings ? "wte" : "lm_head"; }  // the LM head's matrix (V, C)
  MoeWeights moe_view(int l, TypedPtr base) const;
  TypedPtr router_bias(int l) const;  // null without balancing by bias
  void allocate_activations(i64 B, i64 S);
  void forward_layer(int l, TypedPtr x, i64 B, i64 S);
  void backward_layer(int l, T loss_scale);

  ModelConfig c_;
  StepBackend<T>& be_;
  std::vector<ParamTensor> tensors_;
  int64_t n_params_ = 0;
  Buffer params_, grads_, weights_;  // weights_ stays empty when the compute dtype is T
  std::vector<ParamTensor> state_tensors_;
  Buffer state_;  // the router biases (state_tensors_)
  std::vector<std::unique_ptr<Layer>> layers_;
  // forward state of the last call
  i64 B_ = 0, S_ = 0;
  Buffer tokens_, targets_, x0_, lnf_, lnf_rstd_, logits_, probs_;
  Buffer losses_;  // (3) master: ce, aux, z sums
  // backward scratch
  Buffer d_resid_, d_ln_, d_att_out_, d_qkv_, d_logits_;
};

extern template class Model<float>;
extern template class Model<double>;

}  // namespace moejit::runtime
