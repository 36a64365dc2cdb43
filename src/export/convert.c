/* cslim convert: re-target a quantized checkpoint (cslim/deploy.h,
 * docs/deploy.md). One tensor at a time from the mapped input; the output is
 * one safetensors file, the description and the model's files, staged and
 * renamed into place. */
#include "cslim/deploy.h"

#include "core/strutil.h"
#include "cslim/config.h"
#include "cslim/dtype.h"
#include "cslim/safetensors.h"
#include "cslim/scheme.h"
#include "cslim/staging.h"
#include "export/exporter.h"
#include "io/json_util.h"
#include "quant/qcheckpoint.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

int cslim_target_parse(const char *s, cslim_target *out) {
  static const struct {
    const char *n;
    cslim_target t;
  } k[] = {{"vllm-ascend", CSLIM_TARGET_VLLM_ASCEND},
           {"vllm_ascend", CSLIM_TARGET_VLLM_ASCEND},
           {"vllm-mindspore", CSLIM_TARGET_VLLM_MINDSPORE},
           {"vllm_mindspore", CSLIM_TARGET_VLLM_MINDSPORE},
           {"mindie", CSLIM_TARGET_MINDIE}};
  for (size_t i = 0; i < sizeof k / sizeof k[0]; i++)
    if (!strcasecmp(s, k[i].n)) return *out = k[i].t, 0;
  return -1;
}

const char *cslim_target_name(cslim_target t) {
  switch (t) {
  case CSLIM_TARGET_VLLM_ASCEND: return "vllm-ascend";
  case CSLIM_TARGET_VLLM_MINDSPORE: return "vllm-mindspore";
  case CSLIM_TARGET_MINDIE: return "mindie";
  default: return "any";
  }
}

/* "<lin>.<suffix>" of a static-quantized Linear: its label, the Linear's name in lin; -1 otherwise */
static int static_linear(const cslim_qdesc *d, const char *name, char *lin, size_t cap, const char **suffix) {
  const char *dot = strrchr(name, '.');
  if (!dot || (size_t)(dot - name) + 1 > cap) return -1;
  memcpy(lin, name, (size_t)(dot - name));
  lin[dot - name] = '\0';
  *suffix = dot + 1;
  char w[600];
  snprintf(w, sizeof w, "%s.weight", lin);
  cslim_qtype t;
  if (cslim_qdesc_label(d, w, &t) != 0) return -1;
  return t == CSLIM_QT_W8A8 || t == CSLIM_QT_W8A8S || t == CSLIM_QT_W8A8_MIX ? (int)t : -1;
}

/* one output tensor: its dtype, shape and a producer of its bytes */
typedef struct out_t {
  const cslim_tensor *src;
  char name[600];
  char label[32];
  cslim_dtype dtype;
  int ndim;
  int64_t shape[CSLIM_MAX_DIMS];
  enum { O_COPY, O_VEC, O_DEQ, O_QB_NOBIAS, O_QB_BIAS, O_SCALAR } kind;
  float value;            /* O_VEC / O_SCALAR */
  char lin[512];
} out_t;

typedef struct conv {
  const cslim_convert_params *p;
  cslim_st *st;
  cslim_qdesc *d;
  cslim_config cfg;
  cslim_dtype serve;
  out_t *o;
  int n;
} conv;

static const cslim_tensor *lin_tensor(conv *c, const char *lin, const char *sfx) {
  return cslim_st_findf(c->st, "%s.%s", lin, sfx);
}

/* quant_bias with or without the bias folded, from the codes (exact, as the exporter computes it) */
static cslim_status quant_bias(conv *c, const out_t *o, int32_t *qb) {
  const cslim_tensor *w = lin_tensor(c, o->lin, "weight"), *io = lin_tensor(c, o->lin, "input_offset"),
                     *dq = lin_tensor(c, o->lin, "deq_scale"), *b = lin_tensor(c, o->lin, "bias");
  if (!w || !io || !dq || w->ndim != 2)
    return cslim_error(CSLIM_ERR_FORMAT, "%s: weight, input_offset or deq_scale missing", o->lin);
  int n = (int)w->shape[0], k = (int)w->shape[1];
  float off = cslim_tensor_f32_at(io, 0);
  for (int r = 0; r < n; r++) {
    float bias = o->kind == O_QB_BIAS && b ? cslim_tensor_f32_at(b, r) : 0.0f;
    qb[r] = cslim_quant_bias_of((const int8_t *)w->data + (size_t)r * k, k, off, bias, cslim_deq_scale_at(dq, r));
  }
  return CSLIM_OK;
}

