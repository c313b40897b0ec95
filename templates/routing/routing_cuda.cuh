// Routing GPU wrappers: every kernel calls the shared per-token / per-row code of routing_gate.h and
// routing_rows.h; only the team reductions (routing_lanes.h) and the plan's block scans live here.
// Nothing here synchronises with the host: counts and offsets stay on the device (graph capturable).
#pragma once
#include "routing/routing_gate.h"
#include "routing/routing_lanes.h"
#include "routing/routing_plan.h"
#include "routing/routing_rows.h"

namespace moejit {

// ---- gating: TOKENS teams of LANES threads per block, one token per team ----------------------

template <int E, int K, int LANES, int TOKENS>
__global__ void __launch_bounds__(LANES* TOKENS)
    route_gate_fwd_kernel(const float* __restrict__ logits, const float* __restrict__ bias, GateParams p,
                          int* __restrict__ index, float* __restrict__ weight, float* __restrict__ probs,
                          float* __restrict__ lse, int64 tokens) {
  const int64 t = static_cast<int64>(blockIdx.x) * TOKENS + threadIdx.x / LANES;
  const bool active = t < tokens;
  const int64 row = active ? t : 0;
  gate_token_forward<E, K>(logits + row * E, bias, p, WarpLanes<LANES>(threadIdx.x % LANES), active, index + row * K,
                           weight + row * K, probs ? probs + row * E : nullptr, lse ? lse + row : nullptr);
}

template <int E, int K, int LANES, int TOKENS>
__global__ void __launch_bounds__(LANES* TOKENS)
    route_gate_bwd_kernel(const float* __restrict__ logits, const int* __restrict__ index,
                          const float* __restrict__ d_weight, const float* __restrict__ aux_scale, GateParams p,
                          GateGradParams g, float* __restrict__ d_logits, int64 tokens) {
  const int64 t = static_cast<int64>(blockIdx.x) * TOKENS + threadIdx.x / LANES;
  const bool active = t < tokens;
  const int64 row = active ? t : 0;
  gate_token_backward<E, K>(logits + row * E, index + row * K, d_weight ? d_weight + row * K : nullptr, aux_scale,
                            sequence_aux_row<E>(aux_scale, g, row), p, g, WarpLanes<LANES>(threadIdx.x % LANES), active,
                            d_logits + row * E);
}

// ---- plan: counts, offsets and slots, deterministic without atomics deciding positions ------
//
// Tokens are cut into chunks of 32 * WARPS. Inside a chunk, warp w builds for every expert the
// 32-bit mask of its lanes' tokens that chose it (shared-memory atomicOr: order-free). A choice's
// rank inside its expert = (choices of earlier chunks) + (earlier warps of the chunk) +
// popc(mask & lanes below me): exactly the position in token order.

template <int E, int K, int WARPS>
__device__ void build_chunk_masks(const int* __restrict__ index, int64 tokens, unsigned (*masks)[E]) {
  for (int i = threadIdx.x; i < WARPS * E; i += WARPS * 32) masks[i / E][i % E] = 0u;
  __syncthreads();
  const int64 t = static_cast<int64>(blockIdx.x) * WARPS * 32 + threadIdx.x;
  if (t < tokens) {
    MOEJIT_UNROLL
    for (int r = 0; r < K; ++r) atomicOr(&masks[threadIdx.x / 32][index[t * K + r]], 1u << (threadIdx.x % 32));
  }
  __syncthreads();
}

// Per chunk: choices per expert, and (optional) the chunk's sums of router scores and lse^2.
template <int E, int K, int WARPS>
__global__ void __launch_bounds__(WARPS * 32)
    route_count_kernel(const int* __restrict__ index, const float* __restrict__ probs, const float* __restrict__ lse,
                       int* __restrict__ chunk_counts, float* __restrict__ chunk_probs, float* __restrict__ chunk_z,
                       int64 tokens) {
  __shared__ unsigned masks[WARPS][E];
  build_chunk_masks<E, K, WARPS>(index, tokens, masks);
  const int64 first = static_cast<int64>(blockIdx.x) * WARPS * 32;
  const int64 count = tokens - first < WARPS * 32 ? tokens - first : WARPS * 32;
  for (int e = threadIdx.x; e < E; e += WARPS * 32) {
    int n = 0;
    MOEJIT_UNROLL
    for (int w = 0; w < WARPS; ++w) n += __popc(masks[w][e]);
    chunk_counts[blockIdx.x * E + e] = n;
    if (probs) chunk_probs[blockIdx.x * E + e] = ordered_sum<false>(probs + first * E + e, count, E);
  }
  if (lse) {  // stage the chunk's lse in shared memory: one coalesced load, then one ordered sum
    __shared__ float chunk_lse[WARPS * 32];
    if (threadIdx.x < count) chunk_lse[threadIdx.x] = lse[first + threadIdx.x];
    __syncthreads();
    if (threadIdx.x == 0) chunk_z[blockIdx.x] = ordered_sum<true>(chunk_lse, count, 1);
  }
}

// Block-wide exclusive scan of one int per thread (blockDim.x <= 1024); returns the total too.
__device__ int block_exclusive_scan(int value, int* total) {
  __shared__ int warp_sums[32];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = (blockDim.x + 31) / 32;
  int inclusive = value;
  MOEJIT_UNROLL
  for (int o = 1; o < 32; o *= 2) {
    const int up = __shfl_up_sync(0xffffffffu, inclusive, o);
    if (lane >= o) inclusive += up;
  }
  if (lane == 31) warp_sums[warp] = inclusive;
  __syncthreads();
  if (warp == 0) {
    int s = lane < warps ? warp_sums[lane] : 0;
    MOEJIT_UNROLL
    for (int o = 1; o < 32; o *= 2) {
      const int up = __shfl_up_sync(0xffffffffu, s, o);
      if (lane >= o) s += up;
    }
    warp_sums[lane] = s;  // inclusive scan of warp totals
  }
  __syncthreads();
  *total = warp_sums[warps - 1];
  return inclusive - value + (warp > 0 ? warp_sums[warp - 1] : 0);
}

// One block, one thread per expert (BLOCK >= E, a multiple of 32): chunk prefixes (in place over
// chunk_counts), per-expert counts, capacity, padding, segment offsets, losses and aux gradient.
template <int E, int K, int BLOCK>
__global__ void __launch_bounds__(BLOCK)
    route_offsets_kernel(int* __restrict__ chunk_counts, const float* __restrict__ chunk_probs,
                         const float* __restrict__ chunk_z, int chunks, int64 tokens, int capacity, int pad_to,
                         LossParams loss, int* __restrict__ counts, int* __restrict__ dropped,
                         int* __restrict__ offsets, int* __restrict__ row_source, float* __restrict__ aux_scale,
                         float* __restrict__ losses, const float* __restrict__ seq_contrib) {
  const int e = threadIdx.x;
  int routed = 0;
  float prob_sum = 0.0f;
  if (e < E) {
    for (int c = 0; c < chunks; ++c) {
      const int n = chunk_counts[c * E + e];
      chunk_counts[c * E + e] = routed;
      routed += n;
      if (chunk_probs) prob_sum += chunk_probs[c * E + e];
    }
  }
  const ExpertSegment seg = expert_segment(routed, capacity, pad_to);
  int total_rows = 0;
  const int offset = block_exclusive_scan(e < E ? seg.rows : 0, &total_rows);
  if (e < E) {
    counts[e] = routed;
    dropped[e] = seg.dropped;
    offsets[e] = offset;
    for (int r = offset + seg.kept; r < offset + seg.rows; ++r) row_source[r] = -1;
  }
  if (e == 0) offsets[E] = total_rows;
  // Losses: aux = coef * E * sum_e f_e p_e with f_e = routed_e / (T K), p_e = mean score of e;
  // z = coef_z * mean_t lse_t^2. aux_scale[e] = dL_aux / dscore_{t,e} = coef * E * f_e / T.
  const LossTerms terms = loss_terms<E, K>(loss, routed, prob_sum, tokens);
  if (aux_scale && e < E) aux_scale[e] = terms.aux_scale;
  if (losses) {
    __shared__ float contrib[BLOCK];
    contrib[e] = e < E ? terms.aux_contribution : 0.0f;
    __syncthreads();
    if (e == 0) write_router_losses<E>(loss, losses, contrib, chunk_z, chunks, seq_contrib, tokens);
  }
}

// Sequence-wise aux loss (has_sequence_aux): one block per sequence, one thread per expert (BLOCK >=
// E). Writes the sequence's aux-gradient row (aux_scale row 1 + s) and its sum of f * p, which
// route_offsets_kernel (launched after) adds to the aux loss in a fixed order.
template <int E, int K, int BLOCK>
__global__ void __launch_bounds__(BLOCK)
    route_seq_aux_kernel(const int* __restrict__ index, const float* __restrict__ probs, LossParams loss,
                         float* __restrict__ aux_scale, float* __restrict__ seq_contrib, int64 tokens) {
  const int64 sequences = tokens / loss.seq_tokens, s = blockIdx.x;
  const int e = threadIdx.x;
  LossTerms terms{0.0f, 0.0f};
  if (e < E) {
    const int64 first = s * loss.seq_tokens;
    terms = sequence_loss_terms<E, K>(loss, sequence_routed<K>(index, first, loss.seq_tokens, e), probs, first, e,
                                      sequences);
  }
  if (e < E && aux_scale) aux_scale[(1 + s) * E + e] = terms.aux_scale;
  __shared__ float contrib[BLOCK];
  contrib[e] = terms.aux_contribution;
  __syncthreads();
  if (e == 0) seq_contrib[s] = ordered_sum<false>(contrib, E, 1);
}

// Per chunk: each choice's slot (its row in the permuted layout) and each row's source choice.
template <int E, int K, int WARPS>
__global__ void __launch_bounds__(WARPS * 32)
    route_slots_kernel(const int* __restrict__ index, const int* __restrict__ chunk_prefix,
                       const int* __restrict__ offsets, int capacity, int* __restrict__ slot,
                       int* __restrict__ row_source, int64 tokens) {
  __shared__ unsigned masks[WARPS][E];
  __shared__ int below[WARPS][E];  // choices of expert e in earlier warps of this chunk
  build_chunk_masks<E, K, WARPS>(index, tokens, masks);
  for (int e = threadIdx.x; e < E; e += WARPS * 32) {
    int n = chunk_prefix[blockIdx.x * E + e];
    MOEJIT_UNROLL
    for (int w = 0; w < WARPS; ++w) {
      below[w][e] = n;
      n += __popc(masks[w][e]);
    }
  }
  __syncthreads();
  const int64 t = static_cast<int64>(blockIdx.x) * WARPS * 32 + threadIdx.x;
  if (t >= tokens) return;
  const int w = threadIdx.x / 32;
  const unsigned lower = (1u << (threadIdx.x % 32)) - 1u;
  MOEJIT_UNROLL
  for (int r = 0; r < K; ++r) {
    const int e = index[t * K + r];
    const int s = slot_of(offsets[e], below[w][e] + __popc(masks[w][e] & lower), capacity);
    slot[t * K + r] = s;
    if (s >= 0) row_source[s] = static_cast<int>(t * K + r);
  }
}

template <int E, int BLOCK>
__global__ void __launch_bounds__(BLOCK)
    route_bias_update_kernel(const int* __restrict__ counts, float* __restrict__ bias, float gamma, int64 tokens,
                             int top_k) {
  const int e = blockIdx.x * BLOCK + threadIdx.x;
  if (e < E) bias[e] = bias_update(bias[e], counts[e], static_cast<float>(tokens * top_k) / E, gamma);
}

// ---- permute / combine: ROWS teams of LANES threads per block, one token per team -----------

// Lanes of the calling thread's team as a shuffle mask (teams are aligned inside a warp).
template <int LANES>
__device__ unsigned team_mask() {
  return LANES == 32 ? 0xffffffffu : ((1u << LANES) - 1u) << ((threadIdx.x % 32) / LANES * LANES);
}

// Permute forward (weight == nullptr: dst[slot] = x[t]) and combine backward (dst = d_y[slot] =
// weight * d_out[t], d_weight = <d_out[t], y[slot]>). Reads each token row once, writes K rows.
// blockIdx.y == 1 (launched when segments are padded) zeroes the padding rows instead.
template <typename T, int VEC, int K, int LANES, int ROWS, int D>
__global__ void __launch_bounds__(LANES* ROWS)
    route_scatter_kernel(const T* __restrict__ src, const int* __restrict__ slot, const float* __restrict__ weight,
                         const T* __restrict__ y, T* __restrict__ dst, float* __restrict__ d_weight,
                         const int* __restrict__ offsets, const int* __restrict__ row_source, int num_experts,
                         int64 tokens) {
  const int lane = threadIdx.x % LANES;
  const int64 team = static_cast<int64>(blockIdx.x) * ROWS + threadIdx.x / LANES;
  if (blockIdx.y == 1) {
    const int64 rows = offsets[num_experts];
    for (int64 r = team; r < rows; r += static_cast<int64>(gridDim.x) * ROWS)
      if (row_source[r] < 0)
        for (int c = lane * VEC; c < D; c += LANES * VEC) zero_vec<T, VEC>(dst, r, c, D);
    return;
  }
  if (team >= tokens) return;  // whole teams leave together
  int s[K];
  float w[K], dot[K];
  MOEJIT_UNROLL
  for (int r = 0; r < K; ++r) {
    s[r] = slot[team * K + r];
    w[r] = weight ? weight[team * K + r] : 1.0f;
    dot[r] = 0.0f;
  }
#pragma unroll 2
  for (int c = lane * VEC; c < D; c += LANES * VEC)
    scatter_vec<T, VEC, K>(src, s, weight ? w : nullptr, y, dst, team, c, D, d_weight ? dot : nullptr);
  if (d_weight) {
    const unsigned mask = team_mask<LANES>();
    MOEJIT_UNROLL
    for (int r = 0; r < K; ++r) {
      float v = dot[r];
      MOEJIT_UNROLL
      for (int o = LANES / 2; o > 0; o /= 2) v += __shfl_xor_sync(mask, v, o, LANES);
      if (lane == 0) d_weight[team * K + r] = s[r] >= 0 ? v : 0.0f;
    }
  }
}

// Combine forward (out[t] = sum_r weight * y[slot] + shared[t]) and permute backward
// (weight == nullptr: d_x[t] = sum_r d_perm[slot]). Reads K rows, writes each token row once.
template <typename T, int VEC, int K, int LANES, int ROWS, int D>
__global__ void __launch_bounds__(LANES* ROWS)
    route_gather_kernel(const T* __restrict__ rows, const int* __restrict__ slot, const float* __restrict__ weight,
                        const T* __restrict__ shared, T* __restrict__ out, int64 tokens) {
  const int lane = threadIdx.x % LANES;
  const int64 team = static_cast<int64>(blockIdx.x) * ROWS + threadIdx.x / LANES;
  if (team >= tokens) return;
  int s[K];
  float w[K];
  MOEJIT_UNROLL
  for (int r = 0; r < K; ++r) {
    s[r] = slot[team * K + r];
    w[r] = weight ? weight[team * K + r] : 1.0f;
  }
#pragma unroll 2
  for (int c = lane * VEC; c < D; c += LANES * VEC)
    gather_vec<T, VEC, K>(rows, s, weight ? w : nullptr, shared, out, team, c, D);
}

}  // namespace moejit
