#include "model.hpp"

#include <cmath>

#include "attention.hpp"
#include "moejit/error.hpp"
#include "reference_moe_kernels.hpp"

namespace moejit::runtime {

template <typename T>
struct Model<T>::Layer {
  // (N = B*S tokens, C = d_model, H heads)
  std::vector<T> resid_in;    // (N, C) input of the layer
  std::vector<T> ln1, rstd1;  // (N, C), (N)
  std::vector<T> qkv;         // (N, 3C)
  std::vector<T> att;         // (B, H, S, S)
  std::vector<T> att_out;     // (N, C) before the output projection
  std::vector<T> resid_mid;   // (N, C) = resid_in + attention
  std::vector<T> ln2, rstd2;  // (N, C), (N)
  std::vector<T> ffn_out;     // (N, C) dense FFN or MoE output
  FfnActivations<T> ffn;
  std::unique_ptr<MoeLayer<T>> moe;
};

template <typename T>
Model<T>::Model(const ModelConfig& config, ThreadPool& par, MoeKernels<T>* kernels) : c_(config), par_(par) {
  validate(c_, "model config '" + c_.name + "'");
  check_trainable(c_);
  if (!kernels) {
    owned_kernels_ = std::make_unique<ReferenceMoeKernels<T>>(par_);
    kernels = owned_kernels_.get();
  }
  kernels_ = kernels;
  const int64_t C = c_.d_model, V = c_.vocab;
  int64_t offset = 0;
  auto add = [&](std::string name, std::vector<int64_t> shape) {
    int64_t size = 1;
    for (auto d : shape) size *= d;
    bool decay = shape.size() >= 2;
    tensors_.push_back({std::move(name), std::move(shape), offset, size, decay});
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
      add(pre + "moe.w_up", {E, C, 2 * F});  // the grouped GEMMs' W (E, K, N) layout
      add(pre + "moe.w_down", {E, F, C});
      if (Fs) {
        add(pre + "moe.shared_up", {2 * Fs, C});
        add(pre + "moe.shared_down", {C, Fs});
      }
      layer->moe = std::make_unique<MoeLayer<T>>(
          *kernels_, par_,
          MoeDims{C, E, c_.moe->top_k, F, Fs, {c_.moe->router.aux_loss_coef, c_.moe->router.z_loss_coef}});
    } else {
      add(pre + "ffn.w_up", {2 * int64_t(c_.d_ffn), C});
      add(pre + "ffn.w_down", {C, int64_t(c_.d_ffn)});
    }
    layers_.push_back(std::move(layer));
  }
  add("ln_f", {C});
  add("lm_head", {V, C});
  params_.assign(offset, T(0));
  grads_.assign(offset, T(0));
}

template <typename T>
Model<T>::~Model() = default;

template <typename T>
const ParamTensor& Model<T>::tensor(const std::string& name) const {
  for (const auto& t : tensors_)
    if (t.name == name) return t;
  throw Error("model " + c_.name + " has no parameter tensor '" + name + "'");
}

template <typename T>
void Model<T>::init(std::mt19937_64& rng) {
  std::normal_distribution<double> normal(0.0, 0.02);
  const double residual_scale = 1.0 / std::sqrt(2.0 * c_.layers);
  for (const auto& t : tensors_) {
    T* w = params_.data() + t.offset;
    if (t.shape.size() == 1) {
      std::fill(w, w + t.size, T(1));
      continue;
    }
    bool residual = t.name.ends_with("w_o") || t.name.ends_with("w_down") || t.name.ends_with("shared_down");
    for (int64_t i = 0; i < t.size; ++i) w[i] = T(normal(rng) * (residual ? residual_scale : 1.0));
  }
}

template <typename T>
MoeWeights<const T> Model<T>::moe_weights(int l) {
  std::string pre = "layers." + std::to_string(l) + ".moe.";
  bool shared = d_ffn_shared(c_) > 0;
  return {p(pre + "w_router"), p(pre + "w_up"), p(pre + "w_down"), shared ? p(pre + "shared_up") : nullptr,
          shared ? p(pre + "shared_down") : nullptr};
}