static cslim_status produce(conv *c, const out_t *o, void **buf) {
  *buf = NULL;
  int64_t numel = 1;
  for (int i = 0; i < o->ndim; i++) numel *= o->shape[i];
  if (o->kind == O_COPY) return CSLIM_OK;
  size_t es = cslim_dtype_size(o->dtype);
  char *b = malloc((size_t)numel * es);
  if (!b) return cslim_error(CSLIM_ERR_NOMEM, "out of memory");
  cslim_status rc = CSLIM_OK;
  switch (o->kind) {
  case O_VEC:
  case O_SCALAR:
    for (int64_t i = 0; i < numel; i++) {
      if (o->dtype == CSLIM_F32) memcpy(b + 4 * i, &o->value, 4);
      else {
        uint16_t h = o->dtype == CSLIM_F16 ? cslim_f32_to_f16(o->value) : cslim_f32_to_bf16(o->value);
        memcpy(b + 2 * i, &h, 2);
      }
    }
    break;
  case O_DEQ:
    for (int64_t i = 0; i < numel; i++) {
      float f = cslim_deq_scale_at(o->src, i);
      if (o->dtype == CSLIM_F32) memcpy(b + 4 * i, &f, 4);
      else {
        int64_t v = cslim_deq_scale_to_int64(f);
        memcpy(b + 8 * i, &v, 8);
      }
    }
    break;
  case O_QB_NOBIAS:
  case O_QB_BIAS: rc = quant_bias(c, o, (int32_t *)b); break;
  default: break;
  }
  if (rc) free(b);
  else *buf = b;
  return rc;
}

/* the plan: every input tensor → one output tensor */
static cslim_status plan(conv *c, cslim_convert_report *rep) {
  const cslim_target T = c->p->target;
  const int ms = T == CSLIM_TARGET_VLLM_MINDSPORE;
  size_t nt = cslim_st_count(c->st);
  c->o = calloc(nt, sizeof *c->o);
  if (!c->o) return cslim_error(CSLIM_ERR_NOMEM, "out of memory");
  for (size_t i = 0; i < nt; i++) {
    const cslim_tensor *t = cslim_st_at(c->st, i);
    out_t *o = &c->o[c->n++];
    o->src = t;
    snprintf(o->name, sizeof o->name, "%s", t->name);
    cslim_qtype lab;
    if (cslim_qdesc_label(c->d, t->name, &lab) != 0)
      return cslim_error(CSLIM_ERR_FORMAT, "%s: tensor %s is not in the description", c->p->model_path, t->name);
    snprintf(o->label, sizeof o->label, "%s", cslim_scheme_get(lab)->label);
    o->dtype = t->dtype;
    o->ndim = t->ndim;
    memcpy(o->shape, t->shape, sizeof o->shape);
    o->kind = O_COPY;
    if (ms && lab != CSLIM_QT_FLOAT && lab != CSLIM_QT_W8A8 && lab != CSLIM_QT_W8A8S)
      return cslim_error(CSLIM_ERR_UNSUPPORTED, "%s is %s: vllm-mindspore serves FLOAT, W8A8 and W8A8S Linears only "
                         "(re-quantize with --quant_type w8a8)", t->name, cslim_scheme_get(lab)->label);
    if (ms && lab != CSLIM_QT_FLOAT && strstr(t->name, ".mlp.experts."))
      return cslim_error(CSLIM_ERR_UNSUPPORTED, "%s: vllm-mindspore cannot start a MoE model with quantized experts "
                         "(its FusedMoE needs a MoE quantization method); keep the experts float", t->name);
    const char *sfx;
    int st = static_linear(c->d, t->name, o->lin, sizeof o->lin, &sfx);
    if (st < 0) continue;
    const cslim_tensor *w = lin_tensor(c, o->lin, "weight");
    int64_t k = w && w->ndim == 2 ? w->shape[1] : 0;
    const cslim_tensor *bias = lin_tensor(c, o->lin, "bias");
    cslim_qtype blab = CSLIM_QT_FLOAT;
    char bn[600];
    snprintf(bn, sizeof bn, "%s.bias", o->lin);
    int bias_folded = bias && (cslim_qdesc_label(c->d, bn, &blab) != 0 || blab == CSLIM_QT_FLOAT);
    if (!strcmp(sfx, "input_scale") || !strcmp(sfx, "input_offset")) {
      int scale = !strcmp(sfx, "input_scale");
      /* the value the engine uses: the scale rounded to the served dtype (exact in float16) */
      o->value = scale ? cslim_round_to_dtype(cslim_tensor_f32_at(t, 0), c->serve) : cslim_tensor_f32_at(t, 0);
      if (ms) {
        o->kind = O_VEC;
        o->ndim = 1;
        o->shape[0] = k;
        o->dtype = scale || c->p->soc == 310 ? CSLIM_F16 : CSLIM_BF16;
        rep->n_expanded++;
      } else {
        o->kind = O_SCALAR;
        o->ndim = 1;
        o->shape[0] = 1;
        o->dtype = CSLIM_F32;
        if (scale) o->value = cslim_tensor_f32_at(t, 0); /* as written (a vector from vllm-mindspore holds the rounded value) */
      }
    } else if (!strcmp(sfx, "deq_scale")) {
      cslim_dtype want = ms ? CSLIM_F32 : T == CSLIM_TARGET_MINDIE ? t->dtype : c->serve == CSLIM_BF16 ? CSLIM_F32 : CSLIM_I64;
      if (want != t->dtype) {
        o->kind = O_DEQ;
        o->dtype = want;
        rep->n_deq_converted++;
      }
    } else if (!strcmp(sfx, "quant_bias") && bias) {
      if (ms && bias_folded) o->kind = O_QB_NOBIAS, rep->n_bias_moved++;
      if (!ms && !bias_folded) o->kind = O_QB_BIAS, rep->n_bias_moved++;
    } else if (!strcmp(sfx, "bias")) {
      snprintf(o->label, sizeof o->label, "%s", ms ? cslim_scheme_get((cslim_qtype)st)->label : "FLOAT");
      if (o->dtype != CSLIM_F32) o->kind = O_COPY; /* kept as written */
    } else if (!strcmp(sfx, "weight")) {
      rep->n_linears++;
    }
  }
  return CSLIM_OK;
}

