#include "bench_util.h"

#include "cslim/cslim.h"
#include "model/model_internal.h"

#include <cblas.h>
#include <stdlib.h>

/* best of three (after a warm-up) of C = A . B^T, 2048 x 4096 x 4096: OpenBLAS, or cslim's ordered product */
static double gemm_rate(int ordered) {
  const int M = 2048, N = 4096, K = 4096;
  float *a = malloc((size_t)M * K * 4), *b = malloc((size_t)N * K * 4), *c = malloc((size_t)M * N * 4);
  if (!a || !b || !c) {
    free(a);
    free(b);
    free(c);
    return 0;
  }
  for (size_t i = 0; i < (size_t)M * K; i++) a[i] = (float)(i % 13) * 0.01f;
  for (size_t i = 0; i < (size_t)N * K; i++) b[i] = (float)(i % 7) * 0.01f;
  double best = 1e30;
  for (int r = 0; r < 4; r++) {
    double t0 = cslim_now();
    if (ordered)
      cslim_gemm_ordered(1, M, N, K, 1.0f, a, K, b, K, c, N, cslim_get_threads());
    else
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, a, K, b, K, 0.0f, c, N);
    double t = cslim_now() - t0;
    if (r && t < best) best = t;
  }
  free(a);
  free(b);
  free(c);
  return 2.0 * M * N * K / best / 1e9;
}

double bench_sgemm_peak(void) { return gemm_rate(0); }

double bench_ordered_gemm_rate(void) { return gemm_rate(1); }
