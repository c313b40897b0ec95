// The four host grouped-GEMM families as views over one engine (host/grouped_gemm.h). Per expert e
// its rows are offsets[e] .. offsets[e+1] of the permuted token rows; K is the model width, N the
// weight's column count (d_expert, or 2 * d_expert for the fused gate|up weights).
//   fwd:    Y (rows, N)  = X (rows, K) . W_e (K, N)
//   swiglu: GU (rows, 2F) = X . W_e (K, 2F) with W_e = [gate | up]; H (rows, F) = silu(g) * u.
//           GU is kept: it is what the backward pass (swiglu_bwd, then dgrad) needs.
//   dgrad:  dX (rows, K) = dY (rows, N) . W_e^T
//   wgrad:  dW_e (K, N)  = X_e^T . dY_e, reduction over the expert's rows (ragged, maybe zero)
// Causal (the attention_* families): a group's (rows, K) block, local row i and column j, is
// lower-triangular (j <= i), as causal attention's scores and probabilities are; the views skip
// its zero half. dgrad computes only the blocks that reach the diagonal (entries above it are
// unspecified: the row softmax masks them); fwd reads A (rows, K) only up to the diagonal of the
// block's last row, wgrad reads X_e (rows, K) only from the block's first column's diagonal down,
// so both need the masked half to hold zeros (it does: the softmax writes them).
// The causal dgrad view's work items are whole row blocks (their columns walked in nc blocks), so
// that it can finish its rows with attention's row softmax (ScoresEpilogue) while they are in
// cache: the scores become probabilities, d_probs d_scores, without a pass of their own.
#pragma once
#include "attention/attention_softmax.h"
#include "host/grouped_gemm.h"
#include "swiglu/swiglu.h"

