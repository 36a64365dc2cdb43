/* bench_transform: the transforms that run before quantization.
 *   1. the Hadamard rotation of rows (QuaRot's x·R) for the family's hidden
 *      sizes: GB/s (read + write) next to memcpy's on the same buffer;
 *   2. each method on one Qwen3-8B-shaped decoder layer (random weights) with
 *      2048 calibration tokens: seconds per layer, next to one float forward
 *      of the layer over the same tokens;
 *   3. the column maxima of every expert's down_proj in one MoE layer (every
 *      expert's up-down smoothing, m4), straight from the checkpoint's bf16
 *      against converting each to float32 first: GB/s of bf16 read, next to
 *      memcpy's.
 *
 *   bench_transform [--tokens 2048] [--preset qwen3-8b] [--methods rot,m1,m2,m4,m6] [--experts qwen3-30b-a3b|none] */
#include "bench_util.h"
#include "synth.h"

#include "cslim/cslim.h"
#include "cslim/quant.h"
#include "cslim/transform.h"
#include "model/model_internal.h"
#include "quant/smoother.h"
#include "quant/xform.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void bench_hadamard(void) {
  static const int sizes[] = {4096, 5120, 2560, 2048};
  const size_t bytes = (size_t)256 << 20;
  float *x = malloc(bytes), *y = malloc(bytes);
  for (size_t i = 0; i < bytes / 4; i++) x[i] = (float)(i % 1000) * 1e-3f;
  double tm = 1e30;
  for (int r = 0; r < 3; r++) {
    double t0 = cslim_now();
    memcpy(y, x, bytes);
    double t = cslim_now() - t0;
    tm = t < tm ? t : tm;
  }
  printf("Hadamard rotation of rows (x <- x.R), 256 MB of float32 rows, in place:\n");
  printf("  memcpy limit: %.1f GB/s (read + write)\n", 2.0 * (double)bytes / tm / 1e9);
  for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
    int n = sizes[s];
    size_t rows = bytes / 4 / (size_t)n;
    cslim_rotation *r;
    if (cslim_rotation_new(n, -1, CSLIM_ROT_HADAMARD, 1234, &r)) {
      printf("  %d: %s\n", n, cslim_errmsg());
      continue;
    }
    double best = 1e30;
    for (int k = 0; k < 3; k++) {
      double t0 = cslim_now();
      cslim_rotation_apply_rows(r, x, rows);
      double t = cslim_now() - t0;
      best = t < best ? t : best;
    }
    printf("  hidden %5d: %6.1f GB/s (%.0f %% of memcpy), %.1f M rows/s\n", n, 2.0 * (double)(rows * n * 4) / best / 1e9,
           100.0 * tm / best * (double)(rows * n * 4) / (double)bytes, (double)rows / best / 1e6);
    cslim_rotation_free(r);
  }
  free(x);
  free(y);
}

/* the up-down smoothing's column maxima of every expert's down_proj of one layer of `preset` (synthesised), best
 * of three: from the checkpoint's bytes, and converted to float32 first (what the smoothing did before) */
static int bench_expert_col_max(const char *preset) {
  const synth_spec *sp = synth_preset(preset);
  if (!sp || !sp->experts) {
    fprintf(stderr, "%s: not a MoE preset\n", preset);
    return 1;
  }
  synth_spec s = *sp;
  s.layers = 1, s.vocab = 4096, s.tie = 0;
  char dir[] = "/tmp/bench_colmax_XXXXXX";
  cslim_model *m;
  cslim_layer *l;
  if (!mkdtemp(dir) || synth_write(&s, dir, 0, 1, NULL) || cslim_model_open(dir, &m) || cslim_layer_load(m, 0, &l)) {
    fprintf(stderr, "%s\n", cslim_errmsg());
    return 1;
  }
  const int E = l->n_experts, in = l->experts[2].in;
  const size_t bytes = (size_t)E * (size_t)l->experts[2].out * (size_t)in * cslim_dtype_size(l->experts[2].src->dtype);
  float *acc = malloc((size_t)in * sizeof(float));
  char *a = malloc(bytes), *b = malloc(bytes);
  memset(a, 1, bytes), memset(b, 0, bytes);
  double best[3] = {1e30, 1e30, 1e30};
  for (int r = 0; r < 3; r++) {
    double t0 = cslim_now();
    memcpy(b, a, bytes);
    double t1 = cslim_now();
    for (int e = 0; e < E; e++) {
      for (int c = 0; c < in; c++) acc[c] = -INFINITY;
      if (smooth_linear_col_max(m, &l->experts[3 * e + 2], 0, acc)) return fprintf(stderr, "%s\n", cslim_errmsg()), 1;
    }
    double t2 = cslim_now();
    for (int e = 0; e < E; e++) {
      cslim_linear *d = &l->experts[3 * e + 2];
      for (int c = 0; c < in; c++) acc[c] = -INFINITY;
      if (cslim_linear_materialize(m, d)) return fprintf(stderr, "%s\n", cslim_errmsg()), 1;
      smooth_col_max(d->w, d->out, d->in, 0, acc);
      cslim_linear_release(m, d);
    }
    double t3 = cslim_now(), t[3] = {t1 - t0, t2 - t1, t3 - t2};
    for (int i = 0; i < 3; i++) best[i] = t[i] < best[i] ? t[i] : best[i];
  }
  printf("\ncolumn maxima of the %d experts' down_proj of one %s layer (%.0f MB of bf16, page cache warm):\n", E,
         preset, (double)bytes / 1e6);
  printf("  memcpy limit:                %6.1f GB/s (read + write)\n", 2.0 * (double)bytes / best[0] / 1e9);
  printf("  from the checkpoint's bytes: %6.1f GB/s of bf16 read, %.3f s\n", (double)bytes / best[1] / 1e9, best[1]);
  printf("  converted to float32 first:  %6.1f GB/s of bf16 read, %.3f s\n", (double)bytes / best[2] / 1e9, best[2]);
  free(acc), free(a), free(b);
  cslim_layer_free(m, l);
  cslim_model_close(m);
  char cmd[512];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
  return 0;
}

