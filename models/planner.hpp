// Training FLOPs and the equal-resource planner (paper.md): given N and C to match and a target
// activation rate, enumerate MoE shapes with the same N, and what the same C implies for each.
#pragma once
#include <cstdint>
#include <vector>

#include "model_config.hpp"
#include "param_count.hpp"

namespace moejit {

// Training FLOPs per token, split by where they go. m_train = 6*N_a + 12*L*d_model*S (the paper's
// M_train); every other field is a part of it except `router`, which the paper's formula leaves out
// (6 * router params, reported so the omission is visible).
struct FlopsPerToken {
  double attention_proj = 0;    // 6 * (Q,K,V,O params)
  double attention_scores = 0;  // 12 * L * d_model * S: QK^T and AV, forward + backward
  double dense_ffn = 0;         // 6 * dense FFN params
  double shared_expert = 0;     // 6 * shared expert params
  double routed_expert = 0;     // 6 * active routed params (K of E)
  double norm = 0;              // 6 * norm params (negligible, kept so the parts sum exactly)
  double router = 0;            // 6 * router params: NOT in m_train
  double m_train = 0;
};
FlopsPerToken training_flops_per_token(const ModelConfig& config);

// C = M_train * D and D = C / M_train.
double compute_for_tokens(const ModelConfig& config, double tokens);
double tokens_for_compute(const ModelConfig& config, double compute);

struct IntRange {
  int64_t lo = 0, hi = 0;  // inclusive
  bool contains(int64_t v) const { return v >= lo && v <= hi; }
};

// What to match and where to search. Widths are searched in steps of `width_multiple`, d_model in
// steps of base.head_dim (heads = d_model / head_dim), top_k is solved for the target rate.
struct DesignQuery {
  int64_t target_n = 0;        // N to match (the dense baseline's N)
  double compute = 0;          // C to match; 0 = not given (no token count is implied)
  double target_ra = 0.2;      // activation rate N_a / N to aim for
  double n_tolerance = 0.01;   // accept |N / target_n - 1| <= this
  double ra_tolerance = 0.01;  // accept |r_a - target_ra| <= this (absolute, 0.01 = 1 point)
  double unique_tokens = 0;    // unique-token pool for the epochs column; 0 = not given
  ModelConfig base;            // vocab, seq_len, head_dim, positions, router are copied from it
  IntRange layers, d_model, experts, top_k, d_expert, d_shared;
  int64_t width_multiple = 64;
  int64_t dense_layers = 1;  // the first `dense_layers` layers are dense (paper: "1dense+SE")
  int64_t dense_ffn = 0;     // dense-layer width; 0 = round_to(dense_ffn_ratio * d_model, width_multiple)
  double dense_ffn_ratio = 8.0 / 3.0;
  size_t max_results = 20;
  size_t per_shape = 2;  // at most this many designs per (layers, d_model) pair
};

// Search ranges around a baseline: layers [L/2, L], d_model [d/2, d], E [8, 128], K [1, 16],
// D_e [64, 1024], D_se [0, 2*d]; N and (with `baseline_tokens` > 0) C taken from the baseline.
DesignQuery design_query_for_baseline(const ModelConfig& baseline, double baseline_tokens, double target_ra);

struct DesignCandidate {
  ModelConfig config;
  ParamCounts counts;
  FlopsPerToken flops;
  double tokens = 0;    // C / M_train, 0 when C is not given
  double epochs = 0;    // tokens / unique_tokens, 0 when either is not given
  double n_error = 0;   // N / target_n - 1
  double ra_error = 0;  // r_a - target_ra
};

// The shapes in the ranges within both tolerances, best first (score |r_a error|/target_ra +
// |N error|; ties to more experts), at most per_shape per (layers, d_model), at most max_results. Counts come from
// count_params() on the built config.
std::vector<DesignCandidate> design_equal_resource(const DesignQuery& query);

// A candidate's numbers for an existing config (used to report the baseline next to the designs).
DesignCandidate evaluate_design(const ModelConfig& config, const DesignQuery& query);

}  // namespace moejit
