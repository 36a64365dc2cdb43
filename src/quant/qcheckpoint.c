/* Reading quantized checkpoints: the description JSON (tensor -> label) and
 * each quantized Linear's tensors, turned into the runtime kernel. */
#include "quant/qcheckpoint.h"

#include "core/strmap.h"
#include "io/json_util.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct cslim_qdesc {
  cJSON *root;
  cslim_strmap map; /* tensor name -> qtype */
  char *path;
  cslim_qtype model_type;
  int has_model_type; /* model_quant_type present and a known label */
  char version[32];
};

static int is_description_name(const char *n) {
  size_t l = strlen(n);
  return !strcmp(n, "quant_model_description.json") ||
         (!strncmp(n, "quant_model_description_", 24) && l > 5 && !strcmp(n + l - 5, ".json"));
}

cslim_status cslim_qdesc_find(const char *dir, char *path, size_t cap) {
  path[0] = 0;
  snprintf(path, cap, "%s/quant_model_description.json", dir);
  FILE *f = fopen(path, "rb");
  if (f) {
    fclose(f);
    return CSLIM_OK;
  }
  path[0] = 0;
  DIR *d = opendir(dir);
  if (!d) return CSLIM_OK;
  struct dirent *de;
  int n = 0;
  while ((de = readdir(d)))
    if (is_description_name(de->d_name)) {
      if (n++ == 0) snprintf(path, cap, "%s/%s", dir, de->d_name);
    }
  closedir(d);
  if (n > 1) {
    cslim_status rc = cslim_error(CSLIM_ERR_FORMAT, "%s: %d quant_model_description*.json files; keep one", dir, n);
    path[0] = 0;
    return rc;
  }
  return CSLIM_OK;
}

cslim_status cslim_qdesc_load(const char *dir, cslim_qdesc **out) {
  *out = NULL;
  char path[4096];
  cslim_status rc = cslim_qdesc_find(dir, path, sizeof path);
  if (rc || !path[0]) return rc;
  cslim_qdesc *d = calloc(1, sizeof *d);
  if (!d) return cslim_error(CSLIM_ERR_NOMEM, "out of memory");
  d->path = strdup(path);
  if ((rc = cslim_json_load_file(path, &d->root))) goto fail;
  if (!cJSON_IsObject(d->root)) {
    rc = cslim_error(CSLIM_ERR_FORMAT, "%s: not a JSON object", path);
    goto fail;
  }
  if (cslim_strmap_init(&d->map, 1024)) {
    rc = cslim_error(CSLIM_ERR_NOMEM, "out of memory");
    goto fail;
  }
  d->model_type = CSLIM_QT_FLOAT;
  for (const cJSON *e = d->root->child; e; e = e->next) {
    if (!strchr(e->string, '.')) { /* global keys: version, model_quant_type, group_size, ... */
      if (!strcmp(e->string, "version") && cJSON_IsString(e))
        snprintf(d->version, sizeof d->version, "%s", e->valuestring);
      if (!strcmp(e->string, "model_quant_type") && cJSON_IsString(e))
        d->has_model_type = cslim_scheme_parse(e->valuestring, &d->model_type) == 0;
      continue;
    }
    if (!cJSON_IsString(e)) continue;
    cslim_qtype t;
    if (cslim_scheme_parse(e->valuestring, &t) != 0) {
      rc = cslim_error(CSLIM_ERR_UNSUPPORTED, "%s: tensor '%s' has label '%s', which cslim does not evaluate",
                       path, e->string, e->valuestring);
      goto fail;
    }
    cslim_strmap_put(&d->map, e->string, t, NULL);
  }
  *out = d;
  return CSLIM_OK;
fail:
  cslim_qdesc_free(d);
  return rc;
}

void cslim_qdesc_free(cslim_qdesc *d) {
  if (!d) return;
  cJSON_Delete(d->root);
  cslim_strmap_free(&d->map);
  free(d->path);
  free(d);
}

int cslim_qdesc_label(const cslim_qdesc *d, const char *tensor, cslim_qtype *t) {
  int64_t v = cslim_strmap_get(&d->map, tensor);
  if (v < 0) return -1;
  *t = (cslim_qtype)v;
  return 0;
}

const char *cslim_qdesc_path(const cslim_qdesc *d) { return d->path; }
const char *cslim_qdesc_version(const cslim_qdesc *d) { return d->version; }

int cslim_qdesc_model_type(const cslim_qdesc *d, cslim_qtype *t) {
  if (!d->has_model_type) return -1;
  *t = d->model_type;
  return 0;
}

/* ---- one quantized linear ---------------------------------------------------------- */

static const cslim_tensor *find(cslim_st *st, const char *lin, const char *suffix) {
  return cslim_st_findf(st, "%s.%s", lin, suffix);
}

static float scalar_f32(cslim_st *st, const cslim_tensor *t) {
  float v = 0;
  if (t->numel >= 1) {
    float tmp[1];
    cslim_convert_to_f32(t->dtype, t->data, tmp, 1);
    v = tmp[0];
    (void)st;
  }
  return v;
}

