/* Float32 GEMM with the ordered dot product of model/repro.h: every output is
 * one chain acc = +0, acc = fma(a[t], b[t], acc) for t = 0 .. k-1, each fma
 * rounded once, so the result does not depend on the machine, the thread
 * count or the blocking — and the GPU engine's kernels give the same bits.
 *
 * Blocked as BLIS does (panels of A and B packed for the caches, an MR x NR
 * register tile of accumulators), except that a depth block continues the
 * chain from the values already in C instead of adding a partial sum to them:
 * that keeps the order without costing speed. The register tile is AVX2 FMAs
 * where the build has them (x86-64-v3, the default), else plain fmaf — the
 * same bits, slower. */
#include "model/model_internal.h"

#include <math.h>
#include <omp.h>
#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#endif
#include <stdlib.h>
#include <string.h>

#define MR 6
#define NR 16
#define KC 512
#define MC 120  /* rows of A per packed block (a multiple of MR) */
#define NC 3072 /* columns of B per packed block (a multiple of NR) */

/* The MR x NR tile at c (row stride ldc) continued over kc steps of the packed panels; first: from +0 */
static void tile(int kc, const float *restrict ap, const float *restrict bp, float *restrict c, int ldc, int first) {
#if defined(__AVX2__) && defined(__FMA__) && MR == 6 && NR == 16
  __m256 r[MR][2];
  for (int i = 0; i < MR; i++) {
    r[i][0] = first ? _mm256_setzero_ps() : _mm256_loadu_ps(c + (size_t)i * ldc);
    r[i][1] = first ? _mm256_setzero_ps() : _mm256_loadu_ps(c + (size_t)i * ldc + 8);
  }
  for (int t = 0; t < kc; t++) {
    const __m256 b0 = _mm256_loadu_ps(bp + (size_t)t * NR), b1 = _mm256_loadu_ps(bp + (size_t)t * NR + 8);
    const float *a = ap + (size_t)t * MR;
    for (int i = 0; i < MR; i++) {
      const __m256 x = _mm256_broadcast_ss(a + i);
      r[i][0] = _mm256_fmadd_ps(x, b0, r[i][0]);
      r[i][1] = _mm256_fmadd_ps(x, b1, r[i][1]);
    }
  }
  for (int i = 0; i < MR; i++) _mm256_storeu_ps(c + (size_t)i * ldc, r[i][0]), _mm256_storeu_ps(c + (size_t)i * ldc + 8, r[i][1]);
#else
  float r[MR][NR];
  for (int i = 0; i < MR; i++)
    for (int j = 0; j < NR; j++) r[i][j] = first ? 0.0f : c[(size_t)i * ldc + j];
  for (int t = 0; t < kc; t++) {
    const float *a = ap + (size_t)t * MR, *b = bp + (size_t)t * NR;
    for (int i = 0; i < MR; i++)
      for (int j = 0; j < NR; j++) r[i][j] = fmaf(a[i], b[j], r[i][j]);
  }
  for (int i = 0; i < MR; i++)
    for (int j = 0; j < NR; j++) c[(size_t)i * ldc + j] = r[i][j];
#endif
}

/* A rows [i0, i0 + mc), depth [p0, p0 + kc) -> panels of MR rows, t-major, zero rows past m (each source row read
 * contiguously; the scattered writes stay in a panel of kc * MR floats) */
static void pack_a(const float *A, int lda, int m, int i0, int mc, int p0, int kc, float *ap) {
  for (int ip = 0; ip < mc; ip += MR) {
    float *panel = ap + (size_t)ip * kc;
    for (int i = 0; i < MR; i++) {
      const int r = i0 + ip + i;
      if (r < m) {
        const float *src = A + (size_t)r * lda + p0;
        for (int t = 0; t < kc; t++) panel[(size_t)t * MR + i] = src[t];
      } else {
        for (int t = 0; t < kc; t++) panel[(size_t)t * MR + i] = 0.0f;
      }
    }
  }
}

/* columns [j0, j0 + NR) of B (B[j][t] when trans, else B[t][j]), depth [p0, p0 + kc) -> one panel, t-major */
static void pack_b_panel(int trans, const float *B, int ldb, int n, int j0, int p0, int kc, float *bp) {
  for (int j = 0; j < NR; j++) {
    const int c = j0 + j;
    if (c >= n) {
      for (int t = 0; t < kc; t++) bp[(size_t)t * NR + j] = 0.0f;
    } else if (trans) {
      const float *src = B + (size_t)c * ldb + p0;
      for (int t = 0; t < kc; t++) bp[(size_t)t * NR + j] = src[t];
    } else {
      for (int t = 0; t < kc; t++) bp[(size_t)t * NR + j] = B[(size_t)(p0 + t) * ldb + c];
    }
  }
}