/* the description: the input's global keys, the plan's labels */
static cslim_status write_description(conv *c, const char *path, const char *mqt_low) {
  cJSON *src = NULL, *d = cJSON_CreateObject();
  cslim_status rc = cslim_json_load_file(cslim_qdesc_path(c->d), &src);
  if (rc) {
    cJSON_Delete(d);
    return rc;
  }
  const int v1 = c->p->target == CSLIM_TARGET_VLLM_ASCEND;
  cJSON *mqt = cJSON_GetObjectItemCaseSensitive(src, "model_quant_type");
  const char *mq = cJSON_IsString(mqt) ? mqt->valuestring : NULL;
  if (!v1) {
    if (mq) cJSON_AddStringToObject(d, "model_quant_type", mq);
    if (c->p->target != CSLIM_TARGET_MINDIE) cJSON_AddStringToObject(d, "version", "1.0.0");
  }
  for (int i = 0; i < c->n; i++) cJSON_AddStringToObject(d, c->o[i].name, c->o[i].label);
  for (cJSON *e = src->child; e; e = e->next) /* other global keys, kept */
    if (e->string && !strchr(e->string, '.') && strcmp(e->string, "model_quant_type") && strcmp(e->string, "version") &&
        !cJSON_HasObjectItem(d, e->string))
      cJSON_AddItemToObject(d, e->string, cJSON_Duplicate(e, 1));
  if (v1) {
    cJSON_AddStringToObject(d, "version", "1.0.0");
    if (mq) cJSON_AddStringToObject(d, "model_quant_type", mq);
    if (!cJSON_HasObjectItem(d, "metadata")) cJSON_AddObjectToObject(d, "metadata");
    if (!cJSON_HasObjectItem(d, "group_size")) cJSON_AddNumberToObject(d, "group_size", 0);
    if (!cJSON_HasObjectItem(d, "optional")) cJSON_AddObjectToObject(d, "optional");
  }
  cJSON_Delete(src);
  (void)mqt_low;
  char *txt = cslim_json_dump(d, v1 ? 4 : 2);
  cJSON_Delete(d);
  if (!txt) return cslim_error(CSLIM_ERR_NOMEM, "out of memory");
  rc = cslim_write_text(path, txt);
  free(txt);
  return rc;
}