template <typename T>
MoeWeights<T> Model<T>::moe_grads(int l) {
  std::string pre = "layers." + std::to_string(l) + ".moe.";
  bool shared = d_ffn_shared(c_) > 0;
  return {g(pre + "w_router"), g(pre + "w_up"), g(pre + "w_down"), shared ? g(pre + "shared_up") : nullptr,
          shared ? g(pre + "shared_down") : nullptr};
}

template <typename T>
T Model<T>::forward(const int32_t* tokens, const int32_t* targets, i64 B, i64 S) {
  if (S < 1 || S > c_.seq_len) throw Error("sequence length " + std::to_string(S) + " outside [1, seq_len]");
  const i64 N = B * S, C = c_.d_model, H = c_.heads, V = c_.vocab;
  for (i64 i = 0; i < N; ++i)
    if (tokens[i] < 0 || tokens[i] >= V || targets[i] < 0 || targets[i] >= V)
      throw Error("token id outside the vocabulary [0, " + std::to_string(V) + ") at position " + std::to_string(i));
  B_ = B;
  S_ = S;
  tokens_.assign(tokens, tokens + N);
  targets_.assign(targets, targets + N);
  x0_.resize(N * C);
  {
    auto t = timed(profiler, "embedding");
    embedding_forward(x0_.data(), tokens, p("wte"), N, C);
  }
  T router_losses = 0;
  const T* x = x0_.data();
  for (int l = 0; l < c_.layers; ++l) {
    Layer& L = *layers_[l];
    std::string pre = "layers." + std::to_string(l) + ".";
    L.resid_in.assign(x, x + N * C);
    L.ln1.resize(N * C);
    L.rstd1.resize(N);
    L.qkv.resize(N * 3 * C);
    L.att.resize(B * H * S * S);
    L.att_out.resize(N * C);
    L.resid_mid.resize(N * C);
    L.ln2.resize(N * C);
    L.rstd2.resize(N);
    L.ffn_out.resize(N * C);
    {
      auto t = timed(profiler, "rmsnorm");
      rmsnorm_forward(L.ln1.data(), L.rstd1.data(), x, p(pre + "ln1"), N, C);
    }
    {
      auto t = timed(profiler, "attention.matmul");
      matmul_forward(par_, L.qkv.data(), L.ln1.data(), p(pre + "attn.w_qkv"), N, C, 3 * C);
    }
    {
      auto t = timed(profiler, "attention.core");
      attention_forward(par_, L.att_out.data(), L.att.data(), L.qkv.data(), B, S, C, H);
    }
    {
      auto t = timed(profiler, "attention.matmul");
      matmul_forward(par_, L.resid_mid.data(), L.att_out.data(), p(pre + "attn.w_o"), N, C, C);
    }
    for (i64 i = 0; i < N * C; ++i) L.resid_mid[i] += x[i];
    {
      auto t = timed(profiler, "rmsnorm");
      rmsnorm_forward(L.ln2.data(), L.rstd2.data(), L.resid_mid.data(), p(pre + "ln2"), N, C);
    }
    if (L.moe) {
      L.moe->forward(profiler, L.ffn_out.data(), L.ln2.data(), N, moe_weights(l));
      router_losses += L.moe->aux_loss() + L.moe->z_loss();  // weighted by the plan
    } else {
      ffn_forward(par_, profiler, L.ffn, L.ffn_out.data(), L.ln2.data(), p(pre + "ffn.w_up"), p(pre + "ffn.w_down"), N,
                  C, i64(c_.d_ffn));
    }
    for (i64 i = 0; i < N * C; ++i) L.ffn_out[i] += L.resid_mid[i];  // ffn_out becomes the layer's output
    x = L.ffn_out.data();
  }
  lnf_.resize(N * C);
  lnf_rstd_.resize(N);
  logits_.resize(N * V);
  probs_.resize(N * V);
  {
    auto t = timed(profiler, "rmsnorm");
    rmsnorm_forward(lnf_.data(), lnf_rstd_.data(), x, p("ln_f"), N, C);
  }
  {
    auto t = timed(profiler, "lm_head");
    matmul_forward(par_, logits_.data(), lnf_.data(), p("lm_head"), N, C, V);
  }
  auto t = timed(profiler, "cross_entropy");
  ce_loss_ = cross_entropy_forward(probs_.data(), logits_.data(), targets, N, V);
  return ce_loss_ + router_losses;
}

