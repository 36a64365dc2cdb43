/* Integer quantization parameters (spec §3.1–§3.2): round half to even,
 * ranges always include zero, scales floored at FLT_EPSILON. */
#include "cslim/quant.h"

#include <float.h>
#include <math.h>

void cslim_qparams_asym(float mn, float mx, int bits, float *scale, float *offset) {
  mn = mn < 0.0f ? mn : 0.0f;
  mx = mx > 0.0f ? mx : 0.0f;
  float levels = (float)((1 << bits) - 1);
  float s = mx / levels - mn / levels; /* written split, as msModelSlim, to avoid overflow */
  if (!(s >= FLT_EPSILON)) s = s != s ? s : FLT_EPSILON; /* keep NaN visible */
  *scale = s;
  *offset = nearbyintf(-mn / s) - (float)(1 << (bits - 1));
}

float cslim_qparams_sym(float mn, float mx, int bits) {
  float a = -mn > mx ? -mn : mx;
  float s = a / (float)((1 << (bits - 1)) - 1);
  if (!(s >= FLT_EPSILON)) s = s != s ? s : FLT_EPSILON;
  return s;
}
