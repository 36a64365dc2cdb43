/* Reproducible float32 arithmetic: the pieces of the decoder whose result
 * would otherwise depend on the machine (a libm's expf, a BLAS kernel's
 * summation order, a reduction tree), defined once here so that the CPU
 * forward and the GPU engine (backend/cuda_layer.cu) compute them bit for
 * bit the same. Layer-wise calibration feeds each layer the previous
 * quantized layer's output, and a last-bit difference that flips one int8
 * rounding moves every later layer's ranges: two OpenBLAS kernels (Haswell,
 * Sandybridge) gave tiny-qwen3 W8A8 scales 0.7 % apart by its fourth layer.
 * With these the checkpoint is the same on any machine, thread count or GPU.
 *
 * The contract, which both sides implement (C built with -ffp-contract=off,
 * CUDA with --fmad=false, so a * b + c is two roundings unless fma is asked):
 *   cslim_expf          below, integer and float32 operations only;
 *   ordered product     each element of a float GEMM is one chain acc = +0,
 *                       acc = fma(a[t], b[t], acc) for t = 0, 1, ..., then
 *                       times alpha when alpha != 1 (cslim_gemm_ordered,
 *                       the GPU's k_gemm_ordered);
 *   ordered sum         softmax denominators add in index order;
 *   sum of squares      double lanes: lane l = t % 32 adds x[t]^2 in t order,
 *                       then the 32 lanes are added in lane order (RMSNorm). */
#ifndef CSLIM_MODEL_REPRO_H
#define CSLIM_MODEL_REPRO_H

#include <stdint.h>
#include <string.h>

#ifdef __CUDACC__
#define CSLIM_HOST_DEVICE __host__ __device__
#else
#define CSLIM_HOST_DEVICE
#endif

#define CSLIM_SQ_LANES 32

CSLIM_HOST_DEVICE static inline float cslim_bits_f32(uint32_t u) {
  float f;
  memcpy(&f, &u, 4);
  return f;
}

CSLIM_HOST_DEVICE static inline uint32_t cslim_f32_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
}

/* The sum of squares of the contract: Σ (x[t] - ref[t])² in double (ref NULL: Σ x[t]²), lane
 * l = t % 32 adding in t order, then the lanes in lane order. The GPU runs a warp's lanes the same
 * way (RMSNorm in cuda_layer.cu, m6's row errors in cuda_flex.cu). */
static inline double cslim_sum_squares(const float *x, const float *ref, int n) {
  double lane[CSLIM_SQ_LANES] = {0}, s = 0.0;
  int t = 0;
  if (!ref) {
    for (; t + CSLIM_SQ_LANES <= n; t += CSLIM_SQ_LANES)
      for (int l = 0; l < CSLIM_SQ_LANES; l++) lane[l] = lane[l] + (double)x[t + l] * (double)x[t + l];
  } else {
    for (; t + CSLIM_SQ_LANES <= n; t += CSLIM_SQ_LANES)
      for (int l = 0; l < CSLIM_SQ_LANES; l++) {
        const double d = (double)x[t + l] - (double)ref[t + l];
        lane[l] = lane[l] + d * d;
      }
  }
  for (int l = 0; t + l < n; l++) {
    const double d = (double)x[t + l] - (ref ? (double)ref[t + l] : 0.0);
    lane[l] = lane[l] + d * d;
  }
  for (int l = 0; l < CSLIM_SQ_LANES; l++) s = s + lane[l];
  return s;
}

/* e^x within 1 ulp, correctly rounded for 99.2 % of inputs (tests/test_forward.c checks a sample), +inf above
 * 88.73, +0 below -103.98, NaN for NaN. Cody-Waite reduction x = n ln2 + r, |r| <= ln2 / 2,
 * Cephes' degree-7 polynomial for e^r, then 2^n in two exact halves so that results in the subnormal
 * range round once. */
CSLIM_HOST_DEVICE static inline float cslim_expf(float x) {
  float c = x < -104.0f ? -104.0f : x;
  c = c > 89.0f ? 89.0f : c;
  const float magic = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer, kept in the low bits */
  const float t = c * 1.44269504088896341f + magic;
  const int32_t n = (int32_t)(cslim_f32_bits(t) - cslim_f32_bits(magic));
  const float fn = t - magic;
  float r = c - fn * 0.693359375f;
  r = r - fn * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  float y = p * (r * r) + r + 1.0f;
  const int32_t n1 = n / 2, n2 = n - n1; /* each within [-75, 65]: a normal power of two */
  y = y * cslim_bits_f32((uint32_t)(n1 + 127) << 23);
  y = y * cslim_bits_f32((uint32_t)(n2 + 127) << 23);
  return x == x ? y : x;
}

#endif
