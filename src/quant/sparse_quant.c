/* W8A8S weights (spec §3.15): low-bit sparse quantization with outlier
 * protection, per output channel.
 *
 *  1. Outliers: the ceil(fraction·k) entries of largest |w| (ties at the
 *     threshold included), or with use_sigma those with |w − mean| >
 *     sigma_factor·std; none when open_outlier is off.
 *  2. Scale: s0 = max |inlier| / 7. Search s over s0·{0.50, 0.51, …, 1.00}
 *     minimising the channel's squared error Σ (w − s·q)², where inliers take
 *     q = clamp(round(w/s), −8, 7) and outliers q = clamp(round(w/s), −128, 127);
 *     then up to 4 least-squares steps (s ← Σ w·q / Σ q² with the codes fixed,
 *     codes recomputed), keeping the best. co_sparse (the legacy backend) uses
 *     s0 as is.
 *  3. Codes are stored in int8: most in [−8, 7], the outliers in the int8
 *     range; dequantized w ≈ s·q like any W8A8 weight. */
#include "cslim/quant.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static int cmp_desc(const void *a, const void *b) {
  float x = *(const float *)a, y = *(const float *)b;
  return (x < y) - (x > y);
}

/* codes of row w with scale s under mask (1 = outlier); returns the squared error */
static double encode_row(const float *w, const uint8_t *mask, int k, float s, int8_t *q) {
  double err = 0;
  for (int j = 0; j < k; j++) {
    float v = nearbyintf(w[j] / s);
    float lo = mask[j] ? -128.0f : -8.0f, hi = mask[j] ? 127.0f : 7.0f;
    v = v < lo ? lo : v > hi ? hi : v;
    q[j] = (int8_t)v;
    double d = (double)w[j] - (double)s * v;
    err += d * d;
  }
  return err;
}

/* returns 0, or -1 when the row has a non-finite value */
static int sparse_row(const float *w, int k, const cslim_sparse_params *sp, float *tmp, uint8_t *mask, int8_t *q,
                      int8_t *qt, float *scale, double *err, double *wsq, int64_t *wide) {
  double sum = 0, sq = 0;
  if (k <= 0) return -1;
  for (int j = 0; j < k; j++) {
    if (!isfinite(w[j])) return -1;
    sum += w[j];
    sq += (double)w[j] * w[j];
  }
  *wsq = sq;
  memset(mask, 0, (size_t)k);
  if (sp->open_outlier && sp->use_sigma) {
    double mean = sum / k, var = sq / k - mean * mean, lim = sp->sigma_factor * sqrt(var > 0 ? var : 0);
    for (int j = 0; j < k; j++) mask[j] = fabs((double)w[j] - mean) > lim;
  } else if (sp->open_outlier) {
    int m = (int)ceil(sp->fraction * k - 1e-9);
    if (m > 0) {
      for (int j = 0; j < k; j++) tmp[j] = fabsf(w[j]);
      qsort(tmp, (size_t)k, sizeof(float), cmp_desc);
      float thr = tmp[m - 1];
      for (int j = 0; j < k; j++) mask[j] = fabsf(w[j]) >= thr && thr > 0;
    }
  }
  float amax = 0;
  for (int j = 0; j < k; j++)
    if (!mask[j] && fabsf(w[j]) > amax) amax = fabsf(w[j]);
  float s0 = amax / 7.0f;
  if (!(s0 >= FLT_EPSILON)) { /* every inlier zero: the outliers set the scale */
    float omax = 0;
    for (int j = 0; j < k; j++) omax = fabsf(w[j]) > omax ? fabsf(w[j]) : omax;
    s0 = omax / 127.0f >= FLT_EPSILON ? omax / 127.0f : FLT_EPSILON;
  }
  float best_s = s0;
  double best = encode_row(w, mask, k, s0, q);
  if (!sp->co_sparse) {
    for (int i = 50; i < 100; i++) {
      float s = s0 * (float)i / 100.0f;
      if (!(s >= FLT_EPSILON)) continue;
      double e = encode_row(w, mask, k, s, qt);
      if (e < best) best = e, best_s = s;
    }
    encode_row(w, mask, k, best_s, qt);
    for (int it = 0; it < 4; it++) {
      double wq = 0, qq = 0;
      for (int j = 0; j < k; j++) wq += (double)w[j] * qt[j], qq += (double)qt[j] * qt[j];
      if (qq <= 0) break;
      float s = (float)(wq / qq);
      if (!(s >= FLT_EPSILON)) break;
      double e = encode_row(w, mask, k, s, qt);
      if (!(e < best)) break;
      best = e, best_s = s;
    }
    best = encode_row(w, mask, k, best_s, q);
  }
  int64_t nw = 0;
  for (int j = 0; j < k; j++) nw += q[j] < -8 || q[j] > 7;
  *scale = best_s;
  *err = best;
  *wide = nw;
  return 0;
}

cslim_status cslim_wq_sparse(const float *w, int n, int k, const cslim_sparse_params *sp, cslim_wq *out) {
  memset(out, 0, sizeof *out);
  if (sp->fraction < 0.01 - 1e-12 || sp->fraction > 0.1 + 1e-12)
    return cslim_error(CSLIM_ERR_INVALID, "fraction %g is not in [0.01, 0.1]", sp->fraction);
  if (sp->use_sigma && (sp->sigma_factor < 1.0 || sp->sigma_factor > 4.0))
    return cslim_error(CSLIM_ERR_INVALID, "sigma_factor %g is not in [1.0, 4.0]", sp->sigma_factor);
  out->n = n, out->k = k, out->bits = 8;
  out->q = malloc((size_t)n * (size_t)k);
  out->scale = malloc((size_t)n * sizeof(float));
  double *re = calloc((size_t)n * 2, sizeof(double));
  int64_t *rw = calloc((size_t)n, sizeof(int64_t));
  if (!out->q || !out->scale || !re || !rw) {
    free(re), free(rw);
    cslim_wq_free(out);
    return cslim_error(CSLIM_ERR_NOMEM, "out of memory quantizing a %d x %d weight", n, k);
  }
  int bad_row = -1, nomem = 0;
#pragma omp parallel
  {
    float *tmp = malloc((size_t)k * sizeof(float));
    uint8_t *mask = malloc((size_t)k);
    int8_t *qt = malloc((size_t)k);
    if (!tmp || !mask || !qt) {
#pragma omp atomic write
      nomem = 1;
    }
#pragma omp for schedule(dynamic, 16)
    for (int r = 0; r < n; r++) {
      if (!tmp || !mask || !qt) continue;
      if (sparse_row(w + (size_t)r * k, k, sp, tmp, mask, out->q + (size_t)r * k, qt, &out->scale[r], &re[2 * r],
                     &re[2 * r + 1], &rw[r])) {
#pragma omp critical
        if (bad_row < 0 || r < bad_row) bad_row = r;
      }
    }
    free(tmp), free(mask), free(qt);
  }
  double err = 0, wsq = 0;
  int64_t wide = 0;
  for (int r = 0; r < n; r++) err += re[2 * r], wsq += re[2 * r + 1], wide += rw[r];
  free(re), free(rw);
  if (nomem || bad_row >= 0) {
    cslim_wq_free(out);
    return nomem ? cslim_error(CSLIM_ERR_NOMEM, "out of memory (W8A8S)")
                 : cslim_error(CSLIM_ERR_NUMERIC, "row %d has a non-finite value (nothing was written)", bad_row);
  }
  out->err_sq = err;
  out->w_sq = wsq;
  out->n_wide = wide;
  return CSLIM_OK;
}
