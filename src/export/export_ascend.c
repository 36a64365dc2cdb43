/* The Ascend checkpoint writer (spec §5.1–§5.6). */
#include "export/exporter.h"

#include "core/strutil.h"
#include "core/strmap.h"
#include "cslim/staging.h"
#include "io/json_util.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <sys/stat.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct ex_tensor {
  char *name;
  cslim_qtype label; /* description label */
  cslim_dtype dtype;
} ex_tensor;

struct cslim_exporter {
  cslim_export_opts o;
  char *dir, *model_dir;
  ex_tensor *t;
  size_t n, cap;
  cslim_strmap by_name;
  int label_count[CSLIM_QT_COUNT]; /* over tensors */
  int linear_count[CSLIM_QT_COUNT];
  cslim_qtype model_type;
  cslim_st_writer *w;
  /* declarations are kept until begin() */
  int64_t (*shapes)[CSLIM_MAX_DIMS];
  int *ndims;
  float *rotation; /* QuaRot global rotation [rot_n][rot_n], or NULL */
  int rot_n;
};

static cslim_status declare(cslim_exporter *e, const char *name, cslim_qtype label, cslim_dtype dt, int nd,
                            const int64_t *shape) {
  if (e->n == e->cap) {
    size_t c = e->cap ? 2 * e->cap : 1024;
    ex_tensor *t = realloc(e->t, c * sizeof *t);
    int64_t(*sh)[CSLIM_MAX_DIMS] = realloc(e->shapes, c * sizeof *sh);
    int *nds = realloc(e->ndims, c * sizeof *nds);
    if (t) e->t = t;
    if (sh) e->shapes = sh;
    if (nds) e->ndims = nds;
    if (!t || !sh || !nds) return cslim_error(CSLIM_ERR_NOMEM, "out of memory");
    e->cap = c;
  }
  ex_tensor *x = &e->t[e->n];
  x->name = strdup(name);
  if (!x->name) return cslim_error(CSLIM_ERR_NOMEM, "out of memory");
  x->label = label;
  x->dtype = dt;
  if (nd < 0 || nd > CSLIM_MAX_DIMS)
    return cslim_error(CSLIM_ERR_INVALID, "exporter: tensor '%s' has %d dimensions", name, nd);
  e->ndims[e->n] = nd;
  for (int d = 0; d < CSLIM_MAX_DIMS; d++) e->shapes[e->n][d] = d < nd ? shape[d] : 0;
  int r = cslim_strmap_put(&e->by_name, x->name, (int64_t)e->n, NULL);
  if (r <= 0) {
    free(x->name);
    return r < 0 ? cslim_error(CSLIM_ERR_NOMEM, "out of memory")
                 : cslim_error(CSLIM_ERR_INVALID, "exporter: tensor '%s' declared twice", name);
  }
  e->label_count[label]++;
  e->n++;
  return CSLIM_OK;
}

cslim_status cslim_exporter_create(const cslim_export_opts *o, cslim_exporter **out) {
  *out = NULL;
  cslim_exporter *e = calloc(1, sizeof *e);
  if (!e) return cslim_error(CSLIM_ERR_NOMEM, "out of memory");
  e->o = *o;
  e->dir = strdup(o->dir);
  e->model_dir = strdup(o->model_dir);
  e->o.dir = e->dir;
  e->o.model_dir = e->model_dir;
  if (!e->dir || !e->model_dir || cslim_strmap_init(&e->by_name, 4096)) {
    cslim_exporter_free(e);
    return cslim_error(CSLIM_ERR_NOMEM, "out of memory");
  }
  *out = e;
  return CSLIM_OK;
}

void cslim_exporter_free(cslim_exporter *e) {
  if (!e) return;
  cslim_st_writer_free(e->w);
  for (size_t i = 0; i < e->n; i++) free(e->t[i].name);
  free(e->t);
  free(e->shapes);
  free(e->ndims);
  cslim_strmap_free(&e->by_name);
  free(e->dir);
  free(e->model_dir);
  free(e->rotation);
  free(e);
}