/* config.json: no quantization_config / compression_config; MindIE: "quantize" */
static cslim_status write_config(conv *c, const char *dir, const char *mqt_low) {
  char src[4352], dst[4352];
  snprintf(src, sizeof src, "%s/config.json", c->p->model_path);
  snprintf(dst, sizeof dst, "%s/config.json", dir);
  cJSON *j = NULL;
  cslim_status rc = cslim_json_load_file(src, &j);
  if (rc) return rc;
  cJSON_DeleteItemFromObjectCaseSensitive(j, "quantization_config");
  cJSON_DeleteItemFromObjectCaseSensitive(j, "compression_config");
  cJSON *tc = cJSON_GetObjectItemCaseSensitive(j, "text_config");
  if (cJSON_IsObject(tc)) cJSON_DeleteItemFromObjectCaseSensitive(tc, "quantization_config");
  cJSON_DeleteItemFromObjectCaseSensitive(j, "quantize");
  if (c->p->target == CSLIM_TARGET_MINDIE) cJSON_AddStringToObject(j, "quantize", mqt_low);
  char *txt = cslim_json_dump(j, 2);
  cJSON_Delete(j);
  if (!txt) return cslim_error(CSLIM_ERR_NOMEM, "out of memory");
  rc = cslim_write_text(dst, txt);
  free(txt);
  return rc;
}

/* model.safetensors.index.json: every tensor → the one weight file */
static cslim_status write_index(conv *c, const char *dir, const char *file, uint64_t total) {
  cJSON *j = cJSON_CreateObject(), *md = cJSON_AddObjectToObject(j, "metadata"), *wm = cJSON_AddObjectToObject(j, "weight_map");
  cJSON_AddNumberToObject(md, "total_size", (double)total);
  for (int i = 0; i < c->n; i++) cJSON_AddStringToObject(wm, c->o[i].name, file);
  char *txt = cslim_json_dump(j, 2);
  cJSON_Delete(j);
  if (!txt) return cslim_error(CSLIM_ERR_NOMEM, "out of memory");
  char p[4352];
  snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir);
  cslim_status rc = cslim_write_text(p, txt);
  free(txt);
  return rc;
}

/* files of src that dst lacks (*.json, *.py, *.txt, *.jinja, *.model; no weights, indexes, descriptions) */
static cslim_status copy_missing(const char *src, const char *dst) {
  DIR *d = opendir(src);
  if (!d) return cslim_error(CSLIM_ERR_IO, "%s: cannot list the directory", src);
  struct dirent *de;
  cslim_status rc = CSLIM_OK;
  while (!rc && (de = readdir(d))) {
    const char *n = de->d_name;
    if (!strcmp(n, "optional")) { /* QuaRot's optional/quarot.safetensors, which the description names */
      char a[4352], b[4352];
      snprintf(a, sizeof a, "%s/optional", src);
      snprintf(b, sizeof b, "%s/optional", dst);
      struct stat sa;
      if (stat(a, &sa) == 0 && S_ISDIR(sa.st_mode) && stat(b, &sa) != 0) {
        if (mkdir(b, 0755)) rc = cslim_error(CSLIM_ERR_IO, "%s: cannot create", b);
        DIR *od = opendir(a);
        struct dirent *oe;
        while (!rc && od && (oe = readdir(od))) {
          if (oe->d_name[0] == '.') continue;
          char x[4700], y[4700];
          snprintf(x, sizeof x, "%s/%s", a, oe->d_name);
          snprintf(y, sizeof y, "%s/%s", b, oe->d_name);
          rc = cslim_copy_file(x, y);
        }
        if (od) closedir(od);
      }
      continue;
    }
    if (n[0] == '.' || cslim_ends_with(n, ".safetensors") || cslim_ends_with(n, "index.json") ||
        !strncmp(n, "quant_model_description", 23) || strstr(n, "quant_model_description"))
      continue;
    if (!(cslim_ends_with(n, ".json") || cslim_ends_with(n, ".py") || cslim_ends_with(n, ".txt") || cslim_ends_with(n, ".jinja") ||
          cslim_ends_with(n, ".model") || cslim_ends_with(n, ".tiktoken") || cslim_ends_with(n, ".yaml")))
      continue;
    char a[4352], b[4352];
    snprintf(a, sizeof a, "%s/%s", src, n);
    snprintf(b, sizeof b, "%s/%s", dst, n);
    struct stat sb;
    if (stat(b, &sb) == 0) continue;
    rc = cslim_copy_file(a, b);
  }
  closedir(d);
  return rc;
}

