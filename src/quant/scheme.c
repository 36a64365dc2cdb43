/* The scheme table (spec §5.3, §5.4; engines.md §2). */
#include "cslim/scheme.h"

#include <string.h>
#include <strings.h>

#define T(s, rule, dt, shape) {s, rule, dt, shape, 0}
#define TG(s, rule, dt, shape) {s, rule, dt, shape, 1}

static const cslim_scheme_tensor k_float[] = {
    T("weight", CSLIM_DT_MODEL, CSLIM_BF16, CSLIM_SHAPE_NK),
};
static const cslim_scheme_tensor k_w8a8[] = {
    T("weight", CSLIM_DT_FIXED, CSLIM_I8, CSLIM_SHAPE_NK),
    T("input_scale", CSLIM_DT_FIXED, CSLIM_F32, CSLIM_SHAPE_ONE),
    T("input_offset", CSLIM_DT_FIXED, CSLIM_F32, CSLIM_SHAPE_ONE),
    T("deq_scale", CSLIM_DT_DEQ_SCALE, CSLIM_F32, CSLIM_SHAPE_N),
    T("quant_bias", CSLIM_DT_FIXED, CSLIM_I32, CSLIM_SHAPE_N),
};
static const cslim_scheme_tensor k_w8a8_mix[] = {
    T("weight", CSLIM_DT_FIXED, CSLIM_I8, CSLIM_SHAPE_NK),
    T("input_scale", CSLIM_DT_FIXED, CSLIM_F32, CSLIM_SHAPE_ONE),
    T("input_offset", CSLIM_DT_FIXED, CSLIM_F32, CSLIM_SHAPE_ONE),
    T("deq_scale", CSLIM_DT_DEQ_SCALE, CSLIM_F32, CSLIM_SHAPE_N),
    T("quant_bias", CSLIM_DT_FIXED, CSLIM_I32, CSLIM_SHAPE_N),
    T("weight_scale", CSLIM_DT_FIXED, CSLIM_F32, CSLIM_SHAPE_N1),
    T("weight_offset", CSLIM_DT_FIXED, CSLIM_F32, CSLIM_SHAPE_N1),
};
static const cslim_scheme_tensor k_w8a8_dynamic[] = {
    T("weight", CSLIM_DT_FIXED, CSLIM_I8, CSLIM_SHAPE_NK),
    T("weight_scale", CSLIM_DT_FIXED, CSLIM_F32, CSLIM_SHAPE_N1),
    T("weight_offset", CSLIM_DT_FIXED, CSLIM_F32, CSLIM_SHAPE_N1),
};
static const cslim_scheme_tensor k_w8a16[] = {
    T("weight", CSLIM_DT_FIXED, CSLIM_I8, CSLIM_SHAPE_NK),
    T("weight_scale", CSLIM_DT_FIXED, CSLIM_F32, CSLIM_SHAPE_N1),
    T("weight_offset", CSLIM_DT_FIXED, CSLIM_F32, CSLIM_SHAPE_N1),
};
static const cslim_scheme_tensor k_w4a8_dynamic[] = {
    T("weight", CSLIM_DT_FIXED, CSLIM_I8, CSLIM_SHAPE_N2K),
    T("weight_scale", CSLIM_DT_FIXED, CSLIM_F32, CSLIM_SHAPE_N1),
    T("weight_offset", CSLIM_DT_FIXED, CSLIM_F32, CSLIM_SHAPE_N1),
    TG("weight_scale_second", CSLIM_DT_FIXED, CSLIM_F32, CSLIM_SHAPE_NG),
    TG("weight_offset_second", CSLIM_DT_FIXED, CSLIM_F32, CSLIM_SHAPE_NG),
    T("scale_bias", CSLIM_DT_FIXED, CSLIM_F32, CSLIM_SHAPE_SCALE_BIAS),
};

#define N(a) (int)(sizeof(a) / sizeof(a[0]))

/* priority: FLOAT < W16A16S < W8A16 < W8A8_DYNAMIC < W8A8_MIX < W8A8 (spec §5.2);
 * W4A8_DYNAMIC and the sparse labels are not in msModelSlim's list. */
static const cslim_scheme k_schemes[CSLIM_QT_COUNT] = {
    [CSLIM_QT_FLOAT] = {CSLIM_QT_FLOAT, "FLOAT", "float", 16, CSLIM_ACT_NONE, 0, N(k_float), k_float},
    [CSLIM_QT_W8A16] = {CSLIM_QT_W8A16, "W8A16", "w8a16", 8, CSLIM_ACT_NONE, 2, N(k_w8a16), k_w8a16},
    [CSLIM_QT_W8A8_DYNAMIC] = {CSLIM_QT_W8A8_DYNAMIC, "W8A8_DYNAMIC", "w8a8_dynamic", 8, CSLIM_ACT_DYNAMIC, 3,
                               N(k_w8a8_dynamic), k_w8a8_dynamic},
    [CSLIM_QT_W8A8_MIX] = {CSLIM_QT_W8A8_MIX, "W8A8_MIX", "w8a8_mix", 8, CSLIM_ACT_PDMIX, 4, N(k_w8a8_mix),
                           k_w8a8_mix},
    [CSLIM_QT_W8A8] = {CSLIM_QT_W8A8, "W8A8", "w8a8", 8, CSLIM_ACT_STATIC, 5, N(k_w8a8), k_w8a8},
    [CSLIM_QT_W4A8_DYNAMIC] = {CSLIM_QT_W4A8_DYNAMIC, "W4A8_DYNAMIC", "w4a8_dynamic", 4, CSLIM_ACT_DYNAMIC, -1,
                               N(k_w4a8_dynamic), k_w4a8_dynamic},
    [CSLIM_QT_W8A8S] = {CSLIM_QT_W8A8S, "W8A8S", "w8a8s", 8, CSLIM_ACT_STATIC, -1, N(k_w8a8), k_w8a8},
    [CSLIM_QT_W8A8SC] = {CSLIM_QT_W8A8SC, "W8A8SC", "w8a8sc", 8, CSLIM_ACT_STATIC, -1, N(k_w8a8), k_w8a8},
};