cslim_status cslim_exporter_add_float(cslim_exporter *e, const char *name, int ndim, const int64_t *shape) {
  return declare(e, name, CSLIM_QT_FLOAT, e->o.model_dtype, ndim, shape);
}

cslim_status cslim_exporter_add_linear(cslim_exporter *e, const char *lin, cslim_qtype type, int n, int k,
                                       int has_bias, int group_size) {
  const cslim_scheme *sc = cslim_scheme_get(type);
  char name[512];
  cslim_status rc;
  e->linear_count[type]++;
  if (type == CSLIM_QT_FLOAT) {
    int64_t sh[2] = {n, k};
    snprintf(name, sizeof name, "%s.weight", lin);
    if ((rc = cslim_exporter_add_float(e, name, 2, sh))) return rc;
  } else {
    if (type == CSLIM_QT_W4A8_DYNAMIC && n % 2)
      return cslim_error(CSLIM_ERR_INVALID, "%s: W4A8_DYNAMIC packs two output rows per byte; %d rows is odd", lin, n);
    int chunks = cslim_linear_is_row_parallel(lin) ? 16 : 1;
    if (type == CSLIM_QT_W4A8_DYNAMIC && k % chunks)
      return cslim_error(CSLIM_ERR_INVALID, "%s: scale_bias splits the %d inputs into 16 chunks", lin, k);
    for (int i = 0; i < sc->n_tensors; i++) {
      const cslim_scheme_tensor *st = &sc->tensors[i];
      if (st->per_group_only && group_size <= 0) continue;
      int64_t sh[2];
      int nd = cslim_scheme_tensor_shape(st, n, k, group_size, chunks, sh);
      snprintf(name, sizeof name, "%s.%s", lin, st->suffix);
      if ((rc = declare(e, name, type, cslim_scheme_tensor_dtype(st, e->o.model_dtype), nd, sh))) return rc;
    }
  }
  if (has_bias) { /* a Linear's float bias is labelled FLOAT and kept in float32 when quantized */
    int64_t sh[1] = {n};
    snprintf(name, sizeof name, "%s.bias", lin);
    rc = declare(e, name, CSLIM_QT_FLOAT, type == CSLIM_QT_FLOAT ? e->o.model_dtype : CSLIM_F32, 1, sh);
    if (rc) return rc;
  }
  return CSLIM_OK;
}

cslim_qtype cslim_exporter_model_type(const cslim_exporter *e) { return e->model_type; }
const int *cslim_exporter_linear_counts(const cslim_exporter *e) { return e->linear_count; }
uint64_t cslim_exporter_bytes_written(const cslim_exporter *e) {
  return e->w ? cslim_st_writer_bytes_written(e->w) : 0;
}

cslim_status cslim_exporter_begin(cslim_exporter *e) {
  int lc[CSLIM_QT_COUNT] = {0};
  for (int i = 1; i < CSLIM_QT_COUNT; i++) lc[i] = e->linear_count[i];
  e->model_type = cslim_model_quant_type(lc);
  char base[128];
  const char *low = cslim_scheme_get(e->model_type)->name;
  if (e->o.saver == CSLIM_SAVER_HUB)
    snprintf(base, sizeof base, "model");
  else if (e->o.saver == CSLIM_SAVER_V1)
    snprintf(base, sizeof base, "quant_model_weights");
  else
    snprintf(base, sizeof base, "quant_model_weight_%s", low);
  uint64_t limit = e->o.part_file_size > 0 ? (uint64_t)(e->o.part_file_size * (double)(1ull << 30)) : 0;
  cslim_status rc = cslim_st_writer_create(e->dir, base, limit, &e->w);
  for (size_t i = 0; !rc && i < e->n; i++)
    rc = cslim_st_writer_declare(e->w, e->t[i].name, e->t[i].dtype, e->ndims[i], e->shapes[i]);
  if (!rc) rc = cslim_st_writer_begin(e->w);
  return rc;
}