int main(int argc, char **argv) {
  int tokens = 2048;
  const char *preset = "qwen3-8b", *methods = "rot,m1,m2,m4,m6", *experts = "qwen3-30b-a3b";
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--tokens")) tokens = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--preset")) preset = argv[i + 1];
    else if (!strcmp(argv[i], "--methods")) methods = argv[i + 1];
    else if (!strcmp(argv[i], "--experts")) experts = argv[i + 1];
  }
  cslim_set_threads(0);
  cslim_log_set_level(CSLIM_LOG_WARN);
  bench_hadamard();
  const synth_spec *sp = synth_preset(preset);
  if (!sp) {
    fprintf(stderr, "unknown preset %s\n", preset);
    return 2;
  }
  synth_spec s = *sp;
  s.layers = 1;
  s.vocab = 4096;
  s.tie = 0;
  char dir[] = "/tmp/bench_transform_XXXXXX";
  if (!mkdtemp(dir) || synth_write(&s, dir, 0, 1, NULL)) {
    fprintf(stderr, "synth: %s\n", cslim_errmsg());
    return 1;
  }
  cslim_model *m;
  if (cslim_model_open(dir, &m)) {
    fprintf(stderr, "%s\n", cslim_errmsg());
    return 1;
  }
  /* 8 sequences of tokens/8 random ids */
  int nseq = 8, len = tokens / 8;
  int32_t *ids = malloc((size_t)tokens * sizeof(int32_t));
  int lens[8];
  uint64_t st = 1;
  for (int i = 0; i < tokens; i++) {
    st = st * 6364136223846793005ull + 1442695040888963407ull;
    ids[i] = (int32_t)((st >> 33) % (uint64_t)s.vocab);
  }
  for (int i = 0; i < nseq; i++) lens[i] = len;
  cslim_acts *a;
  if (cslim_acts_embed(m, ids, lens, nseq, &a)) {
    fprintf(stderr, "%s\n", cslim_errmsg());
    return 1;
  }
  cslim_layer *l;
  cslim_layer_load(m, 0, &l);
  double t0 = cslim_now();
  cslim_layer_forward(m, l, a, NULL, NULL);
  double tf = cslim_now() - t0;
  cslim_layer_free(m, l);
  printf("\none %s-shaped layer (hidden %d, MLP %d), %d calibration tokens; sgemm peak %.0f GFLOP/s\n", preset,
         s.hidden, s.intermediate, tokens, bench_sgemm_peak());
  printf("  float forward of the layer: %.2f s\n", tf);
  char list[256];
  snprintf(list, sizeof list, "%s", methods);
  for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) {
    cslim_quant_params p;
    cslim_quant_params_default(&p);
    p.calib_data = "(bench)";
    if (!strcmp(tok, "rot")) p.rot = 1;
    else if (cslim_anti_method_parse(tok, &p.anti_method)) continue;
    cslim_xform *x;
    if (cslim_xform_create(m, &p, &x) || cslim_layer_load(m, 0, &l)) {
      fprintf(stderr, "%s\n", cslim_errmsg());
      return 1;
    }
    t0 = cslim_now();
    cslim_status rc = cslim_xform_layer(x, l, p.anti_method ? a : NULL);
    double t = cslim_now() - t0;
    cslim_xform_layer_done(x);
    cslim_layer_free(m, l);
    cslim_xform_free(x);
    if (rc) {
      fprintf(stderr, "%s: %s\n", tok, cslim_errmsg());
      return 1;
    }
    printf("  %-4s %7.2f s per layer (%5.1f x the float forward)%s\n", tok, t, t / tf,
           !strcmp(tok, "m2") ? "  [grid search: ~30 attention / MLP blocks on 512 rows]"
           : !strcmp(tok, "m6") ? "  [alpha/beta search: 42 fake-quantized GEMMs on 512 rows per subgraph]"
                                : "");
  }
  cslim_acts_free(a);
  cslim_model_close(m);
  free(ids);
  char cmd[512];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
  return strcmp(experts, "none") ? bench_expert_col_max(experts) : 0;
}
