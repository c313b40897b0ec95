/* The C API from C: each error case returns its status and a message naming the cause; a lookup
 * on an empty cache falls to the heuristic rung, and the loaded kernel computes what a plain loop
 * does; bundles export and import. Prints one line per check, exits non-zero on the first failure. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "moejit/moejit.h"

static int failures = 0;

static void expect(int ok, const char* what) {
  printf("%s %s\n", ok ? "ok  " : "FAIL", what);
  if (!ok) ++failures;
}

/* status is `want` and the last error mentions every one of `words` (NULL-terminated). */
static void expect_error(moejit_status got, moejit_status want, const char* what, const char* const* words) {
  int ok = got == want;
  for (; ok && *words; ++words) ok = strstr(moejit_last_error(), *words) != NULL;
  if (!ok) printf("     got %s: %s\n", moejit_status_name(got), moejit_last_error());
  expect(ok, what);
}

static void write_text(const char* path, const char* text) {
  FILE* f = fopen(path, "w");
  if (!f || fputs(text, f) < 0 || fclose(f) != 0) {
    perror(path);
    exit(2);
  }
}

static void check_problem_errors(moejit_session* s) {
  moejit_choice c;
  const moejit_problem unknown = {"swiglu_fwdd", "f32", "topk1_width64", 8};
  const char* unknown_words[] = {"unknown kernel family 'swiglu_fwdd'", "swiglu_fwd", "grouped_gemm_fwd", NULL};
  expect_error(moejit_lookup(s, &unknown, &c), MOEJIT_ERROR_UNKNOWN_FAMILY, "unknown family", unknown_words);

  const moejit_problem garbled = {"swiglu_fwd", "f32", "width64", 8};
  const char* garbled_words[] = {"bad shape for swiglu_fwd", "width64", NULL};
  expect_error(moejit_lookup(s, &garbled, &c), MOEJIT_ERROR_BAD_SHAPE, "shape text that does not parse", garbled_words);

  const moejit_problem zero = {"grouped_gemm_fwd", "f32", "e4_topk1_k0_n32", 8};
  const char* zero_words[] = {"bad shape for grouped_gemm_fwd", "k is 0", "> 0", NULL};
  expect_error(moejit_lookup(s, &zero, &c), MOEJIT_ERROR_BAD_SHAPE, "a zero dimension", zero_words);

  const moejit_problem no_tokens = {"swiglu_fwd", "f32", "topk1_width64", 0};
  const char* token_words[] = {"tokens must be > 0", NULL};
  expect_error(moejit_lookup(s, &no_tokens, &c), MOEJIT_ERROR_BAD_SHAPE, "zero tokens", token_words);

  const moejit_problem dtype = {"swiglu_fwd", "f16", "topk1_width64", 8};
  const char* dtype_words[] = {"f16", NULL};
  expect_error(moejit_lookup(s, &dtype, &c), MOEJIT_ERROR_INVALID_ARGUMENT, "unknown dtype", dtype_words);

  const char* null_words[] = {"choice is NULL", NULL};
  const moejit_problem fine = {"swiglu_fwd", "f32", "topk1_width64", 8};
  expect_error(moejit_lookup(s, &fine, NULL), MOEJIT_ERROR_INVALID_ARGUMENT, "NULL output", null_words);
}

/* The heuristic's kernel on an empty cache, against a plain loop on random inputs. */
static void check_heuristic_kernel(moejit_session* s) {
  enum { ROWS = 16, F = 64 };
  static float gate_up[ROWS * 2 * F], out[ROWS * F];
  const moejit_problem p = {"swiglu_fwd", "f32", "topk1_width64", ROWS};
  moejit_choice c;
  moejit_kernel* k = NULL;
  int bad = 0;
  expect(moejit_lookup(s, &p, &c) == MOEJIT_OK && c.rung == MOEJIT_RUNG_HEURISTIC && c.uri[0] == 0,
         "an empty cache answers from the heuristic rung");
  expect(moejit_kernel_load(s, &p, &k) == MOEJIT_OK, "load the heuristic's kernel");
  if (!k) {
    printf("     %s\n", moejit_last_error());
    return;
  }
  for (int i = 0; i < ROWS * 2 * F; ++i) gate_up[i] = (float)rand() / (float)RAND_MAX * 6.0f - 3.0f;
  for (int i = 0; i < ROWS * F; ++i) out[i] = NAN;
  void* tensors[] = {gate_up, out};
  const char* count_words[] = {"swiglu_fwd takes 2 tensors", NULL};
  expect_error(moejit_kernel_launch(k, tensors, 1), MOEJIT_ERROR_BAD_SHAPE, "wrong tensor count", count_words);
  expect(moejit_kernel_launch(k, tensors, 2) == MOEJIT_OK, "launch");
  for (int r = 0; r < ROWS; ++r)
    for (int j = 0; j < F; ++j) {
      const double g = gate_up[r * 2 * F + j], u = gate_up[r * 2 * F + F + j];
      const double want = g / (1.0 + exp(-g)) * u;
      if (!(fabs(out[r * F + j] - want) <= 1e-5 + 1e-4 * fabs(want))) ++bad;
    }
  expect(bad == 0, "the kernel's output matches a plain loop");
  moejit_kernel_free(k);
}

