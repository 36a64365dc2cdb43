/* Weight quantizers: per-channel symmetric min-max (§3.3), SSZ (§3.7),
 * two-stage per-group int4 (§3.8 v0). All per output channel, threaded
 * over channels. */
#include "cslim/quant.h"

#include "quant/weight_kernels.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void cslim_wq_free(cslim_wq *q) {
  if (!q->q_borrowed) free(q->q);
  free(q->scale);
  free(q->scale2);
  free(q->rowsum);
  memset(q, 0, sizeof *q);
}

static cslim_status wq_alloc(cslim_wq *q, int n, int k, int bits) {
  memset(q, 0, sizeof *q);
  q->n = n;
  q->k = k;
  q->bits = bits;
  q->q = malloc((size_t)n * (size_t)k);
  q->scale = malloc((size_t)n * sizeof(float));
  if (!q->q || !q->scale) {
    cslim_wq_free(q);
    return cslim_error(CSLIM_ERR_NOMEM, "out of memory quantizing a %d x %d weight", n, k);
  }
  return CSLIM_OK;
}

static inline int8_t quant1(float w, float s, int qmin, int qmax) {
  float v = nearbyintf(w / s);
  v = v < (float)qmin ? (float)qmin : v > (float)qmax ? (float)qmax : v;
  return (int8_t)v;
}

static double quant_row(const float *w, int k, float s, int bits, int8_t *q, double *wsq) {
  int qmax = (1 << (bits - 1)) - 1, qmin = -(1 << (bits - 1));
  return cslim_row_quantize(w, k, s, qmin, qmax, q, wsq);
}

cslim_status cslim_wq_minmax(const float *w, int n, int k, int bits, cslim_wq *out) {
  cslim_status rc = wq_alloc(out, n, k, bits);
  if (rc) return rc;
  int bad_row = -1;
  double err = 0, wsq = 0;
  /* fixed row blocks, combined in order: the error sums do not depend on the thread count */
  enum { RB = 64 };
  int nb = (n + RB - 1) / RB;
  double *be = calloc((size_t)nb * 2, sizeof(double));
  if (!be) {
    cslim_wq_free(out);
    return cslim_error(CSLIM_ERR_NOMEM, "out of memory");
  }
#pragma omp parallel for schedule(static)
  for (int b = 0; b < nb; b++)
    for (int r = b * RB; r < n && r < (b + 1) * RB; r++) {
      const float *wr = w + (size_t)r * (size_t)k;
      int bad = 0;
      float a = cslim_row_absmax(wr, k, &bad);
      if (bad) {
#pragma omp critical
        if (bad_row < 0 || r < bad_row) bad_row = r;
        continue;
      }
      out->scale[r] = cslim_qparams_sym(-a, a, bits);
      be[2 * b] += quant_row(wr, k, out->scale[r], bits, out->q + (size_t)r * (size_t)k, &be[2 * b + 1]);
    }
  for (int b = 0; b < nb; b++) {
    err += be[2 * b];
    wsq += be[2 * b + 1];
  }
  free(be);
  if (bad_row >= 0) {
    cslim_wq_free(out);
    return cslim_error(CSLIM_ERR_NUMERIC, "row %d has a non-finite value (nothing was written)", bad_row);
  }
  out->err_sq = err;
  out->w_sq = wsq;
  return CSLIM_OK;
}

/* Reconstruction error of the current codes (SSZ and per-group). */
static void wq_error(const float *w, cslim_wq *q) {
  size_t n = (size_t)q->n * (size_t)q->k;
  float *d = malloc(n * sizeof(float));
  if (!d) return;
  cslim_wq_dequant(q, d);
  double e = 0, s = 0;
  for (size_t i = 0; i < n; i++) {
    double x = (double)w[i] - d[i];
    e += x * x;
    s += (double)w[i] * w[i];
  }
  q->err_sq = e;
  q->w_sq = s;
  free(d);
}

static double row_mse(const float *w, const int8_t *q, int k, float s) {
  double e = 0;
  for (int j = 0; j < k; j++) {
    double d = (double)w[j] - (double)q[j] * (double)s;
    e += d * d;
  }
  return e / k;
}

