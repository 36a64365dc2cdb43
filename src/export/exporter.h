/* The Ascend checkpoint writer (spec §5): tensors per scheme, the
 * description JSON, file naming of the v1 / v0 / MindIE savers, config.json
 * and the model's other files. Internal to the library. */
#ifndef CSLIM_EXPORT_EXPORTER_H
#define CSLIM_EXPORT_EXPORTER_H

#include "cslim/scheme.h"
#include "cslim/safetensors.h"

typedef enum cslim_saver {
  CSLIM_SAVER_V1 = 0, /* quant_model_weights*.safetensors, description indent 4 with version */
  CSLIM_SAVER_V0,     /* quant_model_weight_<type>*.safetensors, description indent 2 with version */
  CSLIM_SAVER_MINDIE, /* v0 names, quant_model_description_<type>.json without version, config "quantize" */
  CSLIM_SAVER_HUB     /* a float checkpoint in the Hub's layout: model*.safetensors, no description */
} cslim_saver;

typedef struct cslim_export_opts {
  const char *dir;           /* where to write (a staging directory) */
  const char *model_dir;     /* source model: config.json and the other files */
  cslim_dtype model_dtype;   /* FLOAT tensors and the deq_scale dtype rule */
  double part_file_size;     /* GB (2^30); 0 = one file */
  cslim_saver saver;
  int group_size;            /* "group_size" in the description */
} cslim_export_opts;

/* What a quantized Linear hands to the exporter. */
typedef struct cslim_qresult {
  cslim_qtype type;
  int n, k;
  const int8_t *q;          /* [n, k] codes (int4 codes in int8 for W4A8) */
  const float *wscale;      /* [n] */
  const float *wscale2;     /* [n, k / group_size] (per-group W4A8) or NULL */
  int group_size;
  float in_scale, in_offset;/* static / pdmix */
  const float *bias;        /* float bias [n] or NULL */
  const int64_t *rowsum;    /* [n] sums of each row's codes, or NULL */
} cslim_qresult;

typedef struct cslim_exporter cslim_exporter;

cslim_status cslim_exporter_create(const cslim_export_opts *o, cslim_exporter **out);
/* Declare a FLOAT tensor (written in the model dtype unless dtype given). */
cslim_status cslim_exporter_add_float(cslim_exporter *e, const char *name, int ndim, const int64_t *shape);
/* Declare every tensor of a quantized Linear `lin` (module name). */
cslim_status cslim_exporter_add_linear(cslim_exporter *e, const char *lin, cslim_qtype t, int n, int k,
                                       int has_bias, int group_size);
/* Lay out the files (the file names depend on the model's quantization type). */
cslim_status cslim_exporter_begin(cslim_exporter *e);
cslim_qtype cslim_exporter_model_type(const cslim_exporter *e);
/* Write a FLOAT tensor from float32 values, or raw bytes already in its dtype. */
cslim_status cslim_exporter_put_f32(cslim_exporter *e, const char *name, const float *data);
cslim_status cslim_exporter_put_raw(cslim_exporter *e, const char *name, const void *data);
/* Elements [off, off+n) of a FLOAT tensor from float32 values (tensors written in pieces). */
cslim_status cslim_exporter_put_f32_range(cslim_exporter *e, const char *name, size_t off, size_t n, const float *data);
/* QuaRot's global rotation R [n][n]: optional/quarot.safetensors ("global_rotation",
 * float32) and the description's "optional" entry, written by finish(). */
cslim_status cslim_exporter_set_rotation(cslim_exporter *e, const float *R, int n);
/* Write a FLOAT tensor from a source tensor: its bytes when the dtypes agree,
 * converted otherwise. */
cslim_status cslim_exporter_put_tensor(cslim_exporter *e, const char *name, const cslim_st *st,
                                       const cslim_tensor *src);
/* Write a quantized Linear: weight (packed for int4), scales, deq_scale,
 * quant_bias, scale_bias as its scheme requires. Non-finite or non-positive
 * scales are refused with an error naming the tensor. */
cslim_status cslim_exporter_put_linear(cslim_exporter *e, const char *lin, const cslim_qresult *r);
/* Close the shards, write the description, config.json and copy the model's
 * other files. */
cslim_status cslim_exporter_finish(cslim_exporter *e);
void cslim_exporter_free(cslim_exporter *e);
uint64_t cslim_exporter_bytes_written(const cslim_exporter *e);
/* Count of Linears per label (for reports). */
const int *cslim_exporter_linear_counts(const cslim_exporter *e);

/* Element i of a tensor as float32 (any float or integer dtype), and deq_scale's element i whether it is
 * stored as float32 or as the int64 bit pattern. */
float cslim_tensor_f32_at(const cslim_tensor *t, int64_t i);
float cslim_deq_scale_at(const cslim_tensor *t, int64_t i);

/* The deq_scale / quant_bias / scale_bias definitions, shared with the checker. */
float cslim_deq_scale_of(float in_scale, float wscale);
int32_t cslim_quant_bias_of(const int8_t *qrow, int k, float in_offset, float bias, float deq);
/* The same from the sum of the row's codes. */
int32_t cslim_quant_bias_from_sum(int64_t code_sum, float in_offset, float bias, float deq);
/* Row o of codes [n, k]: from rowsum[o] when the quantizer gave row sums (rowsum not NULL), else from the codes. */
int32_t cslim_quant_bias_row(const int8_t *codes, const int64_t *rowsum, int o, int k, float in_offset, float bias,
                             float deq);
void cslim_scale_bias_of(const int8_t *qrow, int k, float wscale, const float *wscale2, int group_size, int chunks,
                         float *out);

/* Copy a model directory's other files (*.json, *.py, *.txt, *.jinja) from src to dst, except index files,
 * quantization descriptions and (unless with_config) config.json. */
cslim_status cslim_copy_model_files(const char *src, const char *dst, int with_config);

#endif