static const ex_tensor *lookup(const cslim_exporter *e, const char *name) {
  int64_t i = cslim_strmap_get(&e->by_name, name);
  return i < 0 ? NULL : &e->t[i];
}

cslim_status cslim_exporter_put_f32(cslim_exporter *e, const char *name, const float *data) {
  if (!lookup(e, name)) return cslim_error(CSLIM_ERR_INVALID, "exporter: '%s' was not declared", name);
  return cslim_st_writer_put_f32(e->w, name, data);
}

cslim_status cslim_exporter_put_raw(cslim_exporter *e, const char *name, const void *data) {
  return cslim_st_writer_put(e->w, name, data);
}

cslim_status cslim_exporter_put_f32_range(cslim_exporter *e, const char *name, size_t off, size_t n,
                                          const float *data) {
  const ex_tensor *t = lookup(e, name);
  if (!t) return cslim_error(CSLIM_ERR_INVALID, "exporter: '%s' was not declared", name);
  size_t es = cslim_dtype_size(t->dtype);
  void *buf = malloc(n * es + 1);
  if (!buf) return cslim_error(CSLIM_ERR_NOMEM, "out of memory");
  cslim_convert_from_f32(t->dtype, data, buf, n);
  cslim_status rc = cslim_st_writer_put_range(e->w, name, (uint64_t)off * es, buf, (uint64_t)n * es);
  free(buf);
  return rc;
}

cslim_status cslim_exporter_set_rotation(cslim_exporter *e, const float *R, int n) {
  free(e->rotation);
  e->rotation = malloc((size_t)n * (size_t)n * sizeof(float));
  if (!e->rotation) return cslim_error(CSLIM_ERR_NOMEM, "out of memory");
  memcpy(e->rotation, R, (size_t)n * (size_t)n * sizeof(float));
  e->rot_n = n;
  return CSLIM_OK;
}

static cslim_status write_rotation(cslim_exporter *e) {
  char dir[4096];
  snprintf(dir, sizeof dir, "%s/optional", e->dir);
  if (mkdir(dir, 0755) && errno != EEXIST) return cslim_error(CSLIM_ERR_IO, "%s: cannot create it", dir);
  cslim_st_writer *w = NULL;
  int64_t shape[2] = {e->rot_n, e->rot_n};
  cslim_status rc = cslim_st_writer_create(dir, "quarot", 0, &w);
  if (!rc) rc = cslim_st_writer_declare(w, "global_rotation", CSLIM_F32, 2, shape);
  if (!rc) rc = cslim_st_writer_begin(w);
  if (!rc) rc = cslim_st_writer_put_f32(w, "global_rotation", e->rotation);
  if (!rc) rc = cslim_st_writer_finish(w);
  cslim_st_writer_free(w);
  return rc;
}

cslim_status cslim_exporter_put_tensor(cslim_exporter *e, const char *name, const cslim_st *st,
                                       const cslim_tensor *src) {
  const ex_tensor *t = lookup(e, name);
  if (!t) return cslim_error(CSLIM_ERR_INVALID, "exporter: '%s' was not declared", name);
  if (st) cslim_st_note_read(st, src);
  if (t->dtype == src->dtype) {
    /* in 16 MB pieces, each dropped from RSS once written: copying a 150k x 4096
     * embedding (on a thread of its own, beside the layers) does not make its 1.2 GB resident */
    const uint64_t piece = 16u << 20;
    for (uint64_t o = 0; o < src->nbytes; o += piece) {
      uint64_t len = src->nbytes - o < piece ? src->nbytes - o : piece;
      cslim_status rc = cslim_st_writer_put_range(e->w, name, o, (const char *)src->data + o, len);
      if (rc) return rc;
      cslim_st_release_range(st, src, o, len);
    }
    return CSLIM_OK;
  }
  float *f = malloc((size_t)src->numel * sizeof(float) + 1);
  if (!f) return cslim_error(CSLIM_ERR_NOMEM, "out of memory");
  cslim_convert_to_f32_mt(src->dtype, src->data, f, (size_t)src->numel);
  cslim_status rc = cslim_st_writer_put_f32(e->w, name, f);
  free(f);
  return rc;
}

