// Routing host loops (plain C++ for the host JIT backend; tests also compile them directly): each
// entry takes the same CUDA-style argument array as its GPU kernel (routing_cuda.cuh) plus the host
// launch (moejit/abi/host_launch.h), and loops over tokens / chunks / rows calling the very same per-token
// and per-row code with SingleLane teams. Work is cut into contiguous ranges of tokens (or chunks,
// or padding rows) run by the backend's worker threads; no output element is written by two
// ranges and nothing is reduced across tokens, so results are bit-identical for any thread count.
// The plan loops cut tokens into the GPU's chunks too, so counts, offsets, slots and the loss sums
// come out bit-identical to the GPU's.
#pragma once
#include "moejit/abi/host_launch.h"
#include "routing/routing_gate.h"
#include "routing/routing_lanes.h"
#include "routing/routing_plan.h"
#include "routing/routing_rows.h"

namespace moejit {

template <class A>
inline A host_arg(void** args, int i) {
  return *static_cast<A*>(args[i]);
}

// Calls body(begin, end) on contiguous ranges covering [0, n), at least `grain` long, about four per
// worker (loads are uneven: skewed experts, padding). launch == nullptr runs serially (tests).
template <class Body>
void host_for_ranges(const HostLaunch* launch, int64 n, int64 grain, const Body& body) {
  if (n <= 0) return;
  const int64 threads = launch ? launch->threads : 1;
  int64 per = (n + 4 * threads - 1) / (4 * threads);
  per = per < grain ? grain : per;
  const int64 items = (n + per - 1) / per;
  if (threads <= 1 || items <= 1) return body(int64{0}, n);
  struct Ranges {
    const Body* body;
    int64 n, per;
    static void run(void* ctx, int, long long item) {
      const Ranges& r = *static_cast<const Ranges*>(ctx);
      const int64 begin = item * r.per;
      (*r.body)(begin, begin + r.per < r.n ? begin + r.per : r.n);
    }
  } ranges{&body, n, per};
  launch->parallel_for(launch, items, &Ranges::run, &ranges);
}

// Tokens per range for row kernels: about 64 KiB of row traffic, so a range outweighs its hand-off.
template <typename T, int K, int D>
constexpr int64 row_grain() {
  constexpr int64 bytes = static_cast<int64>(K + 1) * D * static_cast<int64>(sizeof(T));
  return bytes >= 65536 ? 1 : 65536 / bytes;
}

// args: logits, bias, GateParams, index, weight, probs, lse, tokens (as route_gate_fwd_kernel).
template <int E, int K>
void route_gate_fwd_host(void** a, const HostLaunch* launch) {
  const float* logits = host_arg<const float*>(a, 0);
  const float* bias = host_arg<const float*>(a, 1);
  const GateParams p = host_arg<GateParams>(a, 2);
  int* index = host_arg<int*>(a, 3);
  float* weight = host_arg<float*>(a, 4);
  float* probs = host_arg<float*>(a, 5);
  float* lse = host_arg<float*>(a, 6);
  const int64 tokens = host_arg<int64>(a, 7);
  host_for_ranges(launch, tokens, 16, [&](int64 begin, int64 end) {
    for (int64 t = begin; t < end; ++t)
      gate_token_forward<E, K>(logits + t * E, bias, p, SingleLane{}, true, index + t * K, weight + t * K,
                               probs ? probs + t * E : nullptr, lse ? lse + t : nullptr);
  });
}

// args: logits, index, d_weight, aux_scale, GateParams, GateGradParams, d_logits, tokens.
template <int E, int K>
void route_gate_bwd_host(void** a, const HostLaunch* launch) {
  const float* logits = host_arg<const float*>(a, 0);
  const int* index = host_arg<const int*>(a, 1);
  const float* d_weight = host_arg<const float*>(a, 2);
  const float* aux_scale = host_arg<const float*>(a, 3);
  const GateParams p = host_arg<GateParams>(a, 4);
  const GateGradParams g = host_arg<GateGradParams>(a, 5);
  float* d_logits = host_arg<float*>(a, 6);
  const int64 tokens = host_arg<int64>(a, 7);
  host_for_ranges(launch, tokens, 16, [&](int64 begin, int64 end) {
    for (int64 t = begin; t < end; ++t)
      gate_token_backward<E, K>(logits + t * E, index + t * K, d_weight ? d_weight + t * K : nullptr, aux_scale,
                                sequence_aux_row<E>(aux_scale, g, t), p, g, SingleLane{}, true, d_logits + t * E);
  });
}

// args: index, probs, lse, chunk_counts, chunk_probs, chunk_z, tokens (as route_count_kernel).
// Chunks are independent (their own counts and sums), so they are the work items.
template <int E, int K, int CHUNK>
void route_count_host(void** a, const HostLaunch* launch) {
  const int* index = host_arg<const int*>(a, 0);
  const float* probs = host_arg<const float*>(a, 1);
  const float* lse = host_arg<const float*>(a, 2);
  int* chunk_counts = host_arg<int*>(a, 3);
  float* chunk_probs = host_arg<float*>(a, 4);
  float* chunk_z = host_arg<float*>(a, 5);
  const int64 tokens = host_arg<int64>(a, 6);
  host_for_ranges(launch, (tokens + CHUNK - 1) / CHUNK, 1, [&](int64 begin, int64 end) {
    for (int64 c = begin; c < end; ++c) {
      const int64 first = c * CHUNK, count = tokens - first < CHUNK ? tokens - first : CHUNK;
      int* n = chunk_counts + c * E;
      for (int e = 0; e < E; ++e) n[e] = 0;
      for (int64 i = first * K; i < (first + count) * K; ++i) ++n[index[i]];
      if (probs)
        for (int e = 0; e < E; ++e) chunk_probs[c * E + e] = ordered_sum<false>(probs + first * E + e, count, E);
      if (lse) chunk_z[c] = ordered_sum<true>(lse + first, count, 1);
    }
  });
}

// args: chunk_counts, chunk_probs, chunk_z, chunks, tokens, capacity, pad_to, LossParams, counts,
// dropped, offsets, row_source, aux_scale, losses, seq_contrib (as route_offsets_kernel).
// O(chunks * E): serial.
template <int E, int K>
void route_offsets_host(void** a, const HostLaunch*) {
  int* chunk_counts = host_arg<int*>(a, 0);
  const float* chunk_probs = host_arg<const float*>(a, 1);
  const float* chunk_z = host_arg<const float*>(a, 2);
  const int chunks = host_arg<int>(a, 3);
  const int64 tokens = host_arg<int64>(a, 4);
  const int capacity = host_arg<int>(a, 5), pad_to = host_arg<int>(a, 6);
  const LossParams loss = host_arg<LossParams>(a, 7);
  int* counts = host_arg<int*>(a, 8);
  int* dropped = host_arg<int*>(a, 9);
  int* offsets = host_arg<int*>(a, 10);
  int* row_source = host_arg<int*>(a, 11);
  float* aux_scale = host_arg<float*>(a, 12);
  float* losses = host_arg<float*>(a, 13);
  const float* seq_contrib = host_arg<const float*>(a, 14);
  int offset = 0;
  float contribution[E];
  for (int e = 0; e < E; ++e) {
    int routed = 0;
    float prob_sum = 0.0f;
    for (int c = 0; c < chunks; ++c) {
      const int n = chunk_counts[c * E + e];
      chunk_counts[c * E + e] = routed;
      routed += n;
      if (chunk_probs) prob_sum += chunk_probs[c * E + e];
    }
    const ExpertSegment seg = expert_segment(routed, capacity, pad_to);
    counts[e] = routed;
    dropped[e] = seg.dropped;
    offsets[e] = offset;
    for (int r = offset + seg.kept; r < offset + seg.rows; ++r) row_source[r] = -1;
    offset += seg.rows;
    const LossTerms terms = loss_terms<E, K>(loss, routed, prob_sum, tokens);
    if (aux_scale) aux_scale[e] = terms.aux_scale;
    contribution[e] = terms.aux_contribution;
  }
  offsets[E] = offset;
  if (losses) write_router_losses<E>(loss, losses, contribution, chunk_z, chunks, seq_contrib, tokens);
}

// args: index, probs, LossParams, aux_scale, seq_contrib, tokens (as route_seq_aux_kernel).
// Sequences are independent, so they are the work items.
template <int E, int K>
void route_seq_aux_host(void** a, const HostLaunch* launch) {
  const int* index = host_arg<const int*>(a, 0);
  const float* probs = host_arg<const float*>(a, 1);
  const LossParams loss = host_arg<LossParams>(a, 2);
  float* aux_scale = host_arg<float*>(a, 3);
  float* seq_contrib = host_arg<float*>(a, 4);
  const int64 tokens = host_arg<int64>(a, 5);
  const int64 sequences = tokens / loss.seq_tokens;
  host_for_ranges(launch, sequences, 1, [&](int64 begin, int64 end) {
    float contrib[E];
    int routed[E];
    for (int64 s = begin; s < end; ++s) {
      const int64 first = s * loss.seq_tokens;
      for (int e = 0; e < E; ++e) routed[e] = 0;
      for (int64 i = first * K; i < (first + loss.seq_tokens) * K; ++i)
        if (index[i] >= 0 && index[i] < E) ++routed[index[i]];
      for (int e = 0; e < E; ++e) {
        const LossTerms terms = sequence_loss_terms<E, K>(loss, routed[e], probs, first, e, sequences);
        if (aux_scale) aux_scale[(1 + s) * E + e] = terms.aux_scale;
        contrib[e] = terms.aux_contribution;
      }
      seq_contrib[s] = ordered_sum<false>(contrib, E, 1);
    }
  });
}

// args: index, chunk_prefix, offsets, capacity, slot, row_source, tokens (as route_slots_kernel).
template <int E, int K, int CHUNK>
void route_slots_host(void** a, const HostLaunch* launch) {
  const int* index = host_arg<const int*>(a, 0);
  const int* chunk_prefix = host_arg<const int*>(a, 1);
  const int* offsets = host_arg<const int*>(a, 2);
  const int capacity = host_arg<int>(a, 3);
  int* slot = host_arg<int*>(a, 4);
  int* row_source = host_arg<int*>(a, 5);
  const int64 tokens = host_arg<int64>(a, 6);
  host_for_ranges(launch, (tokens + CHUNK - 1) / CHUNK, 1, [&](int64 begin, int64 end) {
    int rank[E];
    for (int64 c = begin; c < end; ++c) {
      for (int e = 0; e < E; ++e) rank[e] = chunk_prefix[c * E + e];
      const int64 last = tokens - c * CHUNK < CHUNK ? tokens : (c + 1) * CHUNK;
      for (int64 i = c * CHUNK * K; i < last * K; ++i) {
        const int e = index[i];
        slot[i] = slot_of(offsets[e], rank[e]++, capacity);
        if (slot[i] >= 0) row_source[slot[i]] = static_cast<int>(i);
      }
    }
  });
}

// args: counts, bias, gamma, tokens, top_k (as route_bias_update_kernel).
template <int E>
void route_bias_update_host(void** a, const HostLaunch*) {
  const int* counts = host_arg<const int*>(a, 0);
  float* bias = host_arg<float*>(a, 1);
  const float gamma = host_arg<float>(a, 2);
  const int64 tokens = host_arg<int64>(a, 3);
  const int top_k = host_arg<int>(a, 4);
  for (int e = 0; e < E; ++e) bias[e] = bias_update(bias[e], counts[e], static_cast<float>(tokens * top_k) / E, gamma);
}

// The permuted rows a token reads or writes sit at scattered places, each a fresh stream that the
// hardware prefetchers do not see coming, and in the step they are cold (written or last read a
// whole layer earlier). The row loops ask for token t + kPrefetchTokens's rows while they move
// token t's.
inline constexpr int64 kPrefetchTokens = 2;

template <int WRITE, typename T, int K, int D>
inline void prefetch_rows(const T* base, const int* slot) {
  for (int r = 0; r < K; ++r)
    if (slot[r] >= 0)
      for (int64 byte = 0; byte < D * static_cast<int64>(sizeof(T)); byte += 64)
        __builtin_prefetch(reinterpret_cast<const char*>(base + static_cast<int64>(slot[r]) * D) + byte, WRITE, 3);
}

// args: src, slot, weight, y, dst, d_weight, offsets, row_source, num_experts, tokens. The rows are
// moved by the whole-row forms (scatter_row / gather_row); VEC only sizes the padding rows' zeroing.
template <typename T, int VEC, int K, int D>
void route_scatter_host(void** a, const HostLaunch* launch) {
  const T* src = host_arg<const T*>(a, 0);
  const int* slot = host_arg<const int*>(a, 1);
  const float* weight = host_arg<const float*>(a, 2);
  const T* y = host_arg<const T*>(a, 3);
  T* dst = host_arg<T*>(a, 4);
  float* d_weight = host_arg<float*>(a, 5);
  const int* offsets = host_arg<const int*>(a, 6);
  const int* row_source = host_arg<const int*>(a, 7);
  const int num_experts = host_arg<int>(a, 8);
  const int64 tokens = host_arg<int64>(a, 9);
  if (offsets && row_source)
    host_for_ranges(launch, offsets[num_experts], row_grain<T, 0, D>(), [&](int64 begin, int64 end) {
      for (int64 r = begin; r < end; ++r)
        if (row_source[r] < 0)
          for (int c = 0; c < D; c += VEC) zero_vec<T, VEC>(dst, r, c, D);
    });
  host_for_ranges(launch, tokens, row_grain<T, K, D>(), [&](int64 begin, int64 end) {
    for (int64 t = begin; t < end; ++t) {
      if (t + kPrefetchTokens < end) {
        prefetch_rows<1, T, K, D>(dst, slot + (t + kPrefetchTokens) * K);
        if (d_weight) prefetch_rows<0, T, K, D>(y, slot + (t + kPrefetchTokens) * K);
      }
      int s[K];
      float w[K], dot[K];
      for (int r = 0; r < K; ++r) s[r] = slot[t * K + r], w[r] = weight ? weight[t * K + r] : 1.0f, dot[r] = 0.0f;
      scatter_row<T, K>(src + t * D, s, weight ? w : nullptr, y, dst, D, d_weight ? dot : nullptr);
      if (d_weight)
        for (int r = 0; r < K; ++r) d_weight[t * K + r] = s[r] >= 0 ? dot[r] : 0.0f;
    }
  });
}

// args: rows, slot, weight, shared, out, tokens (as route_gather_kernel).
template <typename T, int VEC, int K, int D>
void route_gather_host(void** a, const HostLaunch* launch) {
  const T* rows = host_arg<const T*>(a, 0);
  const int* slot = host_arg<const int*>(a, 1);
  const float* weight = host_arg<const float*>(a, 2);
  const T* shared = host_arg<const T*>(a, 3);
  T* out = host_arg<T*>(a, 4);
  const int64 tokens = host_arg<int64>(a, 5);
  host_for_ranges(launch, tokens, row_grain<T, K, D>(), [&](int64 begin, int64 end) {
    for (int64 t = begin; t < end; ++t) {
      if (t + kPrefetchTokens < end) prefetch_rows<0, T, K, D>(rows, slot + (t + kPrefetchTokens) * K);
      int s[K];
      float w[K];
      for (int r = 0; r < K; ++r) s[r] = slot[t * K + r], w[r] = weight ? weight[t * K + r] : 1.0f;
      gather_row<T, K>(rows, s, weight ? w : nullptr, shared ? shared + t * D : nullptr, out + t * D, D);
    }
  });
}

}  // namespace moejit
