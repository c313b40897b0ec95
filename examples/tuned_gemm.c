/* Tunes a grouped GEMM on the host through the C API, loads the tuned kernel, runs it and checks it
 * against a plain loop: Y (rows, N) = X (rows, K) . W_e (K, N) over E row segments. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "moejit/moejit.h"

enum { E = 4, K = 64, N = 32, TOKENS = 64 };

static int fail(const char* what, moejit_status status) {
  fprintf(stderr, "%s: %s: %s\n", what, moejit_status_name(status), moejit_last_error());
  return 1;
}

static float uniform(void) {
  return (float)rand() / (float)RAND_MAX * 4.0f - 2.0f;
}

int main(void) {
  const moejit_problem problem = {"grouped_gemm_fwd", "f32", "e4_topk1_k64_n32", TOKENS};
  const moejit_session_options options = {"host", NULL, 2, NULL};
  moejit_session* session = NULL;
  moejit_kernel* kernel = NULL;
  moejit_choice choice;
  moejit_status status;
  static float x[TOKENS * K], w[E * K * N], y[TOKENS * N];
  int64_t offsets[E + 1] = {0, 10, 10, 40, TOKENS}; /* uneven loads, one expert empty */
  int bad = 0;

  if ((status = moejit_session_open(&options, &session)) != MOEJIT_OK) return fail("open", status);
  if ((status = moejit_tune(session, &problem, 2, 0.0, &choice)) != MOEJIT_OK) return fail("tune", status);
  if ((status = moejit_lookup(session, &problem, &choice)) != MOEJIT_OK) return fail("lookup", status);
  printf("%s/%s/%s -> %s (rung %s, %.4f ms)\n", problem.family, problem.dtype, problem.shape, choice.config,
         moejit_rung_name(choice.rung), choice.time_ms);
  if (choice.rung != MOEJIT_RUNG_EXACT) {
    fprintf(stderr, "expected the decision just tuned (rung exact)\n");
    return 1;
  }
  if ((status = moejit_kernel_load(session, &problem, &kernel)) != MOEJIT_OK) return fail("load", status);

  srand((unsigned)time(NULL));
  for (int i = 0; i < TOKENS * K; ++i) x[i] = uniform();
  for (int i = 0; i < E * K * N; ++i) w[i] = uniform();
  for (int i = 0; i < TOKENS * N; ++i) y[i] = NAN; /* unwritten elements fail */
  void* tensors[] = {x, w, y, offsets};
  if ((status = moejit_kernel_launch(kernel, tensors, 4)) != MOEJIT_OK) return fail("launch", status);

  for (int e = 0; e < E; ++e)
    for (int64_t r = offsets[e]; r < offsets[e + 1]; ++r)
      for (int n = 0; n < N; ++n) {
        double want = 0;
        for (int k = 0; k < K; ++k) want += (double)x[r * K + k] * w[(e * K + k) * N + n];
        const double got = y[r * N + n];
        if (!(fabs(got - want) <= 1e-4 + 1e-4 * fabs(want)) && bad++ < 5)
          fprintf(stderr, "y[%ld, %d] = %g, expected %g\n", (long)r, n, got, want);
      }
  printf("%s: %d of %d elements wrong\n", bad ? "FAILED" : "ok", bad, TOKENS * N);
  moejit_kernel_free(kernel);
  moejit_session_close(session);
  return bad ? 1 : 0;
}
