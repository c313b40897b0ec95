// Plan arithmetic shared by both backends: the load-balance and z losses from per-expert totals.
//   aux = aux_coef * E * sum_e f_e * p_e,  f_e = routed_e / (T * K),  p_e = (1/T) sum_t score_{t,e}
//   z   = z_coef * (1/T) sum_t lse_t^2,    lse_t = logsumexp of token t's logits
// f_e counts choices before capacity drops and carries no gradient, so
//   d aux / d score_{t,e} = aux_coef * E * f_e / T       (the aux_scale the gating backward adds)
//   d z / d logit_{t,e}   = z_coef * 2 / T * lse_t * softmax_{t,e}
// The sequence-wise aux loss (DeepSeek-V3's complementary balance loss) is the same formula over each
// of the S = T / L sequences of L = seq_tokens tokens, averaged over the sequences:
//   seq_aux = seq_aux_coef * E * (1/S) sum_s sum_e f_{s,e} * p_{s,e}   (f, p over sequence s only)
//   d seq_aux / d score_{t,e} = seq_aux_coef * E * f_{s(t),e} / (S * L)
// and adds to the aux slot of the losses; its gradient is one (E) row per sequence after the batch's.
#pragma once
#include "routing/routing_common.h"

namespace moejit {

struct LossParams {
  float aux_coef = 0.0f;
  float z_coef = 0.0f;
  float seq_aux_coef = 0.0f;  // > 0 with seq_tokens > 0: the sequence-wise aux loss
  int64 seq_tokens = 0;       // L, tokens per sequence; divides T
};

MOEJIT_HD bool has_sequence_aux(const LossParams& loss) {
  return loss.seq_aux_coef > 0.0f && loss.seq_tokens > 0;
}

struct LossTerms {
  float aux_scale;         // d aux / d score_{t,e}
  float aux_contribution;  // f_e * p_e
};

template <int E, int K>
MOEJIT_HD LossTerms loss_terms(const LossParams& loss, int routed, float prob_sum, int64 tokens) {
  LossTerms terms{0.0f, 0.0f};
  if (tokens <= 0) return terms;
  const float f = static_cast<float>(routed) / static_cast<float>(tokens * K);
  terms.aux_scale = loss.aux_coef * static_cast<float>(E) * f / static_cast<float>(tokens);
  terms.aux_contribution = f * (prob_sum / static_cast<float>(tokens));
  return terms;
}

template <int E>
MOEJIT_HD float finish_aux_loss(const LossParams& loss, float sum_f_p) {
  return loss.aux_coef * static_cast<float>(E) * sum_f_p;
}

MOEJIT_HD float finish_z_loss(const LossParams& loss, float sum_lse_squared, int64 tokens) {
  return tokens > 0 ? loss.z_coef * sum_lse_squared / static_cast<float>(tokens) : 0.0f;
}

// sum_i values[i * stride] (squared if SQUARE) for i < count, in one fixed order: eight interleaved
// accumulators (independent loads in flight on the GPU) combined as a tree. Both backends call
// this very function, so the sums agree bit for bit.
template <bool SQUARE>
MOEJIT_HD float ordered_sum(const float* values, int64 count, int64 stride) {
  float acc[8] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
  int64 i = 0;
  for (; i + 8 <= count; i += 8) {
    MOEJIT_UNROLL
    for (int j = 0; j < 8; ++j) {
      const float v = values[(i + j) * stride];
      acc[j] = add_rn(acc[j], SQUARE ? mul_rn(v, v) : v);
    }
  }
  for (int j = 0; j < 8 && i + j < count; ++j) {
    const float v = values[(i + j) * stride];
    acc[j] = add_rn(acc[j], SQUARE ? mul_rn(v, v) : v);
  }
  return add_rn(add_rn(add_rn(acc[0], acc[4]), add_rn(acc[2], acc[6])),
                add_rn(add_rn(acc[1], acc[5]), add_rn(acc[3], acc[7])));
}

// Expert e's terms over the sequence of L tokens starting at token `first`, with the coefficient
// divided by the sequence count S: the batch formula of loss_terms applied to one sequence.
// `routed`: how many of the sequence's choices picked e (the host counts every expert in one pass).
template <int E, int K>
MOEJIT_HD LossTerms sequence_loss_terms(const LossParams& loss, int routed, const float* probs, int64 first, int e,
                                        int64 sequences) {
  const int64 L = loss.seq_tokens;
  LossParams per_sequence;
  per_sequence.aux_coef = loss.seq_aux_coef / static_cast<float>(sequences);
  return loss_terms<E, K>(per_sequence, routed, ordered_sum<false>(probs + first * E + e, L, E), L);
}

// The choices of the sequence starting at token `first` that picked expert e.
template <int K>
MOEJIT_HD int sequence_routed(const int* index, int64 first, int64 seq_tokens, int e) {
  int routed = 0;
  for (int64 i = first * K; i < (first + seq_tokens) * K; ++i) routed += index[i] == e ? 1 : 0;
  return routed;
}

// seq_aux from the sum over sequences and experts of f_{s,e} * p_{s,e}.
template <int E>
MOEJIT_HD float finish_sequence_aux_loss(const LossParams& loss, float sum_f_p, int64 sequences) {
  return sequences > 0 ? loss.seq_aux_coef * static_cast<float>(E) * sum_f_p / static_cast<float>(sequences) : 0.0f;
}

// losses[0] (aux, batch-wise plus sequence-wise when seq_contrib is set) and losses[1] (z) from the
// experts' contributions, the chunks' z sums and the sequences' sums: one order of additions for
// the host and the device.
template <int E>
MOEJIT_HD void write_router_losses(const LossParams& loss, float* losses, const float* contribution,
                                   const float* chunk_z, int chunks, const float* seq_contrib, int64 tokens) {
  losses[0] = finish_aux_loss<E>(loss, ordered_sum<false>(contribution, E, 1));
  losses[1] = finish_z_loss(loss, chunk_z ? ordered_sum<false>(chunk_z, chunks, 1) : 0.0f, tokens);
  if (seq_contrib) {
    const int64 sequences = tokens / loss.seq_tokens;
    losses[0] =
        add_rn(losses[0], finish_sequence_aux_loss<E>(loss, ordered_sum<false>(seq_contrib, sequences, 1), sequences));
  }
}

}  // namespace moejit
