/* Elementwise building blocks of the decoder, threaded over rows. */
#include "model/model_internal.h"
#include "model/repro.h"

#include <math.h>
#include <stdlib.h>

/* RMSNorm as transformers computes it: x * rsqrt(mean(x^2) + eps), then the
 * weight (no 1+w offset). The mean is accumulated in double. */
void cslim_rmsnorm_rows(const float *x, int rows, int n, const float *w, float eps, float *y) {
#pragma omp parallel for schedule(static) if (rows > 16)
  for (int r = 0; r < rows; r++) {
    const float *xr = x + (size_t)r * (size_t)n;
    float *yr = y + (size_t)r * (size_t)n;
    const double ss = cslim_sum_squares(xr, NULL, n);
    float var = (float)(ss / n);
    float inv = 1.0f / sqrtf(var + eps);
    for (int i = 0; i < n; i++) yr[i] = w[i] * (xr[i] * inv);
  }
}

void cslim_silu_mul(float *g, const float *u, size_t n) {
#pragma omp parallel for schedule(static) if (n > 65536)
  for (size_t i = 0; i < n; i++) {
    float z = g[i];
    g[i] = (z / (1.0f + cslim_expf(-z))) * u[i];
  }
}

void cslim_add_inplace(float *a, const float *b, size_t n) {
#pragma omp parallel for schedule(static) if (n > 65536)
  for (size_t i = 0; i < n; i++) a[i] += b[i];
}

cslim_status cslim_load_vector(cslim_model *m, const char *name, int n, float **out) {
  const cslim_tensor *t = cslim_st_find(m->st, name);
  if (!t || t->numel != n)
    return cslim_error(CSLIM_ERR_FORMAT, "%s: tensor '%s' missing or not of length %d", m->path, name, n);
  float *v = malloc((size_t)n * sizeof(float));
  if (!v) return cslim_error(CSLIM_ERR_NOMEM, "out of memory");
  cslim_st_read_f32(m->st, t, v);
  *out = v;
  return CSLIM_OK;
}

/* LayerNorm (vision tower): (x - mean) / sqrt(var + eps) * w + b, biased
 * variance; moments accumulated in double. */
void cslim_layernorm_rows(const float *x, int rows, int n, const float *w, const float *b, float eps, float *y) {
#pragma omp parallel for schedule(static) if (rows > 16)
  for (int r = 0; r < rows; r++) {
    const float *xr = x + (size_t)r * (size_t)n;
    float *yr = y + (size_t)r * (size_t)n;
    double s = 0, ss = 0;
    for (int i = 0; i < n; i++) s += xr[i];
    const double mean = s / n;
    for (int i = 0; i < n; i++) {
      double d = xr[i] - mean;
      ss += d * d;
    }
    const float mu = (float)mean, rstd = (float)(1.0 / sqrt(ss / n + (double)eps));
    for (int i = 0; i < n; i++) yr[i] = (xr[i] - mu) * rstd * w[i] + b[i];
  }
}

/* gelu_pytorch_tanh: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) */
void cslim_gelu_tanh(float *x, size_t n) {
  const float beta = (float)(M_SQRT2 * M_2_SQRTPI * 0.5), kappa = 0.044715f;
#pragma omp parallel for schedule(static) if (n > 65536)
  for (size_t i = 0; i < n; i++) {
    float v = x[i];
    float inner = beta * (v + kappa * (v * v * v));
    x[i] = 0.5f * v * (1.0f + tanhf(inner));
  }
}

/* exact GELU: 0.5 x (1 + erf(x / sqrt(2))) */
void cslim_gelu_erf(float *x, size_t n) {
  const float r = (float)M_SQRT1_2;
#pragma omp parallel for schedule(static) if (n > 65536)
  for (size_t i = 0; i < n; i++) x[i] = x[i] * 0.5f * (1.0f + erff(x[i] * r));
}

void cslim_add_bias_rows(float *x, int rows, int n, const float *b) {
#pragma omp parallel for schedule(static) if (rows > 16)
  for (int r = 0; r < rows; r++)
    for (int i = 0; i < n; i++) x[(size_t)r * (size_t)n + (size_t)i] += b[i];
}