/* A whole (tiny) MoE layer tuned through the C API: every call of its step at one token count gets a
 * tuned decision; a layer with a zero dimension is a bad shape, naming the dimension. */
static void check_layer_tuning(moejit_session* s) {
  const moejit_layer layer = {"f32", 32, 16, 4, 2};
  const int64_t tokens[] = {64};
  int calls = -1, tuned = -1;
  expect(moejit_tune_layer(s, &layer, tokens, 1, 1, 0.0, &calls, &tuned) == MOEJIT_OK, "tune a layer");
  printf("     layer: %d calls, %d tuned\n", calls, tuned);
  expect(calls > 4 && tuned == calls, "every call of the layer tuned");
  const moejit_layer flat = {"f32", 32, 0, 4, 2};
  const char* words[] = {"d_expert 0", NULL};
  expect_error(moejit_tune_layer(s, &flat, tokens, 1, 1, 0.0, NULL, NULL), MOEJIT_ERROR_BAD_SHAPE,
               "a layer with d_expert 0", words);
}

int main(void) {
  char dir[] = "/tmp/moejit-c-api.XXXXXX";
  char tuning[512], path[600], bundle[512];
  moejit_session* s = NULL;
  int decisions = -1;
  if (!mkdtemp(dir)) return 2;
  srand((unsigned)time(NULL));
  printf("moejit %s\n", moejit_version());
  snprintf(tuning, sizeof tuning, "%s/tuning", dir);
  if (mkdir(tuning, 0700) != 0) return 2;

  const moejit_session_options options = {"host", tuning, 2, NULL};
  expect(moejit_session_open(&options, &s) == MOEJIT_OK, "open an empty tuning cache");
  if (!s) {
    printf("     %s\n", moejit_last_error());
    return 1;
  }
  check_problem_errors(s);
  check_heuristic_kernel(s);
  snprintf(bundle, sizeof bundle, "%s/bundle.json", dir);
  expect(moejit_export_bundle(s, bundle, &decisions) == MOEJIT_OK && decisions == 0, "export an empty bundle");
  expect(moejit_import_bundle(s, bundle, &decisions) == MOEJIT_OK && decisions == 0, "import it back");
  write_text(bundle, "{\"moejit_bundle\": 1, \"decisions\": [");
  const char* bundle_words[] = {"bundle.json", NULL};
  expect_error(moejit_import_bundle(s, bundle, NULL), MOEJIT_ERROR_CACHE, "a truncated bundle", bundle_words);
  check_layer_tuning(s);
  moejit_session_close(s);

  /* Without a GPU (or without a driver) the status says so; with one the session opens. */
  const moejit_session_options gpu = {"cuda", tuning, 0, NULL};
  s = NULL;
  const moejit_status st = moejit_session_open(&gpu, &s);
  expect(st == MOEJIT_OK || (st == MOEJIT_ERROR_UNAVAILABLE && moejit_last_error()[0]), "cuda: opens or says why not");
  moejit_session_close(s);

  snprintf(path, sizeof path, "%s/swiglu_fwd.json", tuning);
  write_text(path, "{\"moejit_tuning\": 2, \"family\": \"swiglu_fwd\", \"decisions\": [{\"problem\"");
  s = NULL;
  const char* cache_words[] = {"swiglu_fwd.json", "not valid JSON", "moejit tune", NULL};
  expect_error(moejit_session_open(&options, &s), MOEJIT_ERROR_CACHE, "a corrupt tuning cache file", cache_words);
  expect(s == NULL, "no session from a corrupt cache");

  snprintf(path, sizeof path, "rm -rf '%s'", dir); /* mkdtemp's name: no quotes in it */
  if (system(path) != 0) printf("could not remove %s\n", dir);
  printf("%d failure(s)\n", failures);
  return failures ? 1 : 0;
}
