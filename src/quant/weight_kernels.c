#include "quant/weight_kernels.h"

#include <math.h>

#if defined(__AVX2__)
#include <immintrin.h>
#endif

float cslim_row_absmax_ref(const float *w, int k, int *bad) {
  float a = 0;
  for (int j = 0; j < k; j++) {
    if (!isfinite(w[j])) {
      *bad = 1;
      return -1;
    }
    float v = fabsf(w[j]);
    a = v > a ? v : a;
  }
  return a;
}

double cslim_row_quantize_ref(const float *w, int k, float s, int qmin, int qmax, int8_t *q, double *wsq) {
  double e = 0, ww = 0;
  for (int j = 0; j < k; j++) {
    float v = nearbyintf(w[j] / s);
    v = v < (float)qmin ? (float)qmin : v > (float)qmax ? (float)qmax : v;
    q[j] = (int8_t)v;
    float d = w[j] - v * s;
    e += (double)d * d;
    ww += (double)w[j] * w[j];
  }
  *wsq += ww;
  return e;
}

double cslim_row_clamped_err_ref(const float *w, const float *lo, const float *hi, int k, float s) {
  double e = 0;
  for (int j = 0; j < k; j++) {
    float v = nearbyintf(w[j] / s);
    v = v < lo[j] ? lo[j] : v > hi[j] ? hi[j] : v;
    float d = w[j] - v * s;
    e += (double)d * d;
  }
  return e;
}

#if defined(__AVX2__)
double cslim_row_clamped_err(const float *w, const float *lo, const float *hi, int k, float s) {
  const __m256 vs = _mm256_set1_ps(s);
  __m256d e0 = _mm256_setzero_pd(), e1 = _mm256_setzero_pd();
  int j = 0;
  for (; j + 8 <= k; j += 8) {
    __m256 x = _mm256_loadu_ps(w + j);
    __m256 v = _mm256_round_ps(_mm256_div_ps(x, vs), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    v = _mm256_min_ps(_mm256_max_ps(v, _mm256_loadu_ps(lo + j)), _mm256_loadu_ps(hi + j));
    __m256 d = _mm256_sub_ps(x, _mm256_mul_ps(v, vs));
    __m256d dl = _mm256_cvtps_pd(_mm256_castps256_ps128(d)), dh = _mm256_cvtps_pd(_mm256_extractf128_ps(d, 1));
    e0 = _mm256_add_pd(e0, _mm256_mul_pd(dl, dl));
    e1 = _mm256_add_pd(e1, _mm256_mul_pd(dh, dh));
  }
  double t[4];
  _mm256_storeu_pd(t, _mm256_add_pd(e0, e1));
  return t[0] + t[1] + t[2] + t[3] + cslim_row_clamped_err_ref(w + j, lo + j, hi + j, k - j, s);
}

float cslim_row_absmax(const float *w, int k, int *bad) {
  const __m256 sign = _mm256_set1_ps(-0.0f), inf = _mm256_set1_ps(INFINITY);
  __m256 acc = _mm256_setzero_ps(), nonfin = _mm256_setzero_ps();
  int j = 0;
  for (; j + 8 <= k; j += 8) {
    __m256 v = _mm256_andnot_ps(sign, _mm256_loadu_ps(w + j));
    nonfin = _mm256_or_ps(nonfin, _mm256_cmp_ps(v, inf, _CMP_NLT_UQ)); /* inf or NaN */
    acc = _mm256_max_ps(acc, v);
  }
  if (_mm256_movemask_ps(nonfin)) {
    *bad = 1;
    return -1;
  }
  float lanes[8];
  _mm256_storeu_ps(lanes, acc);
  float a = 0;
  for (int i = 0; i < 8; i++) a = lanes[i] > a ? lanes[i] : a;
  float tail = cslim_row_absmax_ref(w + j, k - j, bad);
  return tail > a ? tail : a;
}

double cslim_row_quantize(const float *w, int k, float s, int qmin, int qmax, int8_t *q, double *wsq) {
  const __m256 vs = _mm256_set1_ps(s), lo = _mm256_set1_ps((float)qmin), hi = _mm256_set1_ps((float)qmax);
  __m256d e0 = _mm256_setzero_pd(), e1 = _mm256_setzero_pd(), w0 = _mm256_setzero_pd(), w1 = _mm256_setzero_pd();
  int j = 0;
  for (; j + 8 <= k; j += 8) {
    __m256 x = _mm256_loadu_ps(w + j);
    __m256 v = _mm256_round_ps(_mm256_div_ps(x, vs), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    v = _mm256_min_ps(_mm256_max_ps(v, lo), hi);
    __m256i iv = _mm256_cvtps_epi32(v);
    __m128i p16 = _mm_packs_epi32(_mm256_castsi256_si128(iv), _mm256_extracti128_si256(iv, 1));
    __m128i p8 = _mm_packs_epi16(p16, p16);
    _mm_storel_epi64((__m128i *)(q + j), p8);
    __m256 d = _mm256_sub_ps(x, _mm256_mul_ps(v, vs));
    __m256d dl = _mm256_cvtps_pd(_mm256_castps256_ps128(d)), dh = _mm256_cvtps_pd(_mm256_extractf128_ps(d, 1));
    e0 = _mm256_add_pd(e0, _mm256_mul_pd(dl, dl));
    e1 = _mm256_add_pd(e1, _mm256_mul_pd(dh, dh));
    __m256d xl = _mm256_cvtps_pd(_mm256_castps256_ps128(x)), xh = _mm256_cvtps_pd(_mm256_extractf128_ps(x, 1));
    w0 = _mm256_add_pd(w0, _mm256_mul_pd(xl, xl));
    w1 = _mm256_add_pd(w1, _mm256_mul_pd(xh, xh));
  }
  double lanes[4];
  _mm256_storeu_pd(lanes, _mm256_add_pd(e0, e1));
  double e = lanes[0] + lanes[1] + lanes[2] + lanes[3];
  _mm256_storeu_pd(lanes, _mm256_add_pd(w0, w1));
  *wsq += lanes[0] + lanes[1] + lanes[2] + lanes[3];
  return e + cslim_row_quantize_ref(w + j, k - j, s, qmin, qmax, q + j, wsq);
}
#else
double cslim_row_clamped_err(const float *w, const float *lo, const float *hi, int k, float s) {
  return cslim_row_clamped_err_ref(w, lo, hi, k, s);
}
float cslim_row_absmax(const float *w, int k, int *bad) { return cslim_row_absmax_ref(w, k, bad); }
double cslim_row_quantize(const float *w, int k, float s, int qmin, int qmax, int8_t *q, double *wsq) {
  return cslim_row_quantize_ref(w, k, s, qmin, qmax, q, wsq);
}
#endif
