/* bench_forward: one decoder layer with the real shapes of Qwen3-8B (dense)
 * and of Qwen3-30B-A3B (128 experts, top-8), random weights, 2048 tokens in
 * one sequence. Prints tokens/s and achieved GFLOP/s next to the measured
 * OpenBLAS sgemm peak of this machine, and the rate of the ordered GEMM the
 * float Linears use (model/repro.h) on the peak's product. Goal: >= 60 % of
 * peak for the dense layer.
 *
 *   bench_forward [--tokens 2048] [--reps 3] [--only dense|moe] */
#include "bench_util.h"
#include "synth.h"

#include "cslim/cslim.h"
#include "cslim/model.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int run(const char *preset, int tokens, int reps, double peak) {
  const synth_spec *p = synth_preset(preset);
  synth_spec s = *p;
  s.layers = 1;
  s.vocab = 1024;
  s.tie = 0;
  const char *base = getenv("TMPDIR");
  char dir[4096];
  snprintf(dir, sizeof dir, "%s/bench-forward-%s-%d", base && *base ? base : "/tmp", preset, (int)getpid());
  if (synth_write(&s, dir, 0, 7, NULL)) {
    fprintf(stderr, "bench_forward: %s\n", cslim_errmsg());
    return 1;
  }
  cslim_model *m;
  if (cslim_model_open(dir, &m)) {
    fprintf(stderr, "bench_forward: %s\n", cslim_errmsg());
    return 1;
  }
  int32_t *ids = malloc((size_t)tokens * sizeof(int32_t));
  for (int i = 0; i < tokens; i++) ids[i] = (i * 7919) % s.vocab;
  double t0 = cslim_now();
  cslim_layer *l;
  if (cslim_layer_load(m, 0, &l)) {
    fprintf(stderr, "bench_forward: %s\n", cslim_errmsg());
    return 1;
  }
  double tload = cslim_now() - t0;
  double H = s.hidden, D = s.head_dim, Q = s.heads * D, KV = s.kv_heads * D, T = tokens;
  double flin = 2 * T * (Q * H + 2 * KV * H + H * Q);
  double fatt = 2 * T * T * D * s.heads; /* causal: half of 4 T^2 D per head */
  double fmlp = s.experts ? 2 * T * (H * s.experts + (double)s.top_k * 3 * H * s.moe_intermediate)
                          : 2 * T * 3 * H * s.intermediate;
  double flops = flin + fatt + fmlp, best = 1e30;
  for (int r = 0; r < reps; r++) {
    cslim_acts *a;
    cslim_acts_embed(m, ids, &tokens, 1, &a);
    double t1 = cslim_now();
    if (cslim_layer_forward(m, l, a, NULL, NULL)) {
      fprintf(stderr, "bench_forward: %s\n", cslim_errmsg());
      return 1;
    }
    double t = cslim_now() - t1;
    if (t < best) best = t;
    cslim_acts_free(a);
  }
  printf("%-14s %d tokens: layer %.3f s = %7.0f tokens/s, %6.1f GFLOP/s = %5.1f %% of sgemm peak "
         "(weights: load+convert %.2f s)\n",
         preset, tokens, best, T / best, flops / best / 1e9, 100.0 * flops / best / 1e9 / peak, tload);
  if (s.experts)
    printf("%-14s   (experts are converted from bf16 when their tokens arrive; that is inside the time)\n", "");
  cslim_layer_free(m, l);
  cslim_model_close(m);
  free(ids);
  cslim_remove_tree(dir);
  return 0;
}

int main(int argc, char **argv) {
  int tokens = 2048, reps = 3;
  const char *only = NULL;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--tokens")) tokens = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--reps")) reps = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--only")) only = argv[i + 1];
  }
  cslim_set_threads(0);
  cslim_set_quiet(1);
  double peak = bench_sgemm_peak();
  printf("sgemm peak (2048x4096x4096, %d threads): %.1f GFLOP/s\n", cslim_get_threads(), peak);
  const double ordered = bench_ordered_gemm_rate();
  printf("ordered GEMM, the Linears' product (same shape): %.1f GFLOP/s = %.1f %% of sgemm peak\n", ordered,
         100.0 * ordered / peak);
  int rc = 0;
  if (!only || !strcmp(only, "dense")) rc |= run("qwen3-8b", tokens, reps, peak);
  if (!only || !strcmp(only, "moe")) rc |= run("qwen3-30b-a3b", tokens, reps, peak);
  return rc;
}
