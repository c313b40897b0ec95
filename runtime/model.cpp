#include "model.hpp"

#include <algorithm>
#include <cmath>

#include "moejit/error.hpp"

namespace moejit::runtime {

template <typename T>
struct Model<T>::Layer {
  // (N = B*S tokens, C = d_model, H heads)
  TypedPtr input;     // (N, C) the previous layer's output (not owned)
  Buffer ln1, rstd1;  // (N, C), (N)
  Buffer qkv;         // (N, 3C)
  Buffer att;         // (B, H, S, S)
  Buffer att_out;     // (N, C) before the output projection
  Buffer resid_mid;   // (N, C) = input + attention
  Buffer ln2, rstd2;  // (N, C), (N)
  Buffer out;         // (N, C) dense FFN or MoE output, then + resid_mid: the layer's output
  FfnActivations ffn;
  std::unique_ptr<ExpertExchange> exchange;  // expert parallel only
  std::unique_ptr<MoeLayer<T>> moe;
};

// The MoE layer's dimensions and router options from the config.
static MoeDims moe_dims(const ModelConfig& c) {
  const MoeConfig& m = *c.moe;
  const RouterConfig& r = m.router;
  GateParams gate;
  gate.score = r.score == "sigmoid" ? kScoreSigmoid : kScoreSoftmax;
  gate.renormalize = r.renormalize ? 1 : 0;
  gate.scaling = float(r.scaling);
  gate.n_groups = int(r.groups);
  gate.topk_groups = int(r.topk_groups);
  const RouterLossCoefs coefs{r.aux_loss_coef, r.z_loss_coef, r.seq_aux_loss_coef, c.seq_len};
  return {c.d_model, m.experts, m.top_k, m.d_expert, d_ffn_shared(c), coefs, gate, r.capacity_factor};
}

template <typename T>
Model<T>::Model(const ModelConfig& config, StepBackend<T>& backend, Communicator* expert_group)
    : c_(config), be_(backend) {
  validate(c_, "model config '" + c_.name + "'");
  check_trainable(c_);
  const int64_t C = c_.d_model, V = c_.vocab;
  int64_t offset = 0;
  // Expert parallel over P > 1 ranks: this rank holds experts [first, first + E/P) (ExpertExchange).
  const bool sharded = expert_group && expert_group->size() > 1;
  const int64_t E_all = c_.moe ? c_.moe->experts : 0, E_here = sharded ? E_all / expert_group->size() : E_all;
  const int64_t first = sharded ? expert_group->rank() * E_here : 0;
  auto add = [&](std::string name, std::vector<int64_t> shape, bool per_expert = false) {
    if (per_expert) shape[0] = E_here;
    int64_t size = 1;
    for (auto d : shape) size *= d;
    bool decay = shape.size() >= 2;
    tensors_.push_back(
        {std::move(name), std::move(shape), offset, size, decay, per_expert ? E_all : 0, per_expert ? first : 0});
    offset += size;
  };
  add("wte", {V, C});
  for (int l = 0; l < c_.layers; ++l) {
    std::string pre = "layers." + std::to_string(l) + ".";
    add(pre + "ln1", {C});
    add(pre + "attn.w_qkv", {3 * C, C});
    add(pre + "attn.w_o", {C, C});
    add(pre + "ln2", {C});
    auto layer = std::make_unique<Layer>();
    if (is_moe_layer(c_, l)) {
      const int64_t E = c_.moe->experts, F = c_.moe->d_expert, Fs = d_ffn_shared(c_);
      add(pre + "moe.w_router", {E, C});
      add(pre + "moe.w_up", {E, C, 2 * F}, true);  // the grouped GEMMs' W (E, K, N) layout
      add(pre + "moe.w_down", {E, F, C}, true);
      if (Fs) {
        add(pre + "moe.shared_up", {2 * Fs, C});
        add(pre + "moe.shared_down", {C, Fs});
      }
      if (expert_group && expert_group->size() > 1)
        layer->exchange = std::make_unique<ExpertExchange>(*expert_group, E);
      layer->moe = std::make_unique<MoeLayer<T>>(be_, moe_dims(c_), layer->exchange.get());
      if (c_.moe->router.bias_update_rate > 0) {
        const int64_t at = state_tensors_.empty() ? 0 : state_tensors_.back().offset + E;
        state_tensors_.push_back({pre + "moe.router_bias", {E}, at, E, false});
      }
    } else {
      add(pre + "ffn.w_up", {2 * int64_t(c_.d_ffn), C});
      add(pre + "ffn.w_down", {C, int64_t(c_.d_ffn)});
    }
    layers_.push_back(std::move(layer));
  }
  add("ln_f", {C});
  if (!c_.tie_embeddings) add("lm_head", {V, C});  // tied: the LM head reads (and trains) wte
  n_params_ = offset;
  const Precision p = be_.precision();
  params_ = be_.alloc(p.master, n_params_);
  grads_ = be_.alloc(p.master, n_params_);
  if (p.compute != p.master) weights_ = be_.alloc(p.compute, n_params_);
  be_.zero(params_, n_params_);
  if (weights_) be_.zero(weights_, n_params_);
  zero_grad();
  const int64_t n_state = state_tensors_.empty() ? 0 : state_tensors_.back().offset + state_tensors_.back().size;
  if (n_state) {
    state_ = be_.alloc(p.master, n_state);
    be_.zero(state_, n_state);  // no bias at the start: the scores alone choose
  }
  losses_ = be_.alloc(p.master, 3);
  zero_losses();
}

template <typename T>
Model<T>::~Model() = default;

static const ParamTensor& tensor_in(const std::vector<ParamTensor>& tensors, const std::string& name) {
  for (const auto& t : tensors)
    if (t.name == name) return t;
  throw Error("the model has no tensor '" + name + "'");
}

template <typename T>
const ParamTensor& Model<T>::tensor(const std::string& name) const {
  return tensor_in(tensors_, name);
}

template <typename T>
std::vector<T> Model<T>::read_params() const {
  return be_.template download<T>(params_, n_params_);
}

template <typename T>
std::vector<T> Model<T>::read_grads() const {
  return be_.template download<T>(grads_, n_params_);
}

template <typename T>
void Model<T>::write_params(std::span<const T> params) {
  if (int64_t(params.size()) != n_params_)
    throw Error("write_params: " + std::to_string(params.size()) + " values for " + std::to_string(n_params_) +
                " parameters");
  be_.upload(params_, params);
  if (weights_) be_.convert(weights_, params_, n_params_);
}

template <typename T>
std::vector<T> Model<T>::read_state() const {
  return state_ ? be_.template download<T>(state_, state_.count()) : std::vector<T>{};
}

template <typename T>
void Model<T>::write_state(std::span<const T> state) {
  if (int64_t(state.size()) != state_.count())
    throw Error("write_state: " + std::to_string(state.size()) + " values for " + std::to_string(state_.count()) +
                " state values");
  if (state_) be_.upload(state_, state);
}

template <typename T>
TypedPtr Model<T>::router_bias(int l) const {
  if (!state_) return {};
  return state_.at(tensor_in(state_tensors_, "layers." + std::to_string(l) + ".moe.router_bias").offset);
}

template <typename T>
void Model<T>::update_router_bias() {
  if (!state_) return;
  for (int l = 0; l < c_.layers; ++l)
    if (layers_[l]->moe) layers_[l]->moe->update_bias(router_bias(l), T(c_.moe->router.bias_update_rate));
}

template <typename T>
std::vector<RouterStats> Model<T>::read_router_stats() const {
  std::vector<RouterStats> all;
  const std::vector<T> state = read_state();
  for (int l = 0; l < c_.layers; ++l) {
    if (!layers_[l]->moe) continue;
    const MoeLoadStats m = layers_[l]->moe->read_stats();
    RouterStats r;
    r.layer = l;
    r.load_min = *std::min_element(m.load.begin(), m.load.end());
    r.load_max = *std::max_element(m.load.begin(), m.load.end());
    r.load_mean = double(m.tokens * c_.moe->top_k) / double(m.load.size());
    r.imbalance = r.load_mean > 0 ? r.load_max / r.load_mean : 0;
    for (int32_t d : m.dropped) r.dropped += d;
    if (state_) {
      const ParamTensor& b = tensor_in(state_tensors_, "layers." + std::to_string(l) + ".moe.router_bias");
      double sq = 0;
      for (int64_t e = 0; e < b.size; ++e) sq += double(state[b.offset + e]) * double(state[b.offset + e]);
      r.bias_norm = std::sqrt(sq);
    }
    all.push_back(r);
  }
  return all;
}

template <typename T>
std::vector<std::vector<int32_t>> Model<T>::read_expert_loads() const {
  std::vector<std::vector<int32_t>> loads;
  for (int l = 0; l < c_.layers; ++l)
    if (layers_[l]->moe) loads.push_back(layers_[l]->moe->read_stats().load);
  return loads;
}

template <typename T>
void Model<T>::init(std::mt19937_64& rng) {
  std::normal_distribution<double> normal(0.0, 0.02);
  const double residual_scale = 1.0 / std::sqrt(2.0 * c_.layers);
  std::vector<T> host(n_params_);
  for (const auto& t : tensors_) {
    T* w = host.data() + t.offset;
    if (t.shape.size() == 1) {
      std::fill(w, w + t.size, T(1));
      continue;
    }
    bool residual = t.name.ends_with("w_o") || t.name.ends_with("w_down") || t.name.ends_with("shared_down");
    // Every expert's values are drawn, in expert order; a shard keeps its own experts' slice.
    const int64_t keep_from = t.first_expert * t.expert_size(), keep_to = keep_from + t.size;
    for (int64_t i = 0; i < t.full_size(); ++i) {
      const double value = normal(rng) * (residual ? residual_scale : 1.0);
      if (i >= keep_from && i < keep_to) w[i - keep_from] = T(value);
    }
  }
  write_params(host);
}

template <typename T>
MoeWeights Model<T>::moe_view(int l, TypedPtr base) const {
  std::string pre = "layers." + std::to_string(l) + ".moe.";
  bool shared = d_ffn_shared(c_) > 0;
  auto at = [&](const std::string& name) { return base.at(tensor(pre + name).offset); };
  return {at("w_router"), at("w_up"), at("w_down"), shared ? at("shared_up") : TypedPtr{},
          shared ? at("shared_down") : TypedPtr{}};
}

template <typename T>
void Model<T>::allocate_activations(i64 B, i64 S) {
  const i64 N = B * S, C = c_.d_model, H = c_.heads, V = c_.vocab;
  const DType act = be_.precision().compute, master = be_.precision().master;
  ensure(tokens_, be_, DType::i32, N);
  ensure(targets_, be_, DType::i32, N);
  for (auto [b, n] : {std::pair{&x0_, N * C}, {&lnf_, N * C}, {&logits_, N * V}, {&probs_, N * V}})
    ensure(*b, be_, act, n);
  ensure(lnf_rstd_, be_, master, N);
  for (auto& L : layers_) {
    for (auto [b, n] : {std::pair{&L->ln1, N * C},
                        {&L->qkv, N * 3 * C},
                        {&L->att, B * H * S * S},
                        {&L->att_out, N * C},
                        {&L->resid_mid, N * C},
                        {&L->ln2, N * C},
                        {&L->out, N * C}})
      ensure(*b, be_, act, n);
    ensure(L->rstd1, be_, master, N);
    ensure(L->rstd2, be_, master, N);
  }
}

template <typename T>
void Model<T>::forward(const int32_t* tokens, const int32_t* targets, i64 B, i64 S) {
  if (S < 1 || S > c_.seq_len) throw Error("sequence length " + std::to_string(S) + " outside [1, seq_len]");
  const i64 N = B * S, C = c_.d_model, V = c_.vocab;
  for (i64 i = 0; i < N; ++i)
    if (tokens[i] < 0 || tokens[i] >= V || targets[i] < 0 || targets[i] >= V)
      throw Error("token id outside the vocabulary [0, " + std::to_string(V) + ") at position " + std::to_string(i));
  B_ = B;
  S_ = S;
  allocate_activations(B, S);
  be_.upload(tokens_, std::span<const int32_t>(tokens, N));
  be_.upload(targets_, std::span<const int32_t>(targets, N));
  {
    auto t = timed(profiler, "embedding");
    be_.embedding_fwd(x0_, tokens_, w("wte"), N, C);
  }
  TypedPtr x = x0_;
  for (int l = 0; l < c_.layers; ++l) {
    forward_layer(l, x, B, S);
    x = layers_[l]->out;
  }
  {
    auto t = timed(profiler, "rmsnorm");
    be_.rmsnorm_fwd(lnf_, lnf_rstd_, x, w("ln_f"), N, C);
  }
  {
    auto t = timed(profiler, "lm_head");
    be_.matmul_fwd(logits_, lnf_, w(lm_head()), N, C, V);
  }
  auto t = timed(profiler, "cross_entropy");
  be_.cross_entropy_fwd(probs_, losses_.at(0), logits_, targets_, N, V);
}

template <typename T>
void Model<T>::forward_layer(int l, TypedPtr x, i64 B, i64 S) {
  const i64 N = B * S, C = c_.d_model, H = c_.heads;
  Layer& L = *layers_[l];
  const std::string pre = "layers." + std::to_string(l) + ".";
  L.input = x;
  {
    auto t = timed(profiler, "rmsnorm");
    be_.rmsnorm_fwd(L.ln1, L.rstd1, x, w(pre + "ln1"), N, C);
  }
  {
    auto t = timed(profiler, "attention.matmul");
    be_.matmul_fwd(L.qkv, L.ln1, w(pre + "attn.w_qkv"), N, C, 3 * C);
  }
  {
    auto t = timed(profiler, "attention.core");
    if (rope()) be_.rope(L.qkv, B, S, C, H, /*inverse=*/false);  // qkv keeps the rotated q, k for the backward
    be_.attention_fwd(L.att_out, L.att, L.qkv, B, S, C, H, /*alibi=*/!rope());
  }
  {
    auto t = timed(profiler, "attention.matmul");
    be_.matmul_fwd(L.resid_mid, L.att_out, w(pre + "attn.w_o"), N, C, C);
  }
  {
    auto t = timed(profiler, "residual");
    be_.add(L.resid_mid, x, N * C);
  }
  {
    auto t = timed(profiler, "rmsnorm");
    be_.rmsnorm_fwd(L.ln2, L.rstd2, L.resid_mid, w(pre + "ln2"), N, C);
  }
  if (L.moe) {
    L.moe->set_sequence_tokens(S);  // the sequence-wise aux loss's sequences: this batch's
    L.moe->forward(profiler, L.out, L.ln2, N, moe_view(l, weights()), router_bias(l));
    be_.add(losses_.at(1), L.moe->losses(), 2);  // aux, z: already weighted by the plan
  } else {
    ffn_forward(be_, profiler, L.ffn, L.out, L.ln2, w(pre + "ffn.w_up"), w(pre + "ffn.w_down"), N, C, i64(c_.d_ffn));
  }
  auto t = timed(profiler, "residual");
  be_.add(L.out, L.resid_mid, N * C);  // out becomes the layer's output
}

template <typename T>
void Model<T>::backward(T loss_scale, const std::function<void(int layer)>& layer_done) {
  const i64 N = B_ * S_, C = c_.d_model, V = c_.vocab;
  if (N == 0) throw Error("Model::backward called before forward");
  const DType act = be_.precision().compute;
  for (auto [b, n] :
       {std::pair{&d_resid_, N * C}, {&d_ln_, N * C}, {&d_att_out_, N * C}, {&d_qkv_, N * 3 * C}, {&d_logits_, N * V}})
    ensure(*b, be_, act, n);
  {
    auto t = timed(profiler, "cross_entropy");
    be_.cross_entropy_bwd(d_logits_, probs_, targets_, N, V, loss_scale);
  }
  {
    auto t = timed(profiler, "lm_head");
    be_.matmul_bwd(d_ln_, false, g(lm_head()), d_logits_, lnf_, w(lm_head()), N, C, V);  // d_w +=: tied wte too
  }
  {
    auto t = timed(profiler, "rmsnorm");
    be_.zero(d_resid_, N * C);
    be_.rmsnorm_bwd(d_resid_, g("ln_f"), d_ln_, layers_.back()->out, w("ln_f"), lnf_rstd_, N, C);
  }
  // From here d_resid_ holds the gradient of the current layer's output.
  for (int l = c_.layers - 1; l >= 0; --l) {
    backward_layer(l, loss_scale);
    if (layer_done) layer_done(l);
  }
  auto t = timed(profiler, "embedding");
  be_.embedding_bwd(g("wte"), d_resid_, tokens_, N, C);
}

template <typename T>
void Model<T>::backward_layer(int l, T loss_scale) {
  const i64 B = B_, S = S_, N = B * S, C = c_.d_model, H = c_.heads;
  Layer& L = *layers_[l];
  const std::string pre = "layers." + std::to_string(l) + ".";
  // The layer's output = resid_mid + ffn(ln2(resid_mid)).
  if (L.moe) {
    be_.zero(d_ln_, N * C);  // the MoE backward accumulates into its d_x
    L.moe->backward(profiler, d_ln_, moe_view(l, grads_), d_resid_, L.ln2, N, moe_view(l, weights()), loss_scale);
  } else {
    ffn_backward(be_, profiler, L.ffn, d_ln_, false, g(pre + "ffn.w_up"), g(pre + "ffn.w_down"), d_resid_, L.ln2,
                 w(pre + "ffn.w_up"), w(pre + "ffn.w_down"), N, C, i64(c_.d_ffn));
  }
  {
    auto t = timed(profiler, "rmsnorm");
    be_.rmsnorm_bwd(d_resid_, g(pre + "ln2"), d_ln_, L.resid_mid, w(pre + "ln2"), L.rstd2, N, C);
  }
  // resid_mid = input + w_o(attention(ln1(input))).
  {
    auto t = timed(profiler, "attention.matmul");
    be_.matmul_bwd(d_att_out_, false, g(pre + "attn.w_o"), d_resid_, L.att_out, w(pre + "attn.w_o"), N, C, C);
  }
  {
    auto t = timed(profiler, "attention.core");
    be_.attention_bwd(d_qkv_, d_att_out_, L.qkv, L.att, B, S, C, H);
    if (rope()) be_.rope(d_qkv_, B, S, C, H, /*inverse=*/true);  // to the gradient of the unrotated q, k
  }
  {
    auto t = timed(profiler, "attention.matmul");
    be_.matmul_bwd(d_ln_, false, g(pre + "attn.w_qkv"), d_qkv_, L.ln1, w(pre + "attn.w_qkv"), N, C, 3 * C);
  }
  auto t = timed(profiler, "rmsnorm");
  be_.rmsnorm_bwd(d_resid_, g(pre + "ln1"), d_ln_, L.input, w(pre + "ln1"), L.rstd1, N, C);
}

template <typename T>
void Model<T>::zero_grad() {
  be_.zero(grads_, n_params_);
}

template <typename T>
void Model<T>::zero_losses() {
  be_.zero(losses_, 3);
  for (auto& L : layers_)
    if (L->moe) L->moe->zero_stats();
}

template <typename T>
LossSums Model<T>::read_losses() const {
  const std::vector<T> l = be_.template download<T>(losses_, 3);
  return {double(l[0]), double(l[1]) + double(l[2])};
}

template <typename T>
int64_t Model<T>::expert_bytes_sent() const {
  int64_t bytes = 0;
  for (const auto& L : layers_)
    if (L->exchange) bytes += L->exchange->bytes_sent();
  return bytes;
}

template class Model<float>;
template class Model<double>;

}  // namespace moejit::runtime
