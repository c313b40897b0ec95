/* The C API of libmoejit (docs/api.md): the C++ Session (moejit/session.hpp) behind opaque handles,
 * for C programs and other languages (Python ctypes/cffi). No exception crosses it: every call
 * returns a moejit_status, and on failure moejit_last_error() holds a message naming the cause and
 * the fix (per thread, valid until this thread's next failing call).
 *
 *   moejit_session* s; moejit_kernel* k; moejit_choice c;
 *   moejit_problem p = {"swiglu_fwd", "f32", "topk1_width256", 64};
 *   if (moejit_session_open(NULL, &s) != MOEJIT_OK) fprintf(stderr, "%s\n", moejit_last_error());
 *   moejit_tune(s, &p, 0, 0.0, &c);          c.rung == MOEJIT_RUNG_EXACT afterwards
 *   moejit_kernel_load(s, &p, &k);
 *   void* tensors[] = {gate_up, out};
 *   moejit_kernel_launch(k, tensors, 2);
 *   moejit_kernel_free(k); moejit_session_close(s);
 */
#ifndef MOEJIT_MOEJIT_H
#define MOEJIT_MOEJIT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum moejit_status {
  MOEJIT_OK = 0,
  MOEJIT_ERROR_INVALID_ARGUMENT = 1, /* a NULL handle or output, a wrong tensor count, a bad dtype */
  MOEJIT_ERROR_UNKNOWN_FAMILY = 2,   /* the message lists the known families */
  MOEJIT_ERROR_BAD_SHAPE = 3,        /* shape text that does not parse, a dimension or token count <= 0 */
  MOEJIT_ERROR_CACHE = 4,            /* a tuning cache or bundle file that cannot be read */
  MOEJIT_ERROR_UNAVAILABLE = 5,      /* a backend this machine or build lacks (no GPU, no host JIT) */
  MOEJIT_ERROR_COMPILE = 6,          /* a kernel failed to compile */
  MOEJIT_ERROR_FAILED = 7            /* anything else (tuning found no correct config, I/O, ...) */
} moejit_status;

/* The lookup ladder's rungs, best first (moejit::Rung). */
typedef enum moejit_rung {
  MOEJIT_RUNG_EXACT = 0,
  MOEJIT_RUNG_NEAREST_BUCKET = 1,
  MOEJIT_RUNG_SAME_ARCH = 2,
  MOEJIT_RUNG_SHIPPED = 3, /* a bundle shipped with moejit, measured on this device model */
  MOEJIT_RUNG_HEURISTIC = 4
} moejit_rung;

typedef struct moejit_session moejit_session;
typedef struct moejit_kernel moejit_kernel;

typedef struct moejit_session_options {
  const char* backend;    /* "host" or "cuda"; NULL: "host" */
  const char* tuning_dir; /* NULL: $MOEJIT_CACHE_DIR/tuning */
  unsigned threads;       /* host kernels' worker threads; 0: every hardware thread */
  void* cuda_stream;      /* cuda: the caller's CUstream / cudaStream_t every launch is queued on
                             (the device's primary context); NULL: the session's own stream */
} moejit_session_options;

/* A problem in the registry's words (moejit/problem.hpp), e.g. {"grouped_gemm_fwd", "f32",
 * "e8_topk2_k256_n128", 512} or {"swiglu_fwd", "bf16", "topk8_width768", 4096}. */
typedef struct moejit_problem {
  const char* family; /* "swiglu_fwd", "grouped_gemm_fwd", ... */
  const char* dtype;  /* "f32" | "bf16" */
  const char* shape;  /* the family's shape text: e<E>_topk<k>_k<K>_n<N>, e<E>_topk<k>_width<W>, topk<k>_width<W> */
  int64_t tokens;
} moejit_problem;

typedef struct moejit_choice {
  char config[128]; /* "bm64_bn64_..." */
  moejit_rung rung; /* which rung of the lookup ladder answered */
  double time_ms;   /* the decision's measured time; 0 for the heuristic */
  char uri[256];    /* the decision's kernel URI; "" for the heuristic */
} moejit_choice;

const char* moejit_version(void);
const char* moejit_last_error(void);                  /* "" when this thread has had no error */
const char* moejit_status_name(moejit_status status); /* "MOEJIT_ERROR_BAD_SHAPE", ... */
const char* moejit_rung_name(moejit_rung rung);       /* "exact", "nearest_bucket", ... */

/* options may be NULL (the defaults). Reads every file of the tuning cache: MOEJIT_ERROR_CACHE names
 * a damaged one. */
moejit_status moejit_session_open(const moejit_session_options* options, moejit_session** session);
void moejit_session_close(moejit_session* session); /* NULL is fine; free its kernels first */

moejit_status moejit_lookup(moejit_session* session, const moejit_problem* problem, moejit_choice* choice);
/* Tunes at the problem's token bucket and records the decision; then as moejit_lookup. 0: no limit. */
moejit_status moejit_tune(moejit_session* session, const moejit_problem* problem, int max_candidates,
                          double max_seconds, moejit_choice* choice);

/* An MoE layer, as `moejit tune --shape d_model,d_expert,E,topk` takes it. */
typedef struct moejit_layer {
  const char* dtype; /* "f32" | "bf16" */
  int64_t d_model, d_expert, experts, top_k;
} moejit_layer;

/* Tunes every kernel call of the layer's training step (routing, grouped GEMMs, SwiGLU backward) at
 * each of the n_tokens token counts: max_candidates per call (0: all), max_seconds for the whole
 * layer (0: no limit). calls and tuned (either may be NULL): how many calls there were, and how many
 * a tuned decision now serves. MOEJIT_ERROR_BAD_SHAPE for a dimension or token count <= 0. */
moejit_status moejit_tune_layer(moejit_session* session, const moejit_layer* layer, const int64_t* tokens,
                                int n_tokens, int max_candidates, double max_seconds, int* calls, int* tuned);

/* The problem's kernel with the config its lookup chose, compiled (binary cache) and loaded. */
moejit_status moejit_kernel_load(moejit_session* session, const moejit_problem* problem, moejit_kernel** kernel);
/* choice: what the kernel was loaded with. */
moejit_status moejit_kernel_choice(const moejit_kernel* kernel, moejit_choice* choice);
/* Runs the kernel on `count` tensors in the family's order (docs/api.md); on the host it returns
 * when done, on cuda it is queued on the session's stream (moejit_synchronize waits). */
moejit_status moejit_kernel_launch(moejit_kernel* kernel, void* const* tensors, size_t count);
void moejit_kernel_free(moejit_kernel* kernel); /* NULL is fine */
moejit_status moejit_synchronize(moejit_session* session);

/* decisions (may be NULL): how many were written, or imported (added + replaced + unchanged). */
moejit_status moejit_export_bundle(moejit_session* session, const char* path, int* decisions);
moejit_status moejit_import_bundle(moejit_session* session, const char* path, int* decisions);

#ifdef __cplusplus
}
#endif

#endif /* MOEJIT_MOEJIT_H */
