/* Hot loops of the weight quantizers, vectorised (AVX2) beside the scalar
 * reference (tests/test_quant.c compares them). Internal. */
#ifndef CSLIM_QUANT_WEIGHT_KERNELS_H
#define CSLIM_QUANT_WEIGHT_KERNELS_H

#include <stddef.h>
#include <stdint.h>

/* max |w| over the row; returns -1 (and sets *bad) at the first non-finite value. */
float cslim_row_absmax(const float *w, int k, int *bad);
/* q[j] = clamp(round_half_even(w[j] / s), qmin, qmax); returns sum (w - q*s)^2
 * and adds sum w^2 to *wsq. */
double cslim_row_quantize(const float *w, int k, float s, int qmin, int qmax, int8_t *q, double *wsq);

/* sum (w - s*clamp(round_half_even(w / s), lo[j], hi[j]))^2: the error of per-element code ranges (W8A8S). */
double cslim_row_clamped_err(const float *w, const float *lo, const float *hi, int k, float s);

/* scalar references */
double cslim_row_clamped_err_ref(const float *w, const float *lo, const float *hi, int k, float s);
float cslim_row_absmax_ref(const float *w, int k, int *bad);
double cslim_row_quantize_ref(const float *w, int k, float s, int qmin, int qmax, int8_t *q, double *wsq);

#endif
