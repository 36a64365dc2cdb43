/* Rotary position embedding (rotate-half convention), 1-D and Qwen3-VL's
 * interleaved multimodal variant. */
#include "model/model_internal.h"

#include <math.h>
#include <string.h>

/* Which position axis (0 = T, 1 = H, 2 = W) drives frequency i. Interleaved
 * MRoPE: H at i % 3 == 1 for i < 3*s1, W at i % 3 == 2 for i < 3*s2, T
 * elsewhere; the older chunked layout uses consecutive sections. */
static int axis_of(const cslim_text_config *t, int i) {
  const int *s = t->mrope_section;
  if (s[0] + s[1] + s[2] == 0) return 0;
  if (t->mrope_interleaved) {
    if (i % 3 == 1 && i < 3 * s[1]) return 1;
    if (i % 3 == 2 && i < 3 * s[2]) return 2;
    return 0;
  }
  return i < s[0] ? 0 : i < s[0] + s[1] ? 1 : 2;
}

void cslim_rope_inv_freq(double theta, int dim, cslim_dtype dt, float *inv) {
  for (int i = 0; i < dim / 2; i++) {
    float e = (float)(2 * i) / (float)dim;
    float f = 1.0f / powf((float)theta, e);
    if (dt == CSLIM_BF16) f = cslim_bf16_to_f32(cslim_f32_to_bf16(f));
    if (dt == CSLIM_F16) f = cslim_f16_to_f32(cslim_f32_to_f16(f));
    inv[i] = f;
  }
}

cslim_status cslim_rope_tables(const cslim_model *m, const int32_t *pos, int total, int rows0, int rows,
                               float *cos_t, float *sin_t) {
  const cslim_text_config *t = &m->cfg.text;
  int half = t->head_dim / 2;
  int axis[4096];
  if (half > 4096) return cslim_error(CSLIM_ERR_UNSUPPORTED, "head_dim too large");
  for (int i = 0; i < half; i++) axis[i] = axis_of(t, i);
#pragma omp parallel for schedule(static) if (rows > 64)
  for (int r = 0; r < rows; r++) {
    int row = rows0 + r;
    for (int i = 0; i < half; i++) {
      /* freq = float32(position) * inv_freq, one rounding (a K=1 matmul in transformers) */
      float f = (float)pos[(size_t)axis[i] * (size_t)total + (size_t)row] * m->inv_freq[i];
      cos_t[(size_t)r * (size_t)half + (size_t)i] = cosf(f);
      sin_t[(size_t)r * (size_t)half + (size_t)i] = sinf(f);
    }
  }
  return CSLIM_OK;
}

/* x' = x * cos + rotate_half(x) * sin, pairs (i, i + D/2). */
void cslim_rope_apply(float *x, int rows, int n_heads, int head_dim, const float *cos_t, const float *sin_t) {
  int half = head_dim / 2;
#pragma omp parallel for schedule(static) if (rows > 16)
  for (int r = 0; r < rows; r++) {
    const float *c = cos_t + (size_t)r * (size_t)half, *s = sin_t + (size_t)r * (size_t)half;
    for (int h = 0; h < n_heads; h++) {
      float *v = x + ((size_t)r * (size_t)n_heads + (size_t)h) * (size_t)head_dim;
      for (int i = 0; i < half; i++) {
        float a = v[i], b = v[i + half];
        v[i] = a * c[i] + (-b) * s[i];
        v[i + half] = b * c[i] + a * s[i];
      }
    }
  }
}
