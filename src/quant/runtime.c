/* The serving engines' quantized Linear kernels, simulated integer-exactly
 * (engines.md §2.2–§2.6). Used to evaluate a written checkpoint and, during
 * calibration, to propagate each layer's quantized output to the next. */
#include "cslim/quant.h"
#include "model/model_internal.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

void cslim_qlinear_free(cslim_qlinear *q) {
  if (!q) return;
  free(q->wq);
  free(q->wscale);
  free(q->deq);
  free(q->qbias);
  free(q->bias);
  free(q->wf);
  free(q);
}

/* The float copy of the codes (or of the dequantized weight for W8A16). */
static float *weights_f32(const cslim_qlinear *q) {
  size_t nk = (size_t)q->n * (size_t)q->k;
  float *w = malloc(nk * sizeof(float));
  if (!w) return NULL;
  if (q->type == CSLIM_QT_W8A16) {
#pragma omp parallel for schedule(static)
    for (int r = 0; r < q->n; r++)
      for (int j = 0; j < q->k; j++)
        w[(size_t)r * q->k + j] = cslim_round_to_dtype((float)q->wq[(size_t)r * q->k + j] * q->wscale[r], q->serve);
  } else {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < nk; i++) w[i] = (float)q->wq[i];
  }
  return w;
}

/* acc[rows, n] = xq[rows, k] · wqᵀ exactly: sgemm over k-blocks whose partial
 * sums are integers below 2^24 in magnitude (|x| <= 128, |w| <= 128: 1024
 * columns; int4 weights: 16384), accumulated in int32. */
static cslim_status int_gemm(const float *xq, const float *wq, int rows, int n, int k, int wbits, int32_t *acc) {
  const int KB = wbits == 4 ? 16384 : 1024;
  float *tmp = malloc((size_t)rows * (size_t)n * sizeof(float));
  if (!tmp) return cslim_error(CSLIM_ERR_NOMEM, "out of memory");
  memset(acc, 0, (size_t)rows * (size_t)n * sizeof(int32_t));
  for (int k0 = 0; k0 < k; k0 += KB) {
    int kb = k - k0 < KB ? k - k0 : KB;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, n, kb, 1.0f, xq + k0, k, wq + k0, k, 0.0f, tmp, n);
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < (size_t)rows * (size_t)n; i++) acc[i] += (int32_t)tmp[i];
  }
  free(tmp);
  return CSLIM_OK;
}

cslim_status cslim_qlinear_forward(const cslim_linear *l, const float *x, int rows, float *y) {
  cslim_qlinear *q = l->impl;
  const int n = q->n, k = q->k;
  cslim_status rc = CSLIM_OK;
  float *wf = q->wf;
  if (!wf) {
    wf = weights_f32(q);
    if (!wf) return cslim_error(CSLIM_ERR_NOMEM, "out of memory for %s", l->name);
    if (!q->transient) q->wf = wf;
  }
  if (q->type == CSLIM_QT_W8A16) { /* a float product: ordered, as every float Linear of the decoder */
    if ((rc = cslim_gemm_ordered(1, rows, n, k, 1.0f, x, k, wf, k, y, n, omp_get_max_threads()))) goto out;
#pragma omp parallel for schedule(static)
    for (int r = 0; r < rows; r++)
      for (int o = 0; o < n; o++) {
        float v = y[(size_t)r * n + o];
        if (q->bias) v += q->bias[o];
        y[(size_t)r * n + o] = cslim_round_to_dtype(v, q->serve);
      }
    goto out;
  }
  float *xq = malloc((size_t)rows * (size_t)k * sizeof(float));
  float *st = malloc((size_t)rows * sizeof(float));
  int32_t *acc = malloc((size_t)rows * (size_t)n * sizeof(int32_t));
  if (!xq || !st || !acc) {
    rc = cslim_error(CSLIM_ERR_NOMEM, "out of memory for %s over %d rows", l->name, rows);
    goto done;
  }
  const int is_static = q->type == CSLIM_QT_W8A8 || q->type == CSLIM_QT_W8A8S || q->type == CSLIM_QT_W8A8SC;
#pragma omp parallel for schedule(static)
  for (int r = 0; r < rows; r++) {
    const float *xr = x + (size_t)r * k;
    float *qr = xq + (size_t)r * k;
    if (is_static) { /* npu_quantize: round(x * r + o), r = cslim_round_to_dtype(1/cslim_round_to_dtype(s)) */
      for (int j = 0; j < k; j++) {
        float v = nearbyintf(xr[j] * q->in_recip + q->in_offset);
        qr[j] = v < -128.f ? -128.f : v > 127.f ? 127.f : v;
      }
    } else { /* npu_dynamic_quant: s_t = max|x_t| / 127, q = round(x / s_t) */
      float a = 0;
      for (int j = 0; j < k; j++) a = fabsf(xr[j]) > a ? fabsf(xr[j]) : a;
      float s = a / 127.0f;
      st[r] = s;
      for (int j = 0; j < k; j++) {
        float v = s > 0 ? nearbyintf(xr[j] / s) : 0.0f;
        qr[j] = v < -128.f ? -128.f : v > 127.f ? 127.f : v;
      }
    }
  }
  if ((rc = int_gemm(xq, wf, rows, n, k, q->type == CSLIM_QT_W4A8_DYNAMIC ? 4 : 8, acc))) goto done;
#pragma omp parallel for schedule(static)
  for (int r = 0; r < rows; r++)
    for (int o = 0; o < n; o++) {
      size_t i = (size_t)r * n + o;
      float v;
      if (is_static) {
        v = (float)(acc[i] + q->qbias[o]) * q->deq[o];
        if (q->bias_after && q->bias) v += q->bias[o];
      } else {
        v = (float)acc[i] * q->wscale[o] * st[r];
        if (q->bias) v += q->bias[o];
      }
      y[i] = cslim_round_to_dtype(v, q->serve);
    }
done:
  free(xq);
  free(st);
  free(acc);
out:
  if (q->transient) free(wf);
  return rc;
}
