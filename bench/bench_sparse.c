/* bench_sparse: the W8A8S / W8A8SC hot paths on Qwen3-8B-shaped weights
 * (random N(0, 0.02) with 0.3 % larger entries):
 *   1. the W8A8S weight quantizer (outlier mask, scale search) against the
 *      per-channel min-max quantizer on the same weight: GB/s of float32 read;
 *   2. NZ tiling and the codec (encode, decode) of the codes: MB/s of int8
 *      codes, next to memcpy's bandwidth on the same buffer; the ratio.
 *
 *   bench_sparse [--rows 12288] [--cols 4096] */
#include "bench_util.h"

#include "cslim/compress.h"
#include "cslim/cslim.h"
#include "cslim/quant.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static double best_of(int reps, double (*fn)(void *), void *ctx) {
  double b = 1e30;
  for (int i = 0; i < reps; i++) {
    double t = fn(ctx);
    b = t < b ? t : b;
  }
  return b;
}

typedef struct job {
  const float *w;
  int n, k;
  cslim_sparse_params sp;
  int8_t *codes, *nz, *back;
  size_t nz_len;
  cslim_sc_stream s;
} job;

static double run_sparse(void *c) {
  job *j = c;
  cslim_wq q;
  double t0 = cslim_now();
  if (cslim_wq_sparse(j->w, j->n, j->k, &j->sp, &q)) return 1e30;
  double t = cslim_now() - t0;
  memcpy(j->codes, q.q, (size_t)j->n * j->k);
  cslim_wq_free(&q);
  return t;
}

static double run_minmax(void *c) {
  job *j = c;
  cslim_wq q;
  double t0 = cslim_now();
  if (cslim_wq_minmax(j->w, j->n, j->k, 8, &q)) return 1e30;
  double t = cslim_now() - t0;
  cslim_wq_free(&q);
  return t;
}

static double run_nz(void *c) {
  job *j = c;
  double t0 = cslim_now();
  cslim_nd2nz(j->codes, j->n, j->k, j->nz);
  return cslim_now() - t0;
}

static double run_encode(void *c) {
  job *j = c;
  cslim_sc_stream_free(&j->s);
  double t0 = cslim_now();
  if (cslim_sc_encode(j->nz, j->nz_len, &j->s)) return 1e30;
  return cslim_now() - t0;
}

static double run_decode(void *c) {
  job *j = c;
  double t0 = cslim_now();
  if (cslim_sc_decode(j->s.data, j->s.len, j->s.index, j->s.index_len, j->back, j->nz_len)) return 1e30;
  return cslim_now() - t0;
}

static double run_memcpy(void *c) {
  job *j = c;
  double t0 = cslim_now();
  memcpy(j->back, j->nz, j->nz_len);
  return cslim_now() - t0;
}

int main(int argc, char **argv) {
  int n = 12288, k = 4096; /* Qwen3-8B gate_proj */
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--rows")) n = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--cols")) k = atoi(argv[i + 1]);
  }
  printf("threads: %d\n", cslim_get_threads());
  size_t nk = (size_t)n * (size_t)k;
  float *w = malloc(nk * sizeof(float));
  uint64_t s = 1;
  for (size_t i = 0; i < nk; i++) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    double u1 = ((s >> 11) + 1.0) / 9007199254740993.0;
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    double u2 = (s >> 11) / 9007199254740992.0;
    w[i] = (float)(0.02 * sqrt(-2 * log(u1)) * cos(6.283185307179586 * u2));
    if (s % 333 == 0) w[i] *= 6.0f;
  }
  job j = {w, n, k, {0.01, 0, 3.0, 1, 0}, malloc(nk), NULL, NULL, cslim_nz_size(n, k), {0}};
  j.nz = malloc(j.nz_len);
  j.back = malloc(j.nz_len);
  printf("weight %d x %d (%.1f MB float32)\n", n, k, (double)nk * 4 / 1e6);
  double tm = best_of(3, run_minmax, &j), ts = best_of(2, run_sparse, &j);
  printf("  min-max int8 quantizer:        %7.2f GB/s\n", (double)nk * 4 / tm / 1e9);
  printf("  W8A8S quantizer (fraction):    %7.2f GB/s  (%.1fx the min-max time: quickselect mask, ~18 scales tried, least-squares steps)\n",
         (double)nk * 4 / ts / 1e9, ts / tm);
  j.sp.use_sigma = 1;
  ts = best_of(2, run_sparse, &j);
  printf("  W8A8S quantizer (use_sigma):   %7.2f GB/s\n", (double)nk * 4 / ts / 1e9);
  double tc = best_of(3, run_memcpy, &j), tn = best_of(3, run_nz, &j), te = best_of(3, run_encode, &j),
         td = best_of(3, run_decode, &j);
  printf("int8 codes %.1f MB:\n", (double)j.nz_len / 1e6);
  printf("  memcpy limit:                  %7.0f MB/s (read + write)\n", 2.0 * (double)j.nz_len / tc / 1e6);
  printf("  ND -> NZ tiling:               %7.0f MB/s (read + write)\n", 2.0 * (double)j.nz_len / tn / 1e6);
  printf("  codec encode:                  %7.0f MB/s of codes\n", (double)j.nz_len / te / 1e6);
  printf("  codec decode:                  %7.0f MB/s of codes\n", (double)j.nz_len / td / 1e6);
  printf("  ratio %.2fx (%.2f bits per weight, index included)\n",
         (double)j.nz_len / (double)(j.s.len + j.s.index_len), 8.0 * (double)(j.s.len + j.s.index_len) / (double)j.nz_len);
  int ok = memcmp(j.back, j.nz, j.nz_len) == 0;
  cslim_sc_stream_free(&j.s);
  free(w), free(j.codes), free(j.nz), free(j.back);
  return ok ? 0 : 1;
}