template <typename T>
void Model<T>::backward(T loss_scale) {
  const i64 B = B_, S = S_, N = B * S, C = c_.d_model, H = c_.heads, V = c_.vocab;
  if (N == 0) throw Error("Model::backward called before forward");
  d_logits_.resize(N * V);
  d_lnf_.assign(N * C, T(0));
  d_resid_.assign(N * C, T(0));
  {
    auto t = timed(profiler, "cross_entropy");
    cross_entropy_backward(d_logits_.data(), probs_.data(), targets_.data(), N, V, loss_scale);
  }
  {
    auto t = timed(profiler, "lm_head");
    matmul_backward(par_, d_lnf_.data(), g("lm_head"), d_logits_.data(), lnf_.data(), p("lm_head"), N, C, V);
  }
  const T* x_last = layers_.back()->ffn_out.data();
  {
    auto t = timed(profiler, "rmsnorm");
    rmsnorm_backward(d_resid_.data(), g("ln_f"), d_lnf_.data(), x_last, p("ln_f"), lnf_rstd_.data(), N, C);
  }
  std::vector<T>& d_ln = d_lnf_;  // (N, C) scratch from here on
  for (int l = c_.layers - 1; l >= 0; --l) {
    Layer& L = *layers_[l];
    std::string pre = "layers." + std::to_string(l) + ".";
    // d_resid: gradient of the layer's output = resid_mid + ffn(ln2(resid_mid)).
    std::fill(d_ln.begin(), d_ln.end(), T(0));
    if (L.moe) {
      L.moe->backward(profiler, d_ln.data(), moe_grads(l), d_resid_.data(), L.ln2.data(), N, moe_weights(l),
                      loss_scale);
    } else {
      ffn_backward(par_, profiler, L.ffn, d_ln.data(), g(pre + "ffn.w_up"), g(pre + "ffn.w_down"), d_resid_.data(),
                   L.ln2.data(), p(pre + "ffn.w_up"), p(pre + "ffn.w_down"), N, C, i64(c_.d_ffn));
    }
    {
      auto t = timed(profiler, "rmsnorm");
      rmsnorm_backward(d_resid_.data(), g(pre + "ln2"), d_ln.data(), L.resid_mid.data(), p(pre + "ln2"), L.rstd2.data(),
                       N, C);
    }
    // d_resid: gradient of resid_mid = resid_in + w_o(attention(ln1(resid_in))).
    d_tmp_.assign(N * 3 * C, T(0));  // first N*C: d_att_out, then reused as d_qkv
    std::vector<T> d_att_out(N * C, T(0));
    {
      auto t = timed(profiler, "attention.matmul");
      matmul_backward(par_, d_att_out.data(), g(pre + "attn.w_o"), d_resid_.data(), L.att_out.data(),
                      p(pre + "attn.w_o"), N, C, C);
    }
    {
      auto t = timed(profiler, "attention.core");
      attention_backward(par_, d_tmp_.data(), d_att_out.data(), L.qkv.data(), L.att.data(), B, S, C, H);
    }
    std::fill(d_ln.begin(), d_ln.end(), T(0));
    {
      auto t = timed(profiler, "attention.matmul");
      matmul_backward(par_, d_ln.data(), g(pre + "attn.w_qkv"), d_tmp_.data(), L.ln1.data(), p(pre + "attn.w_qkv"), N,
                      C, 3 * C);
    }
    auto t = timed(profiler, "rmsnorm");
    rmsnorm_backward(d_resid_.data(), g(pre + "ln1"), d_ln.data(), L.resid_in.data(), p(pre + "ln1"), L.rstd1.data(), N,
                     C);
  }
  auto t = timed(profiler, "embedding");
  embedding_backward(g("wte"), d_resid_.data(), tokens_.data(), N, C);
}

template <typename T>
void Model<T>::zero_grad() {
  std::fill(grads_.begin(), grads_.end(), T(0));
}

template class Model<float>;
template class Model<double>;

}  // namespace moejit::runtime