namespace moejit::host {

// Where the causal (attention) views find a group's head-side operands: q, k, v, the output and
// their gradients stay in the model's (B, S, width) rows, head h of sequence b at columns
// [h hd, (h + 1) hd) with row stride ld, group g = b H + h (S = K rows each); so attention needs no
// head-major copies. Each view has two such operands (ld0, ld1 in argument order); ld 0 means the
// operand is contiguous, as the tuner lays it out: a row operand's groups are the offsets' row
// segments, a weight-like operand's are K-row blocks. The (S, S) score blocks stay contiguous.
struct HeadLayout {
  int64 heads, ld0, ld1;
  int64 ld(int which, int64 width) const {
    const int64 v = which == 0 ? ld0 : ld1;
    return v ? v : width;
  }
  // Row r of group e of operand `which`, `width` wide; offsets: a row operand's, null for a weight.
  template <typename P>
  P* at(P* base, int which, int64 e, int64 r, int64 k, int64 width, const int64* offsets) const {
    if ((which == 0 ? ld0 : ld1) == 0) return base + ((offsets ? offsets[e] : e * k) + r) * width;
    const int64 stride = ld(which, width);
    return base + (e / heads) * k * stride + (e % heads) * width + r * stride;
  }
};

// The SwiGLU backward as the epilogue of the product that computes d_h (the down projection's
// dgrad: the MoE experts' dgrad view, the dense FFN's fwd view): the product writes its d_h block
// into the gate half of d_gate_up (row stride 2F), and each element then becomes the gate's and the
// up's gradients in place, read against the forward's gate_up (swiglu/swiglu.h), while the block is
// in cache: no pass of its own, no d_h tensor.
struct SwigluBwdEpilogue {
  const float* gate_up;  // (rows, 2F) from the forward; null: no epilogue
  // Rows r0 .. r0 + mb, columns j0 .. j0 + nb of F = f, of d_gate_up.
  void apply(float* d_gate_up, int64 r0, int64 mb, int64 j0, int64 nb, int64 f) const {
    for (int64 i = 0; i < mb; ++i) {
      float* d = d_gate_up + (r0 + i) * 2 * f;
      const float* gu = gate_up + (r0 + i) * 2 * f;
      for (int64 j = j0; j < j0 + nb; ++j) {
        float dg, du;
        swiglu_backward(gu[j], gu[f + j], d[j], &dg, &du);
        d[j] = dg;
        d[f + j] = du;
      }
    }
  }
};

struct GemmFwd {
  const float *x, *w;
  float* y;
  const int64* offsets;
  int64 k, n;
  bool causal, accumulate;   // accumulate: Y +=
  SwigluBwdEpilogue swiglu;  // Y is d_h, written as d_gate_up (rows, 2N)
  HeadLayout heads;          // causal: W_e (v or k) and Y (out or d_q) are head-side
  int64 rows(int64 e) const { return offsets[e + 1] - offsets[e]; }
  int64 cols() const { return n; }
  int64 depth(int64) const { return k; }
  bool streams() const { return false; }
  template <class T>
  void block(int64 e, int64 i0, int64 mb, int64 j0, int64 nb, const Blocks& blk, const Scratch& s) const {
    const int64 r0 = offsets[e] + i0;
    if (!causal) {
      const int64 ldy = swiglu.gate_up ? 2 * n : n;
      gemm_block<T>(View{x + r0 * k, k, 1}, View{w + e * k * n + j0, n, 1}, y + r0 * ldy + j0, ldy, mb, nb, k, blk, s,
                    Causal{}, accumulate);
      if (swiglu.gate_up) swiglu.apply(y, r0, mb, j0, nb, n);
      return;
    }
    gemm_block<T>(View{x + r0 * k, k, 1}, View{heads.at(w, 0, e, 0, k, n, nullptr) + j0, heads.ld(0, n), 1},
                  heads.at(y, 1, e, i0, k, n, offsets) + j0, heads.ld(1, n), mb, nb, min64(k, i0 + mb), blk, s,
                  Causal{Causal::a_rows, i0}, accumulate);  // A's row i is zero past column i
  }
};

struct GemmSwiglu {
  const float *x, *w;  // w: (E, K, 2F)
  float *gate_up, *h;  // (rows, 2F), (rows, F)
  const int64* offsets;
  int64 k, f;
  int64 rows(int64 e) const { return offsets[e + 1] - offsets[e]; }
  int64 cols() const { return f; }
  int64 depth(int64) const { return k; }
  bool streams() const { return false; }
  // The gate block and the matching up block, then the activation while both are in cache.
  template <class T>
  void block(int64 e, int64 i0, int64 mb, int64 j0, int64 nb, const Blocks& blk, const Scratch& s) const {
    const int64 r0 = offsets[e] + i0, ld = 2 * f;
    const float* we = w + e * k * ld;
    const View a{x + r0 * k, k, 1};
    float* gu = gate_up + r0 * ld;
    gemm_block<T>(a, View{we + j0, ld, 1}, gu + j0, ld, mb, nb, k, blk, s);
    gemm_block<T>(a, View{we + f + j0, ld, 1}, gu + f + j0, ld, mb, nb, k, blk, s);
    for (int64 i = 0; i < mb; ++i)
      for (int64 j = j0; j < j0 + nb; ++j) h[(r0 + i) * f + j] = swiglu_forward(gu[i * ld + j], gu[i * ld + f + j]);
  }
};

// What the causal dgrad view does to each row it finished (row t of a group is query t; the row is
// K = S wide): nothing (above the diagonal stays unspecified), attention's causal ALiBi softmax in
// place, or its backward in place (the rows are d_probs; probs is laid out as the output).
struct ScoresEpilogue {
  enum Mode : int64 { none = 0, softmax = 1, softmax_bwd = 2 };
  int64 mode;
  float scale;
  int64 alibi_heads;  // softmax: group e is head e % alibi_heads, with its ALiBi slope; 0: no ALiBi
  const float* probs;
};

struct GemmDgrad {
  const float *dy, *w;
  float* dx;
  const int64* offsets;
  int64 k, n;
  bool causal, accumulate;   // accumulate: dX += (not with causal: the scores are rewritten)
  SwigluBwdEpilogue swiglu;  // dX is d_h, written as d_gate_up (rows, 2K)
  ScoresEpilogue epilogue;
  HeadLayout heads;  // causal: dY (q or d_o) and W_e (k or v) are head-side
  int64 rows(int64 e) const { return offsets[e + 1] - offsets[e]; }
  int64 cols() const { return causal ? 1 : k; }  // causal: one work item per row block (causal_rows)
  int64 depth(int64) const { return n; }
  bool streams() const { return false; }
  template <class T>
  void block(int64 e, int64 i0, int64 mb, int64 j0, int64 nb, const Blocks& blk, const Scratch& s) const {
    if (causal) return causal_rows<T>(e, i0, mb, blk, s);
    const int64 r0 = offsets[e] + i0;
    // B (n, k) = W_e^T: element (p, c) at W_e[c * n + p].
    const int64 ldx = swiglu.gate_up ? 2 * k : k;
    gemm_block<T>(View{dy + r0 * n, n, 1}, View{w + e * k * n + j0 * n, 1, n}, dx + r0 * ldx + j0, ldx, mb, nb, n, blk,
                  s, Causal{}, accumulate);
    if (swiglu.gate_up) swiglu.apply(dx, r0, mb, j0, nb, k);
  }
  // Rows i0 .. i0 + mb of group e, only the columns up to the diagonal of the block's last row, then
  // the epilogue on each row.
  template <class T>
  void causal_rows(int64 e, int64 i0, int64 mb, const Blocks& blk, const Scratch& s) const {
    const int64 r0 = offsets[e] + i0, width = min64(k, i0 + mb);
    const View a{heads.at(dy, 0, e, i0, k, n, offsets), heads.ld(0, n), 1};
    for (int64 j0 = 0; j0 < width; j0 += blk.nc)
      gemm_block<T>(a, View{heads.at(w, 1, e, j0, k, n, nullptr), 1, heads.ld(1, n)}, dx + r0 * k + j0, k, mb,
                    min64(blk.nc, width - j0), n, blk, s, Causal{Causal::c, i0 - j0});
    if (epilogue.mode == ScoresEpilogue::none) return;
    const float slope =
        epilogue.alibi_heads ? alibi_slope_f32(int(e % epilogue.alibi_heads), int(epilogue.alibi_heads)) : 0.0f;
    for (int64 i = 0; i < mb; ++i) {
      float* row = dx + (r0 + i) * k;
      if (epilogue.mode == ScoresEpilogue::softmax)
        alibi_softmax_row(SingleLane{}, row, row, i0 + i, k, epilogue.scale, slope);
      else
        alibi_softmax_row_bwd(SingleLane{}, epilogue.probs + (r0 + i) * k, row, row, i0 + i, k, epilogue.scale);
    }
  }
};

struct GemmWgrad {
  const float *x, *dy;
  float* dw;
  const int64* offsets;
  int64 k, n;
  bool causal, accumulate;  // accumulate: dW_e += (an empty expert then adds nothing)
  HeadLayout heads;         // causal: dY (d_o or q) and dW_e (d_v or d_k) are head-side
  bool stream;              // dW's final values go out with non-temporal stores (not causal)
  int64 rows(int64) const { return k; }
  int64 cols() const { return n; }
  int64 depth(int64 e) const { return offsets[e + 1] - offsets[e]; }  // the reduction runs over the expert's rows
  bool streams() const { return stream; }
  template <class T>
  void block(int64 e, int64 i0, int64 mb, int64 j0, int64 nb, const Blocks& blk, const Scratch& s) const {
    const int64 m = offsets[e + 1] - offsets[e];
    if (!causal)  // A (k, m) = X_e^T: element (i, p) at X[(offsets[e] + p) * k + i].
      return gemm_block<T>(View{x + offsets[e] * k + i0, 1, k}, View{dy + offsets[e] * n + j0, n, 1},
                           dw + e * k * n + i0 * n + j0, n, mb, nb, m, blk, s, Causal{}, accumulate, stream);
    // X_e's column i is zero above row i, so the reduction starts at the block's first row.
    const int64 p0 = min64(i0, m), r0 = offsets[e] + p0;
    gemm_block<T>(View{x + r0 * k + i0, 1, k}, View{heads.at(dy, 0, e, p0, k, n, offsets) + j0, heads.ld(0, n), 1},
                  heads.at(dw, 1, e, i0, k, n, nullptr) + j0, heads.ld(1, n), mb, nb, m - p0, blk, s,
                  Causal{Causal::a_cols, i0 - p0}, accumulate);
  }
};

enum class Family { fwd, swiglu, dgrad, wgrad };

// Entry bodies. args: fwd (x, w, y, offsets, E, K, N, kc, mc, nc); swiglu (x, w, gate_up, h,
// offsets, E, K, F, kc, mc, nc); dgrad (dy, w, dx, offsets, E, K, N, ...); wgrad (x, dy, dw, ...).
// After nc: the output mode (bit 0, accumulate: the output is added to, not written; 0 for swiglu;
// bit 1, stream: non-temporal stores, the wgrad view only, not causal), then the forward's
// gate_up for the SwiGLU backward epilogue (null: none; fwd and dgrad views only, not causal).
// CAUSAL: the attention_* families (fwd, dgrad and wgrad views only) then take their HeadLayout
// (heads, ld0, ld1), and the causal dgrad view (attention_scores) then its ScoresEpilogue: mode,
// scale (float), alibi_heads, probs.
template <class T, Family FAMILY, bool CAUSAL = false>
void grouped_gemm_entry(void** args, const HostLaunch* launch) {
  static_assert(!CAUSAL || FAMILY != Family::swiglu, "no causal fused up-projection");
  auto ptr = [&](int i) { return *static_cast<float* const*>(args[i]); };
  auto num = [&](int i) { return *static_cast<const int64*>(args[i]); };
  constexpr int tail = FAMILY == Family::swiglu ? 5 : 4;  // index of E
  const int64* offsets = *static_cast<const int64* const*>(args[tail - 1]);
  const int64 experts = num(tail), k = num(tail + 1), n = num(tail + 2);
  const Blocks blk{num(tail + 3), num(tail + 4), num(tail + 5)};
  const bool accumulate = (num(tail + 6) & 1) != 0, stream = (num(tail + 6) & 2) != 0;
  const SwigluBwdEpilogue swiglu{ptr(tail + 7)};
  HeadLayout heads{1, 0, 0};
  if constexpr (CAUSAL) heads = {num(tail + 8), num(tail + 9), num(tail + 10)};
  if constexpr (FAMILY == Family::fwd)
    run_grouped<T>(GemmFwd{ptr(0), ptr(1), ptr(2), offsets, k, n, CAUSAL, accumulate, swiglu, heads}, experts, blk,
                   launch);
  else if constexpr (FAMILY == Family::swiglu)
    run_grouped<T>(GemmSwiglu{ptr(0), ptr(1), ptr(2), ptr(3), offsets, k, n}, experts, blk, launch);
  else if constexpr (FAMILY == Family::dgrad) {
    ScoresEpilogue epilogue{ScoresEpilogue::none, 1.0f, 0, nullptr};
    if constexpr (CAUSAL)
      epilogue = {num(tail + 11), *static_cast<const float*>(args[tail + 12]), num(tail + 13), ptr(tail + 14)};
    run_grouped<T>(GemmDgrad{ptr(0), ptr(1), ptr(2), offsets, k, n, CAUSAL, accumulate, swiglu, epilogue, heads},
                   experts, blk, launch);
  } else
    run_grouped<T>(GemmWgrad{ptr(0), ptr(1), ptr(2), offsets, k, n, CAUSAL, accumulate, heads, stream && !CAUSAL},
                   experts, blk, launch);
}

}  // namespace moejit::host