const cslim_scheme *cslim_scheme_get(cslim_qtype t) {
  return (unsigned)t < CSLIM_QT_COUNT ? &k_schemes[t] : NULL;
}

int cslim_scheme_parse(const char *name, cslim_qtype *out) {
  for (int i = 0; i < CSLIM_QT_COUNT; i++)
    if (!strcasecmp(name, k_schemes[i].name)) {
      *out = (cslim_qtype)i;
      return 0;
    }
  if (!strcasecmp(name, "w4a8")) {
    *out = CSLIM_QT_W4A8_DYNAMIC;
    return 0;
  }
  if (!strcasecmp(name, "w8a8_pdmix")) {
    *out = CSLIM_QT_W8A8_MIX;
    return 0;
  }
  return -1;
}

const char *cslim_scheme_names(void) {
  return "float, w8a16, w8a8, w8a8_dynamic, w8a8_mix, w4a8 (= w4a8_dynamic), w8a8s";
}

cslim_dtype cslim_scheme_tensor_dtype(const cslim_scheme_tensor *t, cslim_dtype model_dtype) {
  switch (t->dtype_rule) {
  case CSLIM_DT_DEQ_SCALE: return model_dtype == CSLIM_BF16 ? CSLIM_F32 : CSLIM_I64;
  case CSLIM_DT_MODEL: return model_dtype;
  default: return t->dtype;
  }
}

int cslim_scheme_tensor_shape(const cslim_scheme_tensor *t, int64_t n, int64_t k, int group_size, int row_chunks,
                              int64_t *shape) {
  switch (t->shape) {
  case CSLIM_SHAPE_NK: shape[0] = n; shape[1] = k; return 2;
  case CSLIM_SHAPE_N2K: shape[0] = n / 2; shape[1] = k; return 2;
  case CSLIM_SHAPE_N: shape[0] = n; return 1;
  case CSLIM_SHAPE_N1: shape[0] = n; shape[1] = 1; return 2;
  case CSLIM_SHAPE_ONE: shape[0] = 1; return 1;
  case CSLIM_SHAPE_NG: shape[0] = n; shape[1] = group_size > 0 ? k / group_size : 1; return 2;
  case CSLIM_SHAPE_SCALE_BIAS: shape[0] = n; shape[1] = row_chunks; return 2;
  }
  return 0;
}

int cslim_linear_is_row_parallel(const char *name) {
  const char *last = strrchr(name, '.');
  last = last ? last + 1 : name;
  return !strcmp(last, "down_proj") || !strcmp(last, "o_proj") || !strcmp(last, "w2") ||
         !strcmp(last, "proj") || !strcmp(last, "linear_fc2");
}

cslim_qtype cslim_model_quant_type(const int *count) {
  int best = -1;
  cslim_qtype t = CSLIM_QT_FLOAT;
  for (int i = 1; i < CSLIM_QT_COUNT; i++)
    if (count[i] && k_schemes[i].priority > best && k_schemes[i].priority >= 0) {
      best = k_schemes[i].priority;
      t = (cslim_qtype)i;
    }
  if (best >= 0) return t;
  if (count[CSLIM_QT_W8A8SC]) return CSLIM_QT_W8A8SC;
  if (count[CSLIM_QT_W8A8S]) return CSLIM_QT_W8A8S;
  if (count[CSLIM_QT_W4A8_DYNAMIC]) return CSLIM_QT_W4A8_DYNAMIC;
  return CSLIM_QT_FLOAT;
}

void cslim_int4_unpack_row(const int8_t *packed, int64_t k, int64_t row, int8_t *out) {
  const int8_t *src = packed + (size_t)(row / 2) * (size_t)k;
  if (row % 2)
    for (int64_t c = 0; c < k; c++) out[c] = (int8_t)(src[c] >> 4);
  else
    for (int64_t c = 0; c < k; c++) out[c] = (int8_t)((int8_t)(src[c] << 4) >> 4);
}

int64_t cslim_deq_scale_to_int64(float f) {
  int32_t b;
  memcpy(&b, &f, 4);
  return (int64_t)b; /* sign-extended; positive scales: the uint32 bit pattern */
}

float cslim_deq_scale_from_int64(int64_t v) {
  int32_t b = (int32_t)(uint32_t)v;
  float f;
  memcpy(&f, &b, 4);
  return f;
}