/* ---- derived tensors ------------------------------------------------------------------- */

float cslim_deq_scale_of(float in_scale, float wscale) { return in_scale * wscale; }

float cslim_tensor_f32_at(const cslim_tensor *t, int64_t i) {
  float v = 0;
  if (i < 0 || i >= t->numel) return v;
  cslim_convert_to_f32(t->dtype, (const char *)t->data + (size_t)i * cslim_dtype_size(t->dtype), &v, 1);
  return v;
}

float cslim_deq_scale_at(const cslim_tensor *t, int64_t i) {
  if (t->dtype != CSLIM_I64) return cslim_tensor_f32_at(t, i);
  int64_t v = 0;
  if (i >= 0 && i < t->numel) memcpy(&v, (const char *)t->data + 8 * (size_t)i, 8);
  return cslim_deq_scale_from_int64(v);
}

int32_t cslim_quant_bias_of(const int8_t *q, int k, float in_offset, float bias, float deq) {
  int64_t sum = 0;
  for (int j = 0; j < k; j++) sum += q[j];
  return cslim_quant_bias_from_sum(sum, in_offset, bias, deq);
}

int32_t cslim_quant_bias_row(const int8_t *codes, const int64_t *rowsum, int o, int k, float in_offset, float bias,
                             float deq) {
  return rowsum ? cslim_quant_bias_from_sum(rowsum[o], in_offset, bias, deq)
                : cslim_quant_bias_of(codes + (size_t)o * (size_t)k, k, in_offset, bias, deq);
}

int32_t cslim_quant_bias_from_sum(int64_t sum, float in_offset, float bias, float deq) {
  /* round(b / deq - o * sum(Wq)): exact -o*sum without a bias */
  double v = (bias != 0.0f ? (double)(bias / deq) : 0.0) - (double)in_offset * (double)sum;
  v = nearbyint(v);
  return v > 2147483647.0 ? 2147483647 : v < -2147483648.0 ? (int32_t)-2147483647 - 1 : (int32_t)v;
}

void cslim_scale_bias_of(const int8_t *q, int k, float wscale, const float *wscale2, int g, int chunks, float *out) {
  int per = k / chunks;
  for (int c = 0; c < chunks; c++) {
    double s = 0;
    for (int j = c * per; j < (c + 1) * per; j++) {
      float sc = wscale2 ? wscale2[j / g] * wscale : wscale;
      s += (double)((float)q[j] * sc);
    }
    out[c] = (float)(8.0 * s);
  }
}

static cslim_status check_scales(const char *lin, const char *what, const float *v, int n) {
  for (int i = 0; i < n; i++)
    if (!(v[i] > 0.0f) || isinf(v[i]))
      return cslim_error(CSLIM_ERR_NUMERIC, "%s.%s[%d] = %g: a scale must be finite and positive (non-finite "
                         "weights or activations?); nothing was written", lin, what, i, (double)v[i]);
  return CSLIM_OK;
}

