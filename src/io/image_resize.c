/* Antialiased bicubic resampling of 8-bit RGB, bit-identical to PyTorch's
 * uint8 antialias kernel (a port of Pillow-SIMD's fixed-point resampler),
 * which torchvision's resize(..., BICUBIC, antialias=True) runs:
 *
 *   per output index i: center = scale * (i + 0.5), support = 2 * max(scale, 1)
 *   taps [xmin, xmin + xsize) with weights cubic((j - center + 0.5) / max(scale, 1)),
 *   normalised to sum 1 (in double), then scaled to int16 at the largest
 *   precision p whose doubled peak weight still fits 15 bits;
 *   out = clamp((2^(p-1) + sum pixel * w) >> p, 0, 255).
 *
 * Horizontal pass first, vertical second, uint8 in between. */
#include "cslim/image.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

typedef struct taps {
  int ksize, prec;
  int *xmin, *xsize; /* [out] */
  int16_t *w;        /* [out][ksize] */
} taps;

static double cubic(double x) {
  const double a = -0.5;
  x = fabs(x);
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
  if (x < 2.0) return ((a * x - 5.0 * a) * x + 8.0 * a) * x - 4.0 * a;
  return 0.0;
}

static void taps_free(taps *t) {
  free(t->xmin);
  free(t->xsize);
  free(t->w);
}

