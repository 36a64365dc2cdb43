/* W8A8S weights (spec §3.15): low-bit sparse quantization with outlier
 * protection, per output channel.
 *
 *  1. Outliers: the ceil(fraction·k) entries of largest |w| (ties at the
 *     threshold included), or with use_sigma those with |w − mean| >
 *     sigma_factor·std; none when open_outlier is off.
 *  2. Scale: s0 = max |inlier| / 7. Search s over s0·{0.50, 0.55, …, 1.00},
 *     then the hundredths within ±0.04 of the best, minimising the channel's
 *     squared error Σ (w − s·q)², where inliers take q = clamp(round(w/s), −8, 7)
 *     and outliers q = clamp(round(w/s), −128, 127); then up to 4
 *     least-squares steps (s ← Σ w·q / Σ q² with the codes fixed, codes
 *     recomputed), keeping the best. co_sparse (the legacy backend) uses s0.
 *  3. Codes are stored in int8: most in [−8, 7], the outliers in the int8
 *     range; dequantized w ≈ s·q like any W8A8 weight. */
#include "cslim/quant.h"

#include "quant/weight_kernels.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* the m-th largest of a[0..k) (1-based m), reordering a: quickselect */
static float kth_largest(float *a, int k, int m) {
  int lo = 0, hi = k - 1, want = m - 1;
  while (lo < hi) {
    float piv = a[lo + (hi - lo) / 2];
    int i = lo, j = hi;
    while (i <= j) {
      while (a[i] > piv) i++;
      while (a[j] < piv) j--;
      if (i <= j) {
        float t = a[i];
        a[i++] = a[j];
        a[j--] = t;
      }
    }
    if (want <= j) hi = j;
    else if (want >= i) lo = i;
    else return a[want];
  }
  return a[lo];
}

/* codes of row w with scale s and per-element ranges; returns the squared error */
static double encode_row(const float *w, const float *lo, const float *hi, int k, float s, int8_t *q) {
  double err = 0;
  for (int j = 0; j < k; j++) {
    float v = nearbyintf(w[j] / s);
    v = v < lo[j] ? lo[j] : v > hi[j] ? hi[j] : v;
    q[j] = (int8_t)v;
    float d = w[j] - v * s;
    err += (double)d * d;
  }
  return err;
}

/* scratch of one thread: tmp, lo, hi [k] floats and qt [k] codes */
typedef struct scratch {
  float *tmp, *lo, *hi;
  int8_t *qt;
} scratch;

/* returns 0, or -1 when the row has a non-finite value */
static int sparse_row(const float *w, int k, const cslim_sparse_params *sp, scratch *x, int8_t *q, float *scale,
                      double *err, double *wsq, int64_t *wide) {
  double sum = 0, sq = 0;
  if (k <= 0) return -1;
  for (int j = 0; j < k; j++) {
    if (!isfinite(w[j])) return -1;
    sum += w[j];
    sq += (double)w[j] * w[j];
  }
  *wsq = sq;
  float *lo = x->lo, *hi = x->hi;
  for (int j = 0; j < k; j++) lo[j] = -8.0f, hi[j] = 7.0f;
  if (sp->open_outlier && sp->use_sigma) {
    double mean = sum / k, var = sq / k - mean * mean, lim = sp->sigma_factor * sqrt(var > 0 ? var : 0);
    for (int j = 0; j < k; j++)
      if (fabs((double)w[j] - mean) > lim) lo[j] = -128.0f, hi[j] = 127.0f;
  } else if (sp->open_outlier) {
    int m = (int)ceil(sp->fraction * k - 1e-9);
    if (m > 0) {
      for (int j = 0; j < k; j++) x->tmp[j] = fabsf(w[j]);
      float thr = kth_largest(x->tmp, k, m < k ? m : k);
      for (int j = 0; j < k; j++)
        if (fabsf(w[j]) >= thr && thr > 0) lo[j] = -128.0f, hi[j] = 127.0f;
    }
  }
  float amax = 0, omax = 0;
  for (int j = 0; j < k; j++) {
    float a = fabsf(w[j]);
    if (hi[j] == 7.0f) amax = a > amax ? a : amax;
    omax = a > omax ? a : omax;
  }
  float s0 = amax / 7.0f;
  if (!(s0 >= FLT_EPSILON)) /* every inlier zero: the outliers set the scale */
    s0 = omax / 127.0f >= FLT_EPSILON ? omax / 127.0f : FLT_EPSILON;
  float best_s = s0;
  double best = cslim_row_clamped_err(w, lo, hi, k, s0);
  if (!sp->co_sparse) {
    /* s0 x {0.50, 0.55, ..., 0.95}, then the hundredths around the best */
    int bi = 100;
    for (int i = 50; i < 100; i += 5) {
      float s = s0 * (float)i / 100.0f;
      double e = s >= FLT_EPSILON ? cslim_row_clamped_err(w, lo, hi, k, s) : INFINITY;
      if (e < best) best = e, best_s = s, bi = i;
    }
    for (int i = bi - 4; i <= bi + 4 && i <= 100; i++) {
      if (i % 5 == 0 || i < 50) continue;
      float s = s0 * (float)i / 100.0f;
      double e = s >= FLT_EPSILON ? cslim_row_clamped_err(w, lo, hi, k, s) : INFINITY;
      if (e < best) best = e, best_s = s;
    }
    /* least-squares steps with the codes fixed */
    for (int it = 0; it < 4; it++) {
      encode_row(w, lo, hi, k, best_s, x->qt);
      double wq = 0, qq = 0;
      for (int j = 0; j < k; j++) wq += (double)w[j] * x->qt[j], qq += (double)x->qt[j] * x->qt[j];
      if (qq <= 0) break;
      float s = (float)(wq / qq);
      if (!(s >= FLT_EPSILON) || s == best_s) break;
      double e = cslim_row_clamped_err(w, lo, hi, k, s);
      if (!(e < best)) break;
      best = e, best_s = s;
    }
  }
  *err = encode_row(w, lo, hi, k, best_s, q);
  int64_t nw = 0;
  for (int j = 0; j < k; j++) nw += q[j] < -8 || q[j] > 7;
  *scale = best_s;
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
    scratch x = {malloc((size_t)k * sizeof(float)), malloc((size_t)k * sizeof(float)), malloc((size_t)k * sizeof(float)),
                 malloc((size_t)k)};
    int ok = x.tmp && x.lo && x.hi && x.qt;
    if (!ok) {
#pragma omp atomic write
      nomem = 1;
    }
#pragma omp for schedule(dynamic, 16)
    for (int r = 0; r < n; r++) {
      if (!ok) continue;
      if (sparse_row(w + (size_t)r * k, k, sp, &x, out->q + (size_t)r * k, &out->scale[r], &re[2 * r], &re[2 * r + 1],
                     &rw[r])) {
#pragma omp critical
        if (bad_row < 0 || r < bad_row) bad_row = r;
      }
    }
    free(x.tmp), free(x.lo), free(x.hi), free(x.qt);
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