cslim_status cslim_exporter_put_linear(cslim_exporter *e, const char *lin, const cslim_qresult *r) {
  const cslim_scheme *sc = cslim_scheme_get(r->type);
  const int n = r->n, k = r->k;
  char name[512];
  cslim_status rc = check_scales(lin, "weight_scale", r->wscale, n);
  if (rc) return rc;
  if (r->wscale2 && (rc = check_scales(lin, "weight_scale_second", r->wscale2, n * (k / r->group_size)))) return rc;
  int is_static = sc->act == CSLIM_ACT_STATIC || sc->act == CSLIM_ACT_PDMIX;
  if (is_static && (rc = check_scales(lin, "input_scale", &r->in_scale, 1))) return rc;
  float *fbuf = malloc((size_t)n * 16 * sizeof(float) + (size_t)n * sizeof(int64_t));
  int8_t *packed = NULL;
  if (!fbuf) return cslim_error(CSLIM_ERR_NOMEM, "out of memory");
  for (int i = 0; i < sc->n_tensors && !rc; i++) {
    const cslim_scheme_tensor *st = &sc->tensors[i];
    snprintf(name, sizeof name, "%s.%s", lin, st->suffix);
    const ex_tensor *et = lookup(e, name);
    if (!et) {
      if (st->per_group_only) continue;
      rc = cslim_error(CSLIM_ERR_INVALID, "exporter: '%s' was not declared", name);
      break;
    }
    const char *sfx = st->suffix;
    if (!strcmp(sfx, "weight")) {
      if (r->type == CSLIM_QT_W4A8_DYNAMIC) { /* byte[j][c] = (q[2j+1][c] << 4) | (q[2j][c] & 0xF) */
        packed = malloc((size_t)(n / 2) * (size_t)k);
        if (!packed) {
          rc = cslim_error(CSLIM_ERR_NOMEM, "out of memory");
          break;
        }
        for (int j = 0; j < n / 2; j++)
          for (int c = 0; c < k; c++)
            packed[(size_t)j * k + c] =
                (int8_t)((uint8_t)(r->q[(size_t)(2 * j + 1) * k + c] << 4) | (uint8_t)(r->q[(size_t)(2 * j) * k + c] & 0x0f));
        rc = cslim_st_writer_put(e->w, name, packed);
      } else {
        rc = cslim_st_writer_put(e->w, name, r->q);
      }
    } else if (!strcmp(sfx, "weight_scale")) {
      rc = cslim_st_writer_put_f32(e->w, name, r->wscale);
    } else if (!strcmp(sfx, "weight_offset") || !strcmp(sfx, "weight_offset_second")) {
      size_t cnt = !strcmp(sfx, "weight_offset") ? (size_t)n : (size_t)n * (size_t)(k / r->group_size);
      float *z = calloc(cnt, sizeof(float));
      rc = z ? cslim_st_writer_put_f32(e->w, name, z) : cslim_error(CSLIM_ERR_NOMEM, "out of memory");
      free(z);
    } else if (!strcmp(sfx, "weight_scale_second")) {
      rc = cslim_st_writer_put_f32(e->w, name, r->wscale2);
    } else if (!strcmp(sfx, "input_scale")) {
      rc = cslim_st_writer_put_f32(e->w, name, &r->in_scale);
    } else if (!strcmp(sfx, "input_offset")) {
      rc = cslim_st_writer_put_f32(e->w, name, &r->in_offset);
    } else if (!strcmp(sfx, "deq_scale")) {
      for (int o = 0; o < n; o++) fbuf[o] = cslim_deq_scale_of(r->in_scale, r->wscale[o]);
      if ((rc = check_scales(lin, "deq_scale", fbuf, n))) break;
      if (et->dtype == CSLIM_I64) {
        int64_t *iv = (int64_t *)(fbuf + n);
        for (int o = 0; o < n; o++) iv[o] = cslim_deq_scale_to_int64(fbuf[o]);
        rc = cslim_st_writer_put(e->w, name, iv);
      } else {
        rc = cslim_st_writer_put_f32(e->w, name, fbuf);
      }
    } else if (!strcmp(sfx, "quant_bias")) {
      int32_t *qb = (int32_t *)fbuf;
      for (int o = 0; o < n; o++)
        qb[o] = cslim_quant_bias_row(r->q, r->rowsum, o, k, r->in_offset, r->bias ? r->bias[o] : 0.0f,
                                     cslim_deq_scale_of(r->in_scale, r->wscale[o]));
      rc = cslim_st_writer_put(e->w, name, qb);
    } else if (!strcmp(sfx, "scale_bias")) {
      int chunks = cslim_linear_is_row_parallel(lin) ? 16 : 1;
      float *sb = malloc((size_t)n * (size_t)chunks * sizeof(float));
      if (!sb) {
        rc = cslim_error(CSLIM_ERR_NOMEM, "out of memory");
        break;
      }
      int g = r->group_size, ng = g > 0 ? k / g : 0;
      for (int o = 0; o < n; o++)
        cslim_scale_bias_of(r->q + (size_t)o * k, k, r->wscale[o], ng ? r->wscale2 + (size_t)o * ng : NULL, g, chunks,
                            sb + (size_t)o * chunks);
      rc = cslim_st_writer_put_f32(e->w, name, sb);
      free(sb);
    } else {
      rc = cslim_error(CSLIM_ERR_INVALID, "exporter: no rule for '%s'", name);
    }
  }
  if (!rc && r->bias) {
    snprintf(name, sizeof name, "%s.bias", lin);
    rc = cslim_st_writer_put_f32(e->w, name, r->bias);
  }
  free(packed);
  free(fbuf);
  return rc;
}