/* rows [i0, i0 + mc) of C against the packed columns [j0, j0 + nc), continuing the chains (first: from +0);
 * tiles past C's edge go through a local buffer */
static void block(int first, int m, int n, int i0, int mc, int j0, int nc, int kc, const float *ap, const float *bp,
                  float *C, int ldc) {
  float edge[MR * NR];
  for (int jp = 0; jp < nc; jp += NR)
    for (int ip = 0; ip < mc; ip += MR) {
      const int r0 = i0 + ip, c0 = j0 + jp;
      const int mr = m - r0 < MR ? m - r0 : MR, nr = n - c0 < NR ? n - c0 : NR;
      if (mr <= 0) break;
      if (mr == MR && nr == NR) {
        tile(kc, ap + (size_t)ip * kc, bp + (size_t)jp * kc, C + (size_t)r0 * ldc + c0, ldc, first);
        continue;
      }
      memset(edge, 0, sizeof edge);
      if (!first)
        for (int i = 0; i < mr; i++) memcpy(edge + i * NR, C + (size_t)(r0 + i) * ldc + c0, (size_t)nr * sizeof(float));
      tile(kc, ap + (size_t)ip * kc, bp + (size_t)jp * kc, edge, NR, 0);
      for (int i = 0; i < mr; i++) memcpy(C + (size_t)(r0 + i) * ldc + c0, edge + i * NR, (size_t)nr * sizeof(float));
    }
}

cslim_status cslim_gemm_ordered(int trans_b, int m, int n, int k, float alpha, const float *A, int lda, const float *B,
                                int ldb, float *C, int ldc, int threads) {
  if (m <= 0 || n <= 0) return CSLIM_OK;
  if (k <= 0) {
    for (int i = 0; i < m; i++) memset(C + (size_t)i * ldc, 0, (size_t)n * sizeof(float));
    return CSLIM_OK;
  }
  if (threads < 1) threads = 1;
  const int nc_max = n < NC ? (n + NR - 1) / NR * NR : NC, kc_max = k < KC ? k : KC;
  const int mc_max = m < MC ? (m + MR - 1) / MR * MR : MC;
  float *bp = malloc((size_t)nc_max * kc_max * sizeof(float));
  float *aps = malloc((size_t)threads * mc_max * kc_max * sizeof(float));
  if (!bp || !aps) {
    free(bp);
    free(aps);
    return cslim_error(CSLIM_ERR_NOMEM, "out of memory for a %d x %d x %d product", m, n, k);
  }
  const int mblocks = (m + mc_max - 1) / mc_max;
#pragma omp parallel num_threads(threads) if (threads > 1)
  {
    float *ap = aps + (size_t)omp_get_thread_num() * mc_max * kc_max;
    for (int j0 = 0; j0 < n; j0 += nc_max) {
      const int nc = n - j0 < nc_max ? (n - j0 + NR - 1) / NR * NR : nc_max;
      /* work units: a block of A's rows against a slice of the packed columns, enough of them for every thread */
      int slice = nc;
      while (slice > 4 * NR && (size_t)mblocks * ((nc + slice - 1) / slice) < 4 * (size_t)threads) slice = (slice / 2 + NR - 1) / NR * NR;
      const int nslices = (nc + slice - 1) / slice;
      for (int p0 = 0; p0 < k; p0 += kc_max) {
        const int kc = k - p0 < kc_max ? k - p0 : kc_max;
#pragma omp for schedule(static)
        for (int jp = 0; jp < nc; jp += NR) pack_b_panel(trans_b, B, ldb, n, j0 + jp, p0, kc, bp + (size_t)jp * kc);
#pragma omp for schedule(dynamic, 1)
        for (int u = 0; u < mblocks * nslices; u++) {
          const int bi = u / nslices, js = u % nslices * slice, jn = nc - js < slice ? nc - js : slice;
          const int i0 = bi * mc_max, mc = m - i0 < mc_max ? (m - i0 + MR - 1) / MR * MR : mc_max;
          pack_a(A, lda, m, i0, mc, p0, kc, ap);
          block(p0 == 0, m, n, i0, mc, j0 + js, jn, kc, ap, bp + (size_t)js * kc, C, ldc);
        }
      }
    }
  }
  free(bp);
  free(aps);
  if (alpha != 1.0f) {
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
    for (int i = 0; i < m; i++)
      for (int j = 0; j < n; j++) C[(size_t)i * ldc + j] *= alpha;
  }
  return CSLIM_OK;
}
