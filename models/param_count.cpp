#include "param_count.hpp"

#include "moejit/checked.hpp"
#include "moejit/error.hpp"

namespace moejit {

std::string_view to_string(ParamGroup group) {
  switch (group) {
    case ParamGroup::embedding:
      return "embedding";
    case ParamGroup::lm_head:
      return "lm_head";
    case ParamGroup::attention:
      return "attention";
    case ParamGroup::norm:
      return "norm";
    case ParamGroup::dense_ffn:
      return "dense_ffn";
    case ParamGroup::shared_expert:
      return "shared_expert";
    case ParamGroup::routed_expert:
      return "routed_expert";
    case ParamGroup::router:
      return "router";
  }
  return "?";
}

int64_t TensorShape::numel() const {
  int64_t n = 1;
  for (int64_t d : dims) n = checked_mul(n, d, "the size of tensor " + name);
  return n;
}

namespace {

// SwiGLU: down(silu(x*W_gate) * (x*W_up)). `experts` > 0 stacks that many copies.
void add_swiglu(std::vector<TensorShape>& out, const std::string& prefix, int64_t d_model, int64_t width,
                ParamGroup group, int64_t layer, int64_t experts = 0) {
  auto dims = [&](int64_t in, int64_t o) {
    return experts ? std::vector<int64_t>{experts, in, o} : std::vector<int64_t>{in, o};
  };
  out.push_back({prefix + ".w_gate", dims(d_model, width), group, layer});  // (d_model, width)
  out.push_back({prefix + ".w_up", dims(d_model, width), group, layer});    // (d_model, width)
  out.push_back({prefix + ".w_down", dims(width, d_model), group, layer});  // (width, d_model)
}

void add_moe_block(std::vector<TensorShape>& out, const std::string& prefix, int64_t d_model, const MoeConfig& m,
                   int64_t layer) {
  out.push_back({prefix + ".router", {d_model, m.experts}, ParamGroup::router, layer});  // (d_model, E)
  if (m.shared_width() > 0) {
    add_swiglu(out, prefix + ".shared", d_model, m.shared_width(), ParamGroup::shared_expert, layer);
  }
  add_swiglu(out, prefix + ".experts", d_model, m.d_expert, ParamGroup::routed_expert, layer, m.experts);
}

}  // namespace

std::vector<TensorShape> model_tensor_shapes(const ModelConfig& c) {
  std::vector<TensorShape> out;
  if (c.scope == ModelScope::moe_layer) {
    add_moe_block(out, "moe", c.d_model, *c.moe, 0);
    return out;
  }
  const int64_t d = c.d_model, hd = c.heads * c.head_dim;
  out.push_back({"embedding", {c.vocab, d}, ParamGroup::embedding, -1});  // (vocab, d_model)
  for (int64_t l = 0; l < c.layers; ++l) {
    const std::string p = "layers." + std::to_string(l);
    out.push_back({p + ".attn_norm", {d}, ParamGroup::norm, l});
    out.push_back({p + ".attn.wq", {d, hd}, ParamGroup::attention, l});  // (d_model, heads*head_dim)
    out.push_back({p + ".attn.wk", {d, hd}, ParamGroup::attention, l});
    out.push_back({p + ".attn.wv", {d, hd}, ParamGroup::attention, l});
    out.push_back({p + ".attn.wo", {hd, d}, ParamGroup::attention, l});  // (heads*head_dim, d_model)
    out.push_back({p + ".ffn_norm", {d}, ParamGroup::norm, l});
    if (c.is_dense_layer(l)) {
      add_swiglu(out, p + ".ffn", d, c.d_ffn, ParamGroup::dense_ffn, l);
    } else {
      add_moe_block(out, p + ".moe", d, *c.moe, l);
    }
  }
  out.push_back({"final_norm", {d}, ParamGroup::norm, -1});
  if (!c.tie_embeddings) out.push_back({"lm_head", {d, c.vocab}, ParamGroup::lm_head, -1});  // (d_model, vocab)
  return out;
}

ParamCounts count_params(const ModelConfig& c) {
  ParamCounts counts;
  auto add = [&](int64_t& sum, int64_t n) { sum = checked_add(sum, n, "the parameter count of " + c.name); };
  for (const auto& t : model_tensor_shapes(c)) {
    const int64_t n = t.numel();
    add(counts.by_group[static_cast<int>(t.group)], n);
    add(counts.total, n);
    switch (t.group) {
      case ParamGroup::embedding:
      case ParamGroup::lm_head:
        add(counts.embeddings, n);
        break;
      case ParamGroup::router:
        add(counts.router, n);
        break;
      case ParamGroup::routed_expert:
        // Stacked (E, in, out): each token runs K of the E slices.
        if (n % c.moe->experts != 0) throw Error("routed expert tensor " + t.name + " is not E-stacked");
        add(counts.n, n);
        add(counts.n_active, n / c.moe->experts * c.moe->top_k);  // <= n: top_k <= experts
        break;
      default:
        add(counts.n, n);
        add(counts.n_active, n);
    }
  }
  return counts;
}

}  // namespace moejit
