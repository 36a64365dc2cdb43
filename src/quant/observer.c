/* Activation observers: global min/max with moments, and an exact histogram
 * with PyTorch HistogramObserver's L2 range search.
 *
 * Variant chosen (docs/quantization.md): the canonical PyTorch search
 * (_non_linear_param_search / _compute_quantization_error), not msModelSlim
 * v1's quirk (which swaps start/end bins and ends at the full range). Because
 * calibration is layer-wise, the histogram is built on a second pass over the
 * layer's inputs once the global range is known, so it is exact: no
 * up/down-sampling when the range grows, as PyTorch's streaming observer
 * must do. */
#include "cslim/quant.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

void cslim_observer_init(cslim_observer *o) {
  memset(o, 0, sizeof *o);
  o->mn = INFINITY;
  o->mx = -INFINITY;
}

void cslim_observer_free(cslim_observer *o) {
  free(o->hist);
  o->hist = NULL;
}

void cslim_observer_update(cslim_observer *o, const float *x, size_t n) {
  if (!n) return;
  enum { CH = 1 << 16 };
  long nch = (long)((n + CH - 1) / CH);
  float mn = INFINITY, mx = -INFINITY;
  double sum = 0, sumsq = 0;
  /* fixed chunking and a sequential combine: results do not depend on the
   * number of threads */
  float *cmn = malloc((size_t)nch * sizeof(float) * 2);
  double *cs = malloc((size_t)nch * sizeof(double) * 2);
  if (!cmn || !cs) { /* fall back to one pass */
    for (size_t i = 0; i < n; i++) {
      float v = x[i];
      mn = v < mn ? v : mn;
      mx = v > mx ? v : mx;
      sum += v;
      sumsq += (double)v * v;
    }
  } else {
#pragma omp parallel for schedule(static)
    for (long c = 0; c < nch; c++) {
      size_t b = (size_t)c * CH, e = b + CH < n ? b + CH : n;
      float a = INFINITY, z = -INFINITY;
      double s = 0, q = 0;
      for (size_t i = b; i < e; i++) {
        float v = x[i];
        a = v < a ? v : a;
        z = v > z ? v : z;
        s += v;
        q += (double)v * v;
      }
      cmn[2 * c] = a;
      cmn[2 * c + 1] = z;
      cs[2 * c] = s;
      cs[2 * c + 1] = q;
    }
    for (long c = 0; c < nch; c++) {
      mn = cmn[2 * c] < mn ? cmn[2 * c] : mn;
      mx = cmn[2 * c + 1] > mx ? cmn[2 * c + 1] : mx;
      sum += cs[2 * c];
      sumsq += cs[2 * c + 1];
    }
  }
  free(cmn);
  free(cs);
  if (mn < o->mn || mn != mn) o->mn = mn;
  if (mx > o->mx || mx != mx) o->mx = mx;
  o->sum += sum;
  o->sumsq += sumsq;
  o->count += (int64_t)n;
}

double cslim_observer_range_param(const cslim_observer *o) {
  if (o->count < 2) return INFINITY;
  double mean = o->sum / (double)o->count;
  double var = o->sumsq / (double)o->count - mean * mean;
  double sd = var > 0 ? sqrt(var) : 0;
  double a = fabs((double)o->mn) > fabs((double)o->mx) ? fabs((double)o->mn) : fabs((double)o->mx);
  return sd > 0 ? a / sd : INFINITY;
}

cslim_status cslim_observer_hist_begin(cslim_observer *o, int bins) {
  free(o->hist);
  o->hist = calloc((size_t)bins, sizeof(double));
  if (!o->hist) return cslim_error(CSLIM_ERR_NOMEM, "out of memory");
  o->bins = bins;
  o->h_min = o->mn;
  o->h_max = o->mx;
  return CSLIM_OK;
}

/* torch.histc: bin = floor((x - min) * bins / (max - min)), the maximum in
 * the last bin, values outside the range ignored. */
