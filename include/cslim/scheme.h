/* Quantization schemes: one row per scheme (label, bits, activation kind,
 * the tensors it writes with their dtypes and shapes). The exporter, the
 * integer-exact evaluator and the checker all read this table, so adding a
 * scheme is one row plus its kernel. Spec §5.3, engines.md §2. */
#ifndef CSLIM_SCHEME_H
#define CSLIM_SCHEME_H

#include "cslim/common.h"
#include "cslim/dtype.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum cslim_qtype {
  CSLIM_QT_FLOAT = 0,
  CSLIM_QT_W8A16,
  CSLIM_QT_W8A8_DYNAMIC,
  CSLIM_QT_W8A8_MIX,
  CSLIM_QT_W8A8,
  CSLIM_QT_W4A8_DYNAMIC,
  CSLIM_QT_W8A8S,
  CSLIM_QT_W8A8SC,
  CSLIM_QT_COUNT
} cslim_qtype;

typedef enum cslim_act_kind {
  CSLIM_ACT_NONE = 0, /* weight-only or float */
  CSLIM_ACT_STATIC,   /* per-tensor asymmetric int8 from calibration */
  CSLIM_ACT_DYNAMIC,  /* per-token symmetric int8 at run time */
  CSLIM_ACT_PDMIX     /* both: static parameters stored, dynamic at prefill */
} cslim_act_kind;

/* How a tensor's shape derives from the Linear's [n, k]. */
typedef enum cslim_shape_rule {
  CSLIM_SHAPE_NK = 0,     /* [n, k] */
  CSLIM_SHAPE_N2K,        /* [n/2, k]: int4 packed two per byte along the output dim */
  CSLIM_SHAPE_N,          /* [n] */
  CSLIM_SHAPE_N1,         /* [n, 1] */
  CSLIM_SHAPE_ONE,        /* [1] */
  CSLIM_SHAPE_NG,         /* [n, k / group_size] */
  CSLIM_SHAPE_SCALE_BIAS  /* [n, 1] (gate/up/q/k/v) or [n, 16] (down/o) */
} cslim_shape_rule;

/* dtype of a tensor: fixed, or the deq_scale rule (float32 for bf16 models,
 * int64 bit pattern otherwise), or the model's dtype. */
typedef enum cslim_dtype_rule { CSLIM_DT_FIXED = 0, CSLIM_DT_DEQ_SCALE, CSLIM_DT_MODEL } cslim_dtype_rule;

typedef struct cslim_scheme_tensor {
  const char *suffix; /* "weight", "input_scale", ... */
  cslim_dtype_rule dtype_rule;
  cslim_dtype dtype;  /* for CSLIM_DT_FIXED */
  cslim_shape_rule shape;
  int per_group_only; /* written only for per-group (group_size > 0) variants */
} cslim_scheme_tensor;

typedef struct cslim_scheme {
  cslim_qtype type;
  const char *label;   /* JSON label: "W8A8_DYNAMIC" */
  const char *name;    /* lower case: "w8a8_dynamic" (flags, mix_cfg, file names) */
  int w_bits;          /* 4, 8; 16 = float */
  cslim_act_kind act;
  int priority;        /* model_quant_type priority (higher wins); -1 never sets it */
  int n_tensors;
  const cslim_scheme_tensor *tensors;
} cslim_scheme;

const cslim_scheme *cslim_scheme_get(cslim_qtype t);
/* Parse "w8a8", "W8A8_DYNAMIC", "w4a8" (= w4a8_dynamic), "float", ... */
int cslim_scheme_parse(const char *name, cslim_qtype *out);
/* Comma-separated names accepted by cslim_scheme_parse, for messages. */
const char *cslim_scheme_names(void);
/* dtype of a scheme tensor for a model of dtype `model_dtype`. */
cslim_dtype cslim_scheme_tensor_dtype(const cslim_scheme_tensor *t, cslim_dtype model_dtype);
/* Shape of a scheme tensor for a Linear [n, k]; returns ndim. `row_chunks`
 * = 1 if the linear is column-parallel (gate/up/q/k/v), 16 if row-parallel
 * (down/o) — the scale_bias layout. */
int cslim_scheme_tensor_shape(const cslim_scheme_tensor *t, int64_t n, int64_t k, int group_size, int row_chunks,
                              int64_t *shape);
/* Row `row` of int4 codes packed two output rows per byte ([n/2][k], byte[j][c] = (q[2j+1][c] << 4) |
 * (q[2j][c] & 0xF), msModelSlim's layout) into out[k], sign-extended. */
void cslim_int4_unpack_row(const int8_t *packed, int64_t k, int64_t row, int8_t *out);

/* Row-parallel Linears (o_proj, down_proj, w2): scale_bias has 16 chunks. */
int cslim_linear_is_row_parallel(const char *name);

/* model_quant_type for a set of labels seen (count[t] > 0): the highest
 * priority among them; W8A8S / W4A8_DYNAMIC when only those (and FLOAT)
 * occur; FLOAT otherwise. */
cslim_qtype cslim_model_quant_type(const int *count);

/* deq_scale as stored: the float32 value, or its IEEE-754 bit pattern widened
 * to int64 (msModelSlim's deqscale2int64). */
int64_t cslim_deq_scale_to_int64(float f);
float cslim_deq_scale_from_int64(int64_t v);

#ifdef __cplusplus
}
#endif
#endif