/* ---- description, config, other files ------------------------------------------------------- */

static cslim_status write_description(cslim_exporter *e) {
  cJSON *d = cJSON_CreateObject();
  const char *mqt = cslim_scheme_get(e->model_type)->label;
  int v1 = e->o.saver == CSLIM_SAVER_V1;
  if (!v1) {
    cJSON_AddStringToObject(d, "model_quant_type", mqt);
    if (e->o.saver == CSLIM_SAVER_V0) cJSON_AddStringToObject(d, "version", "1.0.0");
    if (e->o.group_size > 0) cJSON_AddNumberToObject(d, "group_size", e->o.group_size);
  }
  for (size_t i = 0; i < e->n; i++) cJSON_AddStringToObject(d, e->t[i].name, cslim_scheme_get(e->t[i].label)->label);
  if (v1) {
    cJSON_AddStringToObject(d, "version", "1.0.0");
    cJSON_AddStringToObject(d, "model_quant_type", mqt);
    cJSON_AddObjectToObject(d, "metadata");
    cJSON_AddNumberToObject(d, "group_size", e->o.group_size);
    cJSON *opt = cJSON_AddObjectToObject(d, "optional");
    if (e->rotation) {
      cJSON *map = cJSON_AddObjectToObject(cJSON_AddObjectToObject(opt, "quarot"), "rotation_map");
      cJSON_AddStringToObject(map, "global_rotation", "optional/quarot.safetensors");
    }
  }
  char *txt = cslim_json_dump(d, v1 ? 4 : 2);
  cJSON_Delete(d);
  if (!txt) return cslim_error(CSLIM_ERR_NOMEM, "out of memory");
  char path[4096];
  const char *low = cslim_scheme_get(e->model_type)->name;
  if (e->o.saver == CSLIM_SAVER_MINDIE)
    snprintf(path, sizeof path, "%s/quant_model_description_%s.json", e->dir, low);
  else
    snprintf(path, sizeof path, "%s/quant_model_description.json", e->dir);
  cslim_status rc = cslim_write_text(path, txt);
  free(txt);
  return rc;
}

/* config.json: quantization_config removed (top level and text_config: vLLM
 * would read it instead of the description); torch_dtype / dtype set to the
 * dtype the float tensors are written in; MindIE format adds "quantize" and a
 * quantization_config of its own. Untouched files are copied as is. */