static cslim_status taps_make(int in, int out, taps *t) {
  memset(t, 0, sizeof *t);
  const double scale = (double)in / (double)out;
  const double support = scale >= 1.0 ? 2.0 * scale : 2.0;
  const double invscale = scale >= 1.0 ? 1.0 / scale : 1.0;
  t->ksize = (int)ceil(support) * 2 + 1;
  double *wd = calloc((size_t)out * (size_t)t->ksize, sizeof(double));
  t->xmin = malloc((size_t)out * sizeof(int));
  t->xsize = malloc((size_t)out * sizeof(int));
  t->w = calloc((size_t)out * (size_t)t->ksize, sizeof(int16_t));
  if (!wd || !t->xmin || !t->xsize || !t->w) {
    free(wd);
    taps_free(t);
    return cslim_error(CSLIM_ERR_NOMEM, "out of memory for resampling weights");
  }
  double wmax = 0.0;
  for (int i = 0; i < out; i++) {
    const double center = scale * (i + 0.5);
    int xmin = (int)(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int xmax = (int)(center + support + 0.5);
    if (xmax > in) xmax = in;
    int xsize = xmax - xmin;
    if (xsize > t->ksize) xsize = t->ksize;
    if (xsize < 0) xsize = 0;
    double *w = wd + (size_t)i * (size_t)t->ksize, total = 0.0;
    for (int j = 0; j < xsize; j++) {
      w[j] = cubic((j + xmin - center + 0.5) * invscale);
      total += w[j];
    }
    for (int j = 0; j < xsize; j++) {
      if (total != 0.0) w[j] /= total;
      if (w[j] > wmax) wmax = w[j];
    }
    t->xmin[i] = xmin;
    t->xsize[i] = xsize;
  }
  int p;
  for (p = 0; p < 22; p++)
    if ((int)(0.5 + wmax * (double)(1 << (p + 1))) >= (1 << 15)) break;
  t->prec = p;
  for (size_t k = 0; k < (size_t)out * (size_t)t->ksize; k++) {
    double v = wd[k] * (double)(1 << p);
    t->w[k] = (int16_t)(v < 0 ? -0.5 + v : 0.5 + v);
  }
  free(wd);
  return CSLIM_OK;
}

static inline uint8_t clip8(int32_t acc, int prec) {
  int32_t v = acc >> prec;
  return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

/* rows of in [H][Win][3] -> [H][Wout][3] */
static void pass_horizontal(const uint8_t *in, int H, int Win, int Wout, const taps *t, uint8_t *out) {
  const int32_t init = t->prec > 0 ? 1 << (t->prec - 1) : 0;
#pragma omp parallel for schedule(static) if ((size_t)H * Wout > 1 << 15)
  for (int y = 0; y < H; y++) {
    const uint8_t *src = in + (size_t)y * Win * 3;
    uint8_t *dst = out + (size_t)y * Wout * 3;
    for (int x = 0; x < Wout; x++) {
      const int16_t *w = t->w + (size_t)x * t->ksize;
      const uint8_t *s = src + (size_t)t->xmin[x] * 3;
      int32_t r = init, g = init, b = init;
      for (int j = 0; j < t->xsize[x]; j++) {
        r += s[3 * j] * w[j];
        g += s[3 * j + 1] * w[j];
        b += s[3 * j + 2] * w[j];
      }
      dst[3 * x] = clip8(r, t->prec);
      dst[3 * x + 1] = clip8(g, t->prec);
      dst[3 * x + 2] = clip8(b, t->prec);
    }
  }
}

/* [Hin][W][3] -> [Hout][W][3]; acc: one row of int32 per thread */
static void pass_vertical(const uint8_t *in, int W, int Hout, const taps *t, int32_t *acc_all, uint8_t *out) {
  const int32_t init = t->prec > 0 ? 1 << (t->prec - 1) : 0;
  const size_t n = (size_t)W * 3;
#pragma omp parallel
  {
    int32_t *acc = acc_all + (size_t)omp_get_thread_num() * n;
#pragma omp for schedule(static)
    for (int y = 0; y < Hout; y++) {
      for (size_t k = 0; k < n; k++) acc[k] = init;
      const int16_t *w = t->w + (size_t)y * t->ksize;
      for (int j = 0; j < t->xsize[y]; j++) {
        const uint8_t *s = in + (size_t)(t->xmin[y] + j) * n;
        const int32_t wj = w[j];
        for (size_t k = 0; k < n; k++) acc[k] += s[k] * wj;
      }
      uint8_t *d = out + (size_t)y * n;
      for (size_t k = 0; k < n; k++) d[k] = clip8(acc[k], t->prec);
    }
  }
}

cslim_status cslim_image_resize(const cslim_image *in, int width, int height, cslim_image *out) {
  memset(out, 0, sizeof *out);
  if (width <= 0 || height <= 0 || width > CSLIM_IMAGE_MAX_SIDE || height > CSLIM_IMAGE_MAX_SIDE)
    return cslim_error(CSLIM_ERR_INVALID, "cannot resize to %dx%d", width, height);
  const int Win = in->width, Hin = in->height;
  uint8_t *tmp = NULL, *res = NULL;
  const uint8_t *cur = in->rgb;
  int curW = Win;
  cslim_status rc = CSLIM_OK;
  taps t;
  if (width != Win) {
    if ((rc = taps_make(Win, width, &t))) return rc;
    tmp = malloc((size_t)Hin * width * 3);
    if (!tmp) rc = cslim_error(CSLIM_ERR_NOMEM, "out of memory resizing to %dx%d", width, height);
    else pass_horizontal(in->rgb, Hin, Win, width, &t, tmp);
    taps_free(&t);
    if (rc) return rc;
    cur = tmp;
    curW = width;
  }
  if (height != Hin) {
    if ((rc = taps_make(Hin, height, &t))) {
      free(tmp);
      return rc;
    }
    res = malloc((size_t)height * width * 3);
    int32_t *acc = malloc((size_t)omp_get_max_threads() * (size_t)width * 3 * sizeof(int32_t));
    if (!res || !acc) rc = cslim_error(CSLIM_ERR_NOMEM, "out of memory resizing to %dx%d", width, height);
    else pass_vertical(cur, curW, height, &t, acc, res);
    free(acc);
    taps_free(&t);
    free(tmp);
    if (rc) {
      free(res);
      return rc;
    }
  } else if (tmp) {
    res = tmp;
  } else {
    res = malloc((size_t)Hin * Win * 3);
    if (!res) return cslim_error(CSLIM_ERR_NOMEM, "out of memory copying an image");
    memcpy(res, in->rgb, (size_t)Hin * Win * 3);
  }
  out->width = width;
  out->height = height;
  out->rgb = res;
  return CSLIM_OK;
}