cslim_status cslim_convert(const cslim_convert_params *p, cslim_convert_report *rep) {
  memset(rep, 0, sizeof *rep);
  double t0 = cslim_now();
  if (p->target == CSLIM_TARGET_NONE) return cslim_error(CSLIM_ERR_INVALID, "--target: vllm-ascend, vllm-mindspore or mindie");
  if (p->target == CSLIM_TARGET_VLLM_MINDSPORE && p->soc != 310 && p->soc != 910)
    return cslim_error(CSLIM_ERR_INVALID, "--soc %d: 310 or 910", p->soc);
  conv c = {p, NULL, NULL, {0}, CSLIM_BF16, NULL, 0};
  cslim_staging *sg = NULL;
  cslim_st_writer *w = NULL;
  cslim_status rc = cslim_config_load(p->model_path, &c.cfg);
  if (!rc) rc = cslim_st_open(p->model_path, &c.st);
  if (!rc) rc = cslim_qdesc_load(p->model_path, &c.d);
  if (!rc && !c.d) rc = cslim_error(CSLIM_ERR_INVALID, "%s: no quant_model_description*.json: not a quantized checkpoint",
                                    p->model_path);
  c.serve = c.cfg.dtype;
  if (!rc && p->target == CSLIM_TARGET_VLLM_MINDSPORE && p->soc == 310 && c.serve != CSLIM_F16)
    rc = cslim_error(CSLIM_ERR_UNSUPPORTED, "%s is %s: the 310 serves float16 only (quantize with --save_dtype "
                     "float16, or quant-vl --torch_dtype fp16)", p->model_path, cslim_dtype_name(c.serve));
  if (!rc) rc = plan(&c, rep);
  cslim_qtype mqt = CSLIM_QT_W8A8; /* the file name's type when the description names none */
  if (c.d) cslim_qdesc_model_type(c.d, &mqt);
  const char *mqt_low = cslim_scheme_get(mqt)->name;
  if (!rc) rc = cslim_staging_open(p->save_path, p->overwrite, &sg);
  char base[96], file[128];
  if (p->target == CSLIM_TARGET_VLLM_ASCEND) snprintf(base, sizeof base, "quant_model_weights");
  else snprintf(base, sizeof base, "quant_model_weight_%s", mqt_low);
  snprintf(file, sizeof file, "%s.safetensors", base);
  if (!rc) rc = cslim_st_writer_create(cslim_staging_path(sg), base, 0, &w);
  for (int i = 0; !rc && i < c.n; i++) rc = cslim_st_writer_declare(w, c.o[i].name, c.o[i].dtype, c.o[i].ndim, c.o[i].shape);
  if (!rc) rc = cslim_st_writer_begin(w);
  for (int i = 0; !rc && i < c.n; i++) {
    void *buf;
    rc = produce(&c, &c.o[i], &buf);
    if (!rc) rc = cslim_st_writer_put(w, c.o[i].name, buf ? buf : c.o[i].src->data);
    free(buf);
    if (rc) cslim_error_context("%s", c.o[i].name);
  }
  if (!rc) rc = cslim_st_writer_finish(w);
  uint64_t total = 0;
  for (int i = 0; i < c.n; i++) {
    int64_t ne = 1;
    for (int j = 0; j < c.o[i].ndim; j++) ne *= c.o[i].shape[j];
    total += (uint64_t)ne * cslim_dtype_size(c.o[i].dtype);
  }
  char path[4352];
  if (!rc) {
    if (p->target == CSLIM_TARGET_MINDIE)
      snprintf(path, sizeof path, "%s/quant_model_description_%s.json", cslim_staging_path(sg), mqt_low);
    else
      snprintf(path, sizeof path, "%s/quant_model_description.json", cslim_staging_path(sg));
    rc = write_description(&c, path, mqt_low);
  }
  if (!rc) rc = write_config(&c, cslim_staging_path(sg), mqt_low);
  if (!rc && p->target == CSLIM_TARGET_VLLM_MINDSPORE) rc = write_index(&c, cslim_staging_path(sg), file, total);
  if (!rc) rc = copy_missing(p->model_path, cslim_staging_path(sg));
  if (!rc && p->source) rc = copy_missing(p->source, cslim_staging_path(sg));
  if (!rc) {
    snprintf(rep->out_dir, sizeof rep->out_dir, "%s", cslim_staging_target(sg));
    rc = cslim_staging_commit(sg);
    sg = NULL;
  }
  if (sg) cslim_staging_abort(sg);
  cslim_st_writer_free(w);
  rep->n_tensors = c.n;
  free(c.o);
  cslim_qdesc_free(c.d);
  cslim_st_close(c.st);
  rep->seconds = cslim_now() - t0;
  return rc;
}