void cslim_observer_hist_update(cslim_observer *o, const float *x, size_t n) {
  if (!o->hist || !n) return;
  const double lo = o->h_min, hi = o->h_max, w = hi - lo;
  const int B = o->bins;
  if (!(w > 0)) {
    o->hist[0] += (double)n;
    return;
  }
  int nt = omp_get_max_threads();
  double *part = calloc((size_t)nt * (size_t)B, sizeof(double));
  if (!part) return;
#pragma omp parallel
  {
    double *h = part + (size_t)omp_get_thread_num() * (size_t)B;
#pragma omp for schedule(static)
    for (size_t i = 0; i < n; i++) {
      double v = x[i];
      if (!(v >= lo && v <= hi)) continue;
      int b = (int)((v - lo) * B / w);
      if (b >= B) b = B - 1;
      h[b] += 1.0;
    }
  }
  for (int t = 0; t < nt; t++) /* counts are integers: any order is exact */
    for (int b = 0; b < B; b++) o->hist[b] += part[(size_t)t * (size_t)B + (size_t)b];
  free(part);
}

/* L2 error of quantizing the histogram's [start, end] bins into dst levels. */
static double quant_error(const cslim_observer *o, int start, int end, int dst) {
  const int B = o->bins;
  double bin_w = ((double)o->h_max - (double)o->h_min) / B;
  double dst_w = bin_w * (end - start + 1) / dst;
  if (dst_w == 0.0) return 0.0;
  double norm = 0;
  for (int i = 0; i < B; i++) {
    double density = o->hist[i] / bin_w;
    if (density == 0) continue;
    double src_begin = (i - start) * bin_w, src_end = src_begin + bin_w;
    double db = floor(src_begin / dst_w), de = floor(src_end / dst_w);
    db = db < 0 ? 0 : db > dst - 1 ? dst - 1 : db;
    de = de < 0 ? 0 : de > dst - 1 ? dst - 1 : de;
    double db_center = (db + 0.5) * dst_w;
    double a = src_begin - db_center, b = dst_w / 2;
    norm += density * (b * b * b - a * a * a) / 3;
    a = -dst_w / 2;
    norm += (de - db - 1) * density * (b * b * b - a * a * a) / 3;
    double de_center = de * dst_w + dst_w / 2;
    b = src_end - de_center;
    norm += density * (b * b * b - a * a * a) / 3;
  }
  return norm;
}

void cslim_observer_hist_range(const cslim_observer *o, int dst, float *clip_min, float *clip_max) {
  *clip_min = o->mn;
  *clip_max = o->mx;
  if (!o->hist || !(o->h_max > o->h_min)) return;
  const int B = o->bins;
  double *csum = malloc((size_t)B * sizeof(double));
  if (!csum) return;
  double total = 0;
  for (int i = 0; i < B; i++) {
    total += o->hist[i];
    csum[i] = total;
  }
  const double step = 1e-5;
  double alpha = 0.0, beta = 1.0, norm_min = INFINITY;
  int start = 0, end = B - 1;
  while (alpha < beta) {
    double na = alpha + step, nb = beta - step;
    int l = start, r = end;
    while (l < end && csum[l] <= na * total) l++;
    while (r > start && csum[r] >= nb * total) r--;
    int ns = start, ne = end;
    if (l - start > end - r) {
      ns = l;
      alpha = na;
    } else {
      ne = r;
      beta = nb;
    }
    if (ns == start && ne == end) continue;
    double norm = quant_error(o, ns, ne, dst);
    if (norm > norm_min) break;
    norm_min = norm;
    start = ns;
    end = ne;
  }
  free(csum);
  /* in float32, as PyTorch computes the bounds from its float32 tensors */
  float bin_wf = (o->h_max - o->h_min) / (float)B;
  *clip_min = o->h_min + bin_wf * (float)start;
  *clip_max = o->h_min + bin_wf * (float)(end + 1);
}