cslim_status cslim_wq_ssz(const float *w, int n, int k, int bits, int max_iter, cslim_wq *out) {
  cslim_status rc = cslim_wq_minmax(w, n, k, bits, out);
  if (rc) return rc;
  float *best_s = malloc((size_t)n * sizeof(float)), *cur_s = malloc((size_t)n * sizeof(float));
  double *best = malloc((size_t)n * sizeof(double)), *mse = malloc((size_t)n * sizeof(double));
  int8_t *cur_q = malloc((size_t)n * (size_t)k);
  if (!best_s || !cur_s || !best || !mse || !cur_q) {
    free(best_s);
    free(cur_s);
    free(best);
    free(mse);
    free(cur_q);
    cslim_wq_free(out);
    return cslim_error(CSLIM_ERR_NOMEM, "out of memory (SSZ)");
  }
  memcpy(cur_q, out->q, (size_t)n * (size_t)k);
#pragma omp parallel for schedule(static)
  for (int r = 0; r < n; r++) {
    best_s[r] = cur_s[r] = out->scale[r];
    best[r] = row_mse(w + (size_t)r * k, out->q + (size_t)r * k, k, out->scale[r]);
  }
  for (int it = 0; it < max_iter; it++) {
    int converged = 1;
#pragma omp parallel for schedule(static) reduction(&& : converged)
    for (int r = 0; r < n; r++) {
      const float *wr = w + (size_t)r * (size_t)k;
      int8_t *qr = cur_q + (size_t)r * (size_t)k;
      double wq = 0, qq = 0;
      for (int j = 0; j < k; j++) {
        wq += (double)wr[j] * qr[j];
        qq += (double)qr[j] * qr[j];
      }
      double s = wq / (qq > 1e-30 ? qq : 1e-30);
      if (!(s >= FLT_EPSILON)) s = cur_s[r]; /* a degenerate channel keeps its scale */
      cur_s[r] = (float)s;
      double ignore = 0;
      quant_row(wr, k, cur_s[r], bits, qr, &ignore);
      mse[r] = row_mse(wr, qr, k, cur_s[r]);
      double gain = best[r] - mse[r];
      int conv = gain / (best[r] > 1e-4 ? best[r] : 1e-4) < 1e-10 || fabs(gain) < 1e-10;
      converged = converged && conv;
    }
    /* stop when every channel has converged; otherwise keep the improvements
     * and continue from the latest (not the best) scales */
    if (converged) break;
    for (int r = 0; r < n; r++)
      if (mse[r] < best[r]) {
        best[r] = mse[r];
        best_s[r] = cur_s[r];
      }
  }
#pragma omp parallel for schedule(static)
  for (int r = 0; r < n; r++) {
    out->scale[r] = best_s[r];
    double ignore = 0;
    quant_row(w + (size_t)r * k, k, best_s[r], bits, out->q + (size_t)r * k, &ignore);
  }
  wq_error(w, out);
  free(best_s);
  free(cur_s);
  free(best);
  free(mse);
  free(cur_q);
  return CSLIM_OK;
}

cslim_status cslim_wq_group(const float *w, int n, int k, int g, cslim_wq *out) {
  if (g <= 0 || k % g)
    return cslim_error(CSLIM_ERR_INVALID, "group size %d does not divide the input width %d", g, k);
  cslim_status rc = cslim_wq_minmax(w, n, k, 8, out); /* stage 1: int8 per channel */
  if (rc) return rc;
  int ng = k / g;
  out->bits = 4;
  out->group_size = g;
  out->scale2 = malloc((size_t)n * (size_t)ng * sizeof(float));
  if (!out->scale2) {
    cslim_wq_free(out);
    return cslim_error(CSLIM_ERR_NOMEM, "out of memory");
  }
#pragma omp parallel for schedule(static)
  for (int r = 0; r < n; r++) {
    int8_t *qr = out->q + (size_t)r * (size_t)k;
    for (int c = 0; c < ng; c++) { /* stage 2: int8 codes -> int4, symmetric per group */
      int8_t *qg = qr + (size_t)c * (size_t)g;
      float mx = 0;
      for (int j = 0; j < g; j++) mx = fabsf((float)qg[j]) > mx ? fabsf((float)qg[j]) : mx;
      float s2 = cslim_qparams_sym(-mx, mx, 4);
      out->scale2[(size_t)r * ng + c] = s2;
      for (int j = 0; j < g; j++) qg[j] = quant1((float)qg[j], s2, -8, 7);
    }
  }
  wq_error(w, out);
  return CSLIM_OK;
}

void cslim_wq_dequant(const cslim_wq *q, float *w) {
  int ng = q->group_size > 0 ? q->k / q->group_size : 0;
#pragma omp parallel for schedule(static)
  for (int r = 0; r < q->n; r++)
    for (int j = 0; j < q->k; j++) {
      float s = q->scale[r];
      if (ng) s = q->scale2[(size_t)r * ng + j / q->group_size] * s;
      w[(size_t)r * q->k + j] = (float)q->q[(size_t)r * q->k + j] * s;
    }
}