static cslim_status write_config(cslim_exporter *e) {
  char src[4096], dst[4096];
  snprintf(src, sizeof src, "%s/config.json", e->model_dir);
  snprintf(dst, sizeof dst, "%s/config.json", e->dir);
  cJSON *c = NULL;
  cslim_status rc = cslim_json_load_file(src, &c);
  if (rc) return rc;
  int changed = 0;
  if (cJSON_GetObjectItemCaseSensitive(c, "quantization_config")) {
    cJSON_DeleteItemFromObjectCaseSensitive(c, "quantization_config");
    changed = 1;
  }
  cJSON *tc = cJSON_GetObjectItemCaseSensitive(c, "text_config");
  if (cJSON_IsObject(tc) && cJSON_GetObjectItemCaseSensitive(tc, "quantization_config")) {
    cJSON_DeleteItemFromObjectCaseSensitive(tc, "quantization_config");
    changed = 1;
  }
  /* a quantized checkpoint: the dtype the float tensors are written in (--save_dtype / --torch_dtype), which
   * the engine serves in and which decides deq_scale's dtype. A float (transforms-only) checkpoint keeps the
   * model's: --save_dtype float32 there stores the transformed weights exactly, and the model still computes
   * as the original does (RoPE's inverse frequencies depend on the dtype). */
  const char *dn = e->o.model_dtype == CSLIM_F32 ? "float32" : e->o.model_dtype == CSLIM_F16 ? "float16" : "bfloat16";
  cJSON *scopes[3] = {c, cJSON_IsObject(tc) ? tc : NULL, cJSON_GetObjectItemCaseSensitive(c, "vision_config")};
  int top_has = 0;
  for (int i = 0; i < 3 && e->o.saver != CSLIM_SAVER_HUB; i++)
    for (int k = 0; k < 2 && cJSON_IsObject(scopes[i]); k++) {
      const char *key = k ? "dtype" : "torch_dtype";
      cJSON *d = cJSON_GetObjectItemCaseSensitive(scopes[i], key);
      if (!cJSON_IsString(d)) continue;
      top_has |= i == 0;
      if (strcmp(d->valuestring, dn)) {
        cJSON_ReplaceItemInObjectCaseSensitive(scopes[i], key, cJSON_CreateString(dn));
        changed = 1;
      }
    }
  if (!top_has && e->o.model_dtype != CSLIM_BF16 && e->o.saver != CSLIM_SAVER_HUB) {
    cJSON_AddStringToObject(c, "torch_dtype", dn);
    changed = 1;
  }
  if (e->o.saver == CSLIM_SAVER_MINDIE) {
    cJSON_DeleteItemFromObjectCaseSensitive(c, "quantize");
    cJSON_AddStringToObject(c, "quantize", cslim_scheme_get(e->model_type)->name);
    cJSON *q = cJSON_AddObjectToObject(c, "quantization_config");
    cJSON_AddNullToObject(q, "kv_quant_type");
    cJSON_AddNullToObject(q, "fa_quant_type");
    cJSON_AddNumberToObject(q, "group_size", e->o.group_size);
    changed = 1;
  }
  if (!changed) {
    cJSON_Delete(c);
    return cslim_copy_file(src, dst);
  }
  char *txt = cslim_json_dump(c, 2);
  cJSON_Delete(c);
  if (!txt) return cslim_error(CSLIM_ERR_NOMEM, "out of memory");
  rc = cslim_write_text(dst, txt);
  free(txt);
  return rc;
}

cslim_status cslim_copy_model_files(const char *src, const char *dst, int with_config) {
  DIR *d = opendir(src);
  if (!d) return cslim_error(CSLIM_ERR_IO, "%s: cannot list the model directory", src);
  struct dirent *de;
  cslim_status rc = CSLIM_OK;
  while (!rc && (de = readdir(d))) {
    const char *n = de->d_name;
    if (n[0] == '.') continue;
    if (!(cslim_ends_with(n, ".json") || cslim_ends_with(n, ".py") || cslim_ends_with(n, ".txt") || cslim_ends_with(n, ".jinja"))) continue;
    if (cslim_ends_with(n, "index.json") || (!with_config && !strcmp(n, "config.json")) ||
        !strncmp(n, "quant_model_description", 23))
      continue;
    char a[4096], b[4096];
    snprintf(a, sizeof a, "%s/%s", src, n);
    snprintf(b, sizeof b, "%s/%s", dst, n);
    rc = cslim_copy_file(a, b);
  }
  closedir(d);
  return rc;
}

cslim_status cslim_exporter_finish(cslim_exporter *e) {
  cslim_status rc = cslim_st_writer_finish(e->w);
  if (!rc && e->rotation) rc = write_rotation(e);
  if (!rc && e->o.saver != CSLIM_SAVER_HUB) rc = write_description(e);
  if (!rc) rc = write_config(e);
  if (!rc) rc = cslim_copy_model_files(e->model_dir, e->dir, 0);
  return rc;
}