cslim_status cslim_qlinear_from_checkpoint(cslim_st *st, const char *lin, cslim_qtype type, int n, int k,
                                           cslim_dtype serve, cslim_qlinear **out) {
  *out = NULL;
  const cslim_tensor *w = find(st, lin, "weight");
  if (!w) return cslim_error(CSLIM_ERR_FORMAT, "%s.weight is missing", lin);
  if (w->dtype != CSLIM_I8) return cslim_error(CSLIM_ERR_FORMAT, "%s.weight is %s, not I8", lin, cslim_dtype_name(w->dtype));
  int packed = type == CSLIM_QT_W4A8_DYNAMIC;
  int64_t want0 = packed ? n / 2 : n;
  if (w->ndim != 2 || w->shape[0] != want0 || w->shape[1] != k)
    return cslim_error(CSLIM_ERR_FORMAT, "%s.weight has the wrong shape for %s [%d, %d]", lin,
                       cslim_scheme_get(type)->label, n, k);
  cslim_qlinear *q = calloc(1, sizeof *q);
  if (!q) return cslim_error(CSLIM_ERR_NOMEM, "out of memory");
  q->type = type;
  q->n = n;
  q->k = k;
  q->serve = serve;
  q->wq = malloc((size_t)n * (size_t)k);
  q->wscale = malloc((size_t)n * sizeof(float));
  cslim_status rc = CSLIM_OK;
  if (!q->wq || !q->wscale) {
    rc = cslim_error(CSLIM_ERR_NOMEM, "out of memory");
    goto fail;
  }
  const int8_t *src = w->data;
  if (packed) {
    for (int r = 0; r < n; r++) cslim_int4_unpack_row(src, k, r, q->wq + (size_t)r * k);
  } else {
    memcpy(q->wq, src, (size_t)n * (size_t)k);
  }
  const cslim_tensor *bias = find(st, lin, "bias");
  if (bias) {
    if (bias->numel != n) {
      rc = cslim_error(CSLIM_ERR_FORMAT, "%s.bias has %lld values, expected %d", lin, (long long)bias->numel, n);
      goto fail;
    }
    q->bias = malloc((size_t)n * sizeof(float));
    cslim_st_read_f32(st, bias, q->bias);
  }
  const cslim_scheme *sc = cslim_scheme_get(type);
  if (sc->act == CSLIM_ACT_STATIC || sc->act == CSLIM_ACT_PDMIX) {
    const cslim_tensor *is = find(st, lin, "input_scale"), *io = find(st, lin, "input_offset");
    const cslim_tensor *dq = find(st, lin, "deq_scale"), *qb = find(st, lin, "quant_bias");
    if (!is || !io || !dq || !qb || dq->numel != n || qb->numel != n || qb->dtype != CSLIM_I32) {
      rc = cslim_error(CSLIM_ERR_FORMAT, "%s: input_scale, input_offset, deq_scale [%d] or quant_bias [%d] int32 "
                       "missing or malformed", lin, n, n);
      goto fail;
    }
    float s = scalar_f32(st, is);
    q->in_recip = cslim_round_to_dtype(1.0f / cslim_round_to_dtype(s, serve), serve); /* engines.md §2.2 step 1 */
    q->in_offset = scalar_f32(st, io);
    q->deq = malloc((size_t)n * sizeof(float));
    q->qbias = malloc((size_t)n * sizeof(int32_t));
    if (!q->deq || !q->qbias) {
      rc = cslim_error(CSLIM_ERR_NOMEM, "out of memory");
      goto fail;
    }
    if (dq->dtype == CSLIM_I64) {
      for (int o = 0; o < n; o++) {
        int64_t v;
        memcpy(&v, (const char *)dq->data + 8 * (size_t)o, 8);
        q->deq[o] = cslim_deq_scale_from_int64(v);
      }
    } else {
      cslim_st_read_f32(st, dq, q->deq);
    }
    memcpy(q->qbias, qb->data, (size_t)n * sizeof(int32_t));
  }
  if (sc->act != CSLIM_ACT_STATIC) {
    const cslim_tensor *ws = find(st, lin, "weight_scale");
    if (!ws || ws->numel != n) {
      rc = cslim_error(CSLIM_ERR_FORMAT, "%s.weight_scale [%d, 1] is missing or malformed", lin, n);
      goto fail;
    }
    cslim_st_read_f32(st, ws, q->wscale);
    /* vLLM-Ascend holds W8A8_DYNAMIC / W8A16 weight scales in the serving
     * dtype; W4A8_DYNAMIC keeps float32 (re-encoded as int64 bits) */
    if (type != CSLIM_QT_W4A8_DYNAMIC)
      for (int o = 0; o < n; o++) q->wscale[o] = cslim_round_to_dtype(q->wscale[o], serve);
    const cslim_tensor *s2 = find(st, lin, "weight_scale_second");
    if (s2) { /* per-group: fold into a dequantized W8A16-style weight is not how the engine runs it */
      rc = cslim_error(CSLIM_ERR_UNSUPPORTED, "%s: per-group weights (weight_scale_second) are evaluated by "
                       "weight-only engines; cslim evaluates per-channel W4A8_DYNAMIC only", lin);
      goto fail;
    }
  }
  *out = q;
  return CSLIM_OK;
fail:
  cslim_qlinear_free(q);
  return rc;
}
