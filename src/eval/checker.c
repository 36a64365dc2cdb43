/* cslim check: validate a quantized checkpoint the way each engine reads it
 * (engines.md §1–§2, the checker recipe §5). Every problem is one item:
 * an error when the engine fails or computes garbage, a warning when it
 * loads with an accuracy risk. With the float source, the weights are
 * compared Linear by Linear and a few prompts end to end. */
#include "cslim/deploy.h"

#include "core/strutil.h"
#include "cslim/config.h"
#include "cslim/dtype.h"
#include "cslim/model.h"
#include "cslim/safetensors.h"
#include "cslim/scheme.h"
#include "cslim/tokenizer.h"
#include "export/exporter.h"
#include "io/json_util.h"
#include "quant/verify.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct ck {
  const cslim_check_params *p;
  cslim_check_report *r;
  cslim_config cfg;
  int have_cfg;
  cslim_st *st;
  cJSON *desc;
  char desc_path[4352];
  int nomem;
} ck;

static void add(ck *c, int error, const char *where, const char *fmt, ...) {
  cslim_check_report *r = c->r;
  if (c->nomem) return;
  cslim_check_item *it = realloc(r->items, (size_t)(r->n + 1) * sizeof *it);
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (!it) {
    c->nomem = 1;
    return;
  }
  r->items = it;
  it[r->n].error = error;
  it[r->n].where = strdup(where ? where : "");
  it[r->n].what = strdup(msg);
  r->n++;
  if (error) r->n_errors++;
  else r->n_warnings++;
}
#define ERR(c, w, ...) add(c, 1, w, __VA_ARGS__)
#define WARN(c, w, ...) add(c, 0, w, __VA_ARGS__)

void cslim_check_report_free(cslim_check_report *r) {
  for (int i = 0; i < r->n; i++) free(r->items[i].where), free(r->items[i].what);
  free(r->items);
  memset(r, 0, sizeof *r);
}

static const char *label_of(const ck *c, const char *name) {
  const cJSON *e = cJSON_GetObjectItemCaseSensitive(c->desc, name);
  return cJSON_IsString(e) ? e->valuestring : NULL;
}

static int is_global_key(const char *k) { return !strchr(k, '.'); }

/* ---- files ----------------------------------------------------------------------------------------- */

static void check_files(ck *c) {
  const char *dir = c->p->model_path;
  const cslim_target T = c->p->target;
  DIR *d = opendir(dir);
  if (!d) {
    ERR(c, dir, "cannot open the directory");
    return;
  }
  int n_suffix = 0, exact = 0, legacy = 0;
  char legacy_name[256] = "";
  struct dirent *de;
  while ((de = readdir(d))) {
    const char *n = de->d_name;
    if (cslim_ends_with(n, "quant_model_description.json")) n_suffix++;
    if (!strcmp(n, "quant_model_description.json")) exact = 1;
    else if (!strncmp(n, "quant_model_description_", 24) && cslim_ends_with(n, ".json"))
      legacy = 1, snprintf(legacy_name, sizeof legacy_name, "%s", n);
  }
  closedir(d);
  if (n_suffix > 1)
    ERR(c, dir, "%d files end with quant_model_description.json: vLLM's config lookup then fails (\"multiple config "
        "files\"); keep one", n_suffix);
  if (exact) snprintf(c->desc_path, sizeof c->desc_path, "%s/quant_model_description.json", dir);
  else if (legacy) snprintf(c->desc_path, sizeof c->desc_path, "%s/%s", dir, legacy_name);
  if (!exact && !legacy) {
    ERR(c, dir, "no quant_model_description.json: not a quantized checkpoint the engines recognise");
  } else if (!exact && T != CSLIM_TARGET_MINDIE) {
    ERR(c, legacy_name, "vLLM-Ascend and vllm-mindspore look for quant_model_description.json by name; only MindIE "
        "reads the legacy %s (cslim convert --target %s renames it)", legacy_name, cslim_target_name(T ? T : CSLIM_TARGET_VLLM_ASCEND));
  }
  if (c->desc_path[0]) {
    if (cslim_json_load_file(c->desc_path, &c->desc) || !cJSON_IsObject(c->desc)) {
      ERR(c, c->desc_path, "%s", cJSON_IsObject(c->desc) ? "" : cslim_errmsg());
      cJSON_Delete(c->desc);
      c->desc = NULL;
    }
  }
  /* config.json */
  char p[4352];
  snprintf(p, sizeof p, "%s/config.json", dir);
  cJSON *cj = NULL;
  if (cslim_json_load_file(p, &cj)) {
    ERR(c, "config.json", "%s", cslim_errmsg());
  } else {
    cJSON *tc = cJSON_GetObjectItemCaseSensitive(cj, "text_config");
    if (T != CSLIM_TARGET_MINDIE && (cJSON_HasObjectItem(cj, "quantization_config") ||
                                     (cJSON_IsObject(tc) && cJSON_HasObjectItem(tc, "quantization_config"))))
      ERR(c, "config.json", "has a quantization_config: vLLM reads it instead of quant_model_description.json");
    if (cJSON_HasObjectItem(cj, "compression_config")) ERR(c, "config.json", "has a compression_config");
    cJSON_Delete(cj);
    if (cslim_config_load(dir, &c->cfg)) ERR(c, "config.json", "%s", cslim_errmsg());
    else c->have_cfg = 1;
    if (c->have_cfg && c->cfg.dtype != CSLIM_BF16 && c->cfg.dtype != CSLIM_F16)
      ERR(c, "config.json", "dtype %s: the engines serve bfloat16 or float16", cslim_dtype_name(c->cfg.dtype));
    if (c->have_cfg && T == CSLIM_TARGET_VLLM_MINDSPORE && c->p->soc == 310 && c->cfg.dtype != CSLIM_F16)
      ERR(c, "config.json", "dtype %s: the 310 serves float16 only", cslim_dtype_name(c->cfg.dtype));
  }
  /* the tokenizer */
  snprintf(p, sizeof p, "%s/tokenizer.json", dir);
  struct stat sb;
  if (stat(p, &sb)) WARN(c, "tokenizer.json", "missing: the engine needs the tokenizer files (cslim convert --source)");
}

/* model.safetensors.index.json: files exist, every tensor listed where it is */
static void check_index(ck *c) {
  char p[4352];
  snprintf(p, sizeof p, "%s/model.safetensors.index.json", c->p->model_path);
  struct stat sb;
  if (stat(p, &sb)) return;
  cJSON *ix = NULL;
  if (cslim_json_load_file(p, &ix)) {
    ERR(c, "model.safetensors.index.json", "%s", cslim_errmsg());
    return;
  }
  cJSON *wm = cJSON_GetObjectItemCaseSensitive(ix, "weight_map");
  if (!cJSON_IsObject(wm)) ERR(c, "model.safetensors.index.json", "no weight_map object");
  for (cJSON *e = cJSON_IsObject(wm) ? wm->child : NULL; e; e = e->next) {
    if (!cJSON_IsString(e)) continue;
    char f[4352];
    snprintf(f, sizeof f, "%s/%s", c->p->model_path, e->valuestring);
    if (stat(f, &sb)) {
      ERR(c, "model.safetensors.index.json", "maps %s to %s, which does not exist (vLLM keeps only the files the "
          "index lists)", e->string, e->valuestring);
      break;
    }
  }
  /* every tensor of every file is listed, at its file */
  DIR *d = opendir(c->p->model_path);
  struct dirent *de;
  while (d && (de = readdir(d))) {
    if (!cslim_ends_with(de->d_name, ".safetensors")) continue;
    char f[4352];
    snprintf(f, sizeof f, "%s/%s", c->p->model_path, de->d_name);
    cslim_st *one = NULL;
    if (cslim_st_open(f, &one)) continue; /* reported by the open of the whole set */
    for (size_t i = 0; i < cslim_st_count(one); i++) {
      const cslim_tensor *t = cslim_st_at(one, i);
      cJSON *m = cJSON_IsObject(wm) ? cJSON_GetObjectItemCaseSensitive(wm, t->name) : NULL;
      if (!cJSON_IsString(m)) {
        ERR(c, t->name, "in %s but not in model.safetensors.index.json: vLLM drops it", de->d_name);
        break;
      }
      if (strcmp(m->valuestring, de->d_name)) {
        ERR(c, t->name, "the index maps it to %s, but it is in %s", m->valuestring, de->d_name);
        break;
      }
    }
    cslim_st_close(one);
  }
  if (d) closedir(d);
  cJSON_Delete(ix);
}

/* ---- description and tensors -------------------------------------------------------------------- */

static const char *const k_globals[] = {"model_quant_type", "version", "group_size", "kv_cache_type", "kv_quant_type",
                                        "fa_quant_type", "reduce_quant_type", "metadata", "optional", "device_type",
                                        "indexer_quant_type", NULL};

static void check_description(ck *c) {
  int counts[CSLIM_QT_COUNT] = {0};
  for (size_t i = 0; i < cslim_st_count(c->st); i++) {
    const cslim_tensor *t = cslim_st_at(c->st, i);
    if (!label_of(c, t->name)) ERR(c, t->name, "not in the description (every tensor needs a label)");
    if (t->ndim == 0) ERR(c, t->name, "a 0-d scalar: the engines' loaders need shape [1]");
  }
  for (cJSON *e = c->desc->child; e; e = e->next) {
    if (is_global_key(e->string)) {
      int known = 0;
      for (int i = 0; k_globals[i]; i++) known |= !strcmp(k_globals[i], e->string);
      if (!known && strncmp(e->string, "rank_", 5)) WARN(c, e->string, "unknown global key in the description");
      continue;
    }
    if (!cJSON_IsString(e)) {
      ERR(c, e->string, "label is not a string");
      continue;
    }
    cslim_qtype t;
    if (cslim_scheme_parse(e->valuestring, &t) != 0 && strcmp(e->valuestring, "C8")) {
      ERR(c, e->string, "label '%s' is not one the engines know", e->valuestring);
      continue;
    }
    if (!cslim_st_find(c->st, e->string)) ERR(c, e->string, "described but not in any safetensors file");
    if (cslim_ends_with(e->string, ".weight") && cslim_scheme_parse(e->valuestring, &t) == 0) counts[t]++;
  }
  const cJSON *mqt = cJSON_GetObjectItemCaseSensitive(c->desc, "model_quant_type");
  cslim_qtype want = cslim_model_quant_type(counts), got;
  if (!cJSON_IsString(mqt)) ERR(c, "model_quant_type", "missing (MindIE chooses its global paths by it)");
  else if (cslim_scheme_parse(mqt->valuestring, &got) != 0 || (got != want && counts[got] == 0))
    ERR(c, "model_quant_type", "'%s', but the Linears are labelled up to %s", mqt->valuestring,
        cslim_scheme_get(want)->label);
  const cJSON *ver = cJSON_GetObjectItemCaseSensitive(c->desc, "version");
  if (counts[CSLIM_QT_W4A8_DYNAMIC] && !(cJSON_IsString(ver) && !strcmp(ver->valuestring, "1.0.0")))
    ERR(c, "version", "must be \"1.0.0\" with packed W4A8_DYNAMIC weights (other versions are read unpacked)");
  const cJSON *gs = cJSON_GetObjectItemCaseSensitive(c->desc, "group_size");
  if (c->p->target == CSLIM_TARGET_VLLM_ASCEND && counts[CSLIM_QT_W4A8_DYNAMIC] && !cJSON_IsNumber(gs))
    ERR(c, "group_size", "missing: vLLM-Ascend then assumes 256 for W4A8");
  if (gs && !cJSON_IsNumber(gs)) ERR(c, "group_size", "not a number");
}

/* ---- Linears ---------------------------------------------------------------------------------------- */

/* [n, k] of Linear `lin` from config.json (0 when unknown) */
static void linear_dims(const ck *c, const char *lin, int64_t *n, int64_t *k) {
  *n = *k = 0;
  if (!c->have_cfg) return;
  const cslim_text_config *t = &c->cfg.text;
  const cslim_vision_config *v = &c->cfg.vision;
  int expert = strstr(lin, ".experts.") != NULL;
  int64_t H = t->hidden_size, I = expert ? t->moe_intermediate_size : t->intermediate_size;
  if (cslim_ends_with(lin, ".q_proj")) *n = (int64_t)t->num_heads * t->head_dim, *k = H;
  else if (cslim_ends_with(lin, ".k_proj") || cslim_ends_with(lin, ".v_proj")) *n = (int64_t)t->num_kv_heads * t->head_dim, *k = H;
  else if (cslim_ends_with(lin, ".o_proj")) *n = H, *k = (int64_t)t->num_heads * t->head_dim;
  else if (cslim_ends_with(lin, ".gate_proj") || cslim_ends_with(lin, ".up_proj")) *n = I, *k = H;
  else if (cslim_ends_with(lin, ".down_proj")) *n = H, *k = I;
  else if (cslim_ends_with(lin, ".mlp.gate")) *n = t->num_experts, *k = H;
  else if (c->cfg.has_vision && strstr(lin, "visual.")) {
    int64_t D = v->hidden_size, W = D * v->spatial_merge_size * v->spatial_merge_size;
    int merger = strstr(lin, "merger") != NULL;
    if (cslim_ends_with(lin, ".attn.qkv")) *n = 3 * D, *k = D;
    else if (cslim_ends_with(lin, ".attn.proj")) *n = D, *k = D;
    else if (cslim_ends_with(lin, ".linear_fc1")) *n = merger ? W : v->intermediate_size, *k = merger ? W : D;
    else if (cslim_ends_with(lin, ".linear_fc2")) *n = merger ? v->out_hidden_size : D, *k = merger ? W : v->intermediate_size;
  }
}

static const char *const k_suffixes[] = {"weight", "input_scale", "input_offset", "deq_scale", "quant_bias",
                                         "weight_scale", "weight_offset", "weight_scale_second",
                                         "weight_offset_second", "scale_bias", "bias", NULL};

static int64_t numel(const cslim_tensor *t) { return t ? t->numel : 0; }

static void shape_str(const int64_t *sh, int nd, char *o, size_t cap) {
  size_t l = (size_t)snprintf(o, cap, "[");
  for (int i = 0; i < nd && l < cap; i++) l += (size_t)snprintf(o + l, cap - l, "%s%lld", i ? ", " : "", (long long)sh[i]);
  if (l < cap) snprintf(o + l, cap - l, "]");
}

static int is_float(cslim_dtype d) { return d == CSLIM_F32 || d == CSLIM_F16 || d == CSLIM_BF16; }

/* one static Linear (W8A8 / W8A8S / W8A8_MIX static part) */
static void check_static(ck *c, const char *lin, cslim_qtype lab, int64_t n, int64_t k) {
  const cslim_target T = c->p->target;
  const int ms = T == CSLIM_TARGET_VLLM_MINDSPORE;
  char nm[600];
  const cslim_tensor *w = cslim_st_findf(c->st, "%s.weight", lin), *is = cslim_st_findf(c->st, "%s.input_scale", lin),
                     *io = cslim_st_findf(c->st, "%s.input_offset", lin), *dq = cslim_st_findf(c->st, "%s.deq_scale", lin),
                     *qb = cslim_st_findf(c->st, "%s.quant_bias", lin), *b = cslim_st_findf(c->st, "%s.bias", lin);
  if (!is || !io || !dq || !qb) {
    snprintf(nm, sizeof nm, "%s.%s", lin, !is ? "input_scale" : !io ? "input_offset" : !dq ? "deq_scale" : "quant_bias");
    ERR(c, nm, "missing: %s needs weight, input_scale, input_offset, deq_scale and quant_bias (the engine would run "
        "with uninitialised memory)", cslim_scheme_get(lab)->label);
    return;
  }
  int64_t vec = ms ? k : 1;
  if (numel(is) != vec || is->ndim != 1 || !is_float(is->dtype)) {
    snprintf(nm, sizeof nm, "%s.input_scale", lin);
    ERR(c, nm, "%s with %lld values: %s expects a float [%lld]", cslim_dtype_name(is->dtype), (long long)numel(is),
        cslim_target_name(T), (long long)vec);
  }
  if (numel(io) != vec || io->ndim != 1) {
    snprintf(nm, sizeof nm, "%s.input_offset", lin);
    ERR(c, nm, "%lld values: %s expects [%lld]", (long long)numel(io), cslim_target_name(T), (long long)vec);
  }
  float s = numel(is) ? cslim_tensor_f32_at(is, 0) : 0, o = numel(io) ? cslim_tensor_f32_at(io, 0) : 0;
  snprintf(nm, sizeof nm, "%s.input_scale", lin);
  if (!(s > 0) || !isfinite(s)) ERR(c, nm, "%g: scales must be finite and positive", s);
  for (int64_t i = 1; i < numel(is); i++)
    if (cslim_tensor_f32_at(is, i) != s) {
      ERR(c, nm, "entries differ (%g, %g): one per-tensor scale broadcast", s, cslim_tensor_f32_at(is, i));
      break;
    }
  snprintf(nm, sizeof nm, "%s.input_offset", lin);
  if (o != nearbyintf(o) || o < -128 || o > 127) ERR(c, nm, "%g: must be an integer in [-128, 127]", o);
  /* deq_scale */
  snprintf(nm, sizeof nm, "%s.deq_scale", lin);
  cslim_dtype want = ms ? CSLIM_F32 : (c->have_cfg && c->cfg.dtype == CSLIM_BF16) ? CSLIM_F32 : CSLIM_I64;
  if (numel(dq) != n || dq->ndim != 1) ERR(c, nm, "%lld values, expected [%lld]", (long long)numel(dq), (long long)n);
  else if (dq->dtype != CSLIM_F32 && dq->dtype != CSLIM_I64)
    ERR(c, nm, "%s: must be float32 or int64", cslim_dtype_name(dq->dtype));
  else if (T != CSLIM_TARGET_MINDIE && T != CSLIM_TARGET_NONE && dq->dtype != want)
    ERR(c, nm, "%s, but %s serving %s loads %s (a numeric cast: garbage)", cslim_dtype_name(dq->dtype),
        cslim_target_name(T), c->have_cfg ? cslim_dtype_name(c->cfg.dtype) : "?", cslim_dtype_name(want));
  float *deq = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
  int deq_ok = deq && numel(dq) == n && (dq->dtype == CSLIM_F32 || dq->dtype == CSLIM_I64);
  for (int64_t i = 0; deq_ok && i < n; i++) {
    if (dq->dtype == CSLIM_I64) {
      int64_t v;
      memcpy(&v, (const char *)dq->data + 8 * (size_t)i, 8);
      if (v >> 32) {
        ERR(c, nm, "row %lld: int64 value with upper bits set: not a float32 bit pattern", (long long)i);
        deq_ok = 0;
        break;
      }
    }
    deq[i] = cslim_deq_scale_at(dq, i);
    if (!(deq[i] > 0) || !isfinite(deq[i])) {
      ERR(c, nm, "row %lld: %g: scales must be finite and positive", (long long)i, deq[i]);
      deq_ok = 0;
      break;
    }
  }
  /* quant_bias: the definition (engines.md §2.2) */
  snprintf(nm, sizeof nm, "%s.quant_bias", lin);
  if (qb->dtype != CSLIM_I32 || numel(qb) != n) {
    ERR(c, nm, "%s [%lld]: must be int32 [%lld]", cslim_dtype_name(qb->dtype), (long long)numel(qb), (long long)n);
  } else if (deq_ok && w && w->dtype == CSLIM_I8 && w->ndim == 2 && w->shape[1] == k && w->shape[0] == n &&
             o == nearbyintf(o)) {
    char bn[600];
    snprintf(bn, sizeof bn, "%s.bias", lin);
    const char *bl = b ? label_of(c, bn) : NULL;
    int folded = b && (!bl || !strcmp(bl, "FLOAT"));
    for (int64_t r = 0; r < n; r++) {
      int64_t sum = 0;
      const int8_t *row = (const int8_t *)w->data + (size_t)r * k;
      for (int64_t j = 0; j < k; j++) sum += row[j];
      double expect = -(double)o * (double)sum + (folded ? (double)(cslim_tensor_f32_at(b, r) / deq[r]) : 0.0);
      int32_t got;
      memcpy(&got, (const char *)qb->data + 4 * (size_t)r, 4);
      if (fabs((double)got - expect) > (folded ? 0.5 + 1e-6 : 0.0)) {
        ERR(c, nm, "row %lld: %d, but -input_offset * sum(weight)%s = %.1f", (long long)r, got,
            folded ? " + bias / deq_scale" : "", expect);
        break;
      }
    }
    if (b && ms && folded)
      ERR(c, bn, "labelled FLOAT and folded into quant_bias: vllm-mindspore adds the bias after the matmul (counted "
          "twice) and rejects a FLOAT tensor inside a %s Linear", cslim_scheme_get(lab)->label);
    if (b && !ms && !folded)
      ERR(c, bn, "labelled %s and not folded into quant_bias: vLLM-Ascend / MindIE ignore a static Linear's bias",
          bl ? bl : "?");
  }
  free(deq);
}

static void check_linear(ck *c, const char *lin, cslim_qtype lab) {
  c->r->n_linears++;
  char nm[600];
  int64_t n, k;
  linear_dims(c, lin, &n, &k);
  const cslim_tensor *w = cslim_st_findf(c->st, "%s.weight", lin);
  if (!w) return;
  if (!n) n = lab == CSLIM_QT_W4A8_DYNAMIC ? w->shape[0] * 2 : w->shape[0];
  if (!k) k = w->ndim == 2 ? w->shape[1] : 0;
  snprintf(nm, sizeof nm, "%s.weight", lin);
  if (lab == CSLIM_QT_FLOAT) return;
  const cslim_scheme *sc = cslim_scheme_get(lab);
  /* the tensor set: required present, nothing else (engines.md §5.2 rule 14) */
  const cJSON *gs = cJSON_GetObjectItemCaseSensitive(c->desc, "group_size");
  int group = cJSON_IsNumber(gs) ? gs->valueint : 0;
  for (int i = 0; i < sc->n_tensors; i++) {
    const cslim_scheme_tensor *st = &sc->tensors[i];
    if (st->per_group_only && group <= 0) continue;
    const cslim_tensor *t = cslim_st_findf(c->st, "%s.%s", lin, st->suffix);
    snprintf(nm, sizeof nm, "%s.%s", lin, st->suffix);
    if (!t) {
      if (lab == CSLIM_QT_W8A8 && (!strcmp(st->suffix, "weight_scale") || !strcmp(st->suffix, "weight_offset"))) continue;
      ERR(c, nm, "missing (a %s Linear needs it)", sc->label);
      continue;
    }
    int64_t shape[CSLIM_MAX_DIMS];
    int nd = cslim_scheme_tensor_shape(st, n, k, group, cslim_linear_is_row_parallel(lin) ? 16 : 1, shape);
    int static_param = !strcmp(st->suffix, "input_scale") || !strcmp(st->suffix, "input_offset") ||
                       !strcmp(st->suffix, "deq_scale") || !strcmp(st->suffix, "quant_bias");
    if (!static_param) {
      int same = t->ndim == nd;
      for (int d = 0; same && d < nd; d++) same = t->shape[d] == shape[d];
      if (!same) {
        char a[64], b[64];
        shape_str(t->shape, t->ndim, a, sizeof a);
        shape_str(shape, nd, b, sizeof b);
        ERR(c, nm, "shape %s, expected %s for %s", a, b, sc->label);
      }
      else if (st->dtype_rule == CSLIM_DT_FIXED && t->dtype != st->dtype)
        ERR(c, nm, "%s, expected %s", cslim_dtype_name(t->dtype), cslim_dtype_name(st->dtype));
    }
    if (!strncmp(st->suffix, "weight_scale", 12) && is_float(t->dtype))
      for (int64_t j = 0; j < t->numel; j++) {
        float v = cslim_tensor_f32_at(t, j);
        if (!(v > 0) || !isfinite(v)) {
          ERR(c, nm, "entry %lld is %g: scales must be finite and positive", (long long)j, v);
          break;
        }
      }
    if (!strncmp(st->suffix, "weight_offset", 13) && is_float(t->dtype))
      for (int64_t j = 0; j < t->numel; j++)
        if (cslim_tensor_f32_at(t, j) != 0.0f) {
          ERR(c, nm, "entry %lld is %g: weight offsets must be zero (vLLM-Ascend ignores them, MindIE negates them)",
              (long long)j, cslim_tensor_f32_at(t, j));
          break;
        }
  }
  /* extra tensors the scheme does not register (KeyError in vLLM's loaders) */
  for (int s = 0; k_suffixes[s]; s++) {
    if (!strcmp(k_suffixes[s], "bias")) continue;
    int known = 0;
    for (int i = 0; i < sc->n_tensors; i++) known |= !strcmp(sc->tensors[i].suffix, k_suffixes[s]);
    if (!known && cslim_st_findf(c->st, "%s.%s", lin, k_suffixes[s])) {
      snprintf(nm, sizeof nm, "%s.%s", lin, k_suffixes[s]);
      ERR(c, nm, "a %s Linear has no %s: the engine's loader has no parameter for it", sc->label, k_suffixes[s]);
    }
  }
  /* the labels of the Linear's tensors */
  for (int s = 0; k_suffixes[s]; s++) {
    snprintf(nm, sizeof nm, "%s.%s", lin, k_suffixes[s]);
    const char *l = label_of(c, nm);
    if (!l) continue;
    int bias = !strcmp(k_suffixes[s], "bias");
    if (!bias && strcmp(l, sc->label)) ERR(c, nm, "labelled %s inside a %s Linear", l, sc->label);
  }
  if (sc->act == CSLIM_ACT_STATIC || sc->act == CSLIM_ACT_PDMIX) check_static(c, lin, lab, n, k);
  if (lab == CSLIM_QT_W4A8_DYNAMIC) { /* scale_bias = 8 * sum(q * s) over the unpacked codes */
    const cslim_tensor *ws = cslim_st_findf(c->st, "%s.weight_scale", lin), *sb = cslim_st_findf(c->st, "%s.scale_bias", lin);
    snprintf(nm, sizeof nm, "%s.scale_bias", lin);
    if (ws && sb && w->ndim == 2 && w->shape[0] * 2 == n && ws->numel == n && is_float(sb->dtype)) {
      int chunks = (int)(sb->numel / n);
      int8_t *row = malloc((size_t)k);
      float *want = malloc((size_t)(chunks > 0 ? chunks : 1) * sizeof(float));
      for (int64_t r = 0; row && want && chunks > 0 && r < n; r++) {
        cslim_int4_unpack_row(w->data, k, r, row);
        cslim_scale_bias_of(row, (int)k, cslim_tensor_f32_at(ws, r), NULL, 0, chunks, want);
        for (int ch = 0; ch < chunks; ch++) {
          float got = cslim_tensor_f32_at(sb, r * chunks + ch);
          if (fabsf(got - want[ch]) > 1e-5f * (fabsf(want[ch]) + 1e-3f)) {
            ERR(c, nm, "row %lld: %g, but 8 * sum(q * s) of the unpacked weight is %g (packed nibbles swapped, or the "
                "scale does not belong to these codes)", (long long)r, got, want[ch]);
            r = n;
            break;
          }
        }
      }
      free(row), free(want);
    }
  }
}

/* every module the engine builds has <module>.weight described; fused groups agree */
static void check_modules(ck *c) {
  if (!c->have_cfg) return;
  const cslim_text_config *t = &c->cfg.text;
  const char *tp = c->cfg.text_prefix; /* "model." or "model.language_model." */
  char nm[600], a[600];
  snprintf(nm, sizeof nm, "%sembed_tokens.weight", tp);
  if (!label_of(c, nm)) ERR(c, nm, "not described: every module the engine builds needs its .weight key");
  if (!t->tie_word_embeddings && !label_of(c, "lm_head.weight"))
    ERR(c, "lm_head.weight", "not described: every module the engine builds needs its .weight key");
  static const char *attn[] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj"};
  static const char *mlp[] = {"mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"};
  for (int l = 0; l < t->num_layers; l++) {
    const char *lq = NULL;
    for (int i = 0; i < 4; i++) {
      snprintf(nm, sizeof nm, "%slayers.%d.%s.weight", tp, l, attn[i]);
      const char *lb = label_of(c, nm);
      if (!lb) ERR(c, nm, "not described: every module the engine builds needs its .weight key");
      if (i == 0) lq = lb;
      else if (i < 3 && lb && lq && strcmp(lb, lq))
        ERR(c, nm, "labelled %s but q_proj %s: q/k/v are one fused Linear in the engine", lb, lq);
    }
    /* q/k/v (and gate/up) share one input: identical input_scale / input_offset */
    static const char *fused[2][3] = {{"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"},
                                      {"mlp.gate_proj", "mlp.up_proj", NULL}};
    for (int g = 0; g < 2; g++)
      for (int s = 0; s < 2; s++) {
        const char *sfx = s ? "input_offset" : "input_scale";
        snprintf(a, sizeof a, "%slayers.%d.%s.%s", tp, l, fused[g][0], sfx);
        const cslim_tensor *t0 = cslim_st_find(c->st, a);
        for (int i = 1; t0 && i < 3 && fused[g][i]; i++) {
          snprintf(nm, sizeof nm, "%slayers.%d.%s.%s", tp, l, fused[g][i], sfx);
          const cslim_tensor *ti = cslim_st_find(c->st, nm);
          if (ti && (ti->nbytes != t0->nbytes || ti->dtype != t0->dtype || memcmp(ti->data, t0->data, t0->nbytes)))
            ERR(c, nm, "differs from %s: the fused Linear has one %s (vLLM keeps the last read, MindIE refuses)", a, sfx);
        }
      }
    if (cslim_layer_is_moe(t, l)) {
      snprintf(nm, sizeof nm, "%slayers.%d.mlp.gate.weight", tp, l);
      if (!label_of(c, nm)) ERR(c, nm, "not described (the router)");
      const char *l0 = NULL;
      for (int e = 0; e < t->num_experts; e++)
        for (int i = 0; i < 3; i++) {
          snprintf(nm, sizeof nm, "%slayers.%d.mlp.experts.%d.%s.weight", tp, l, e, mlp[i] + 4);
          const char *lb = label_of(c, nm);
          if (!lb) {
            ERR(c, nm, "not described: every expert needs its keys");
            continue;
          }
          if (!l0) l0 = lb;
          else if (strcmp(lb, l0)) {
            ERR(c, nm, "labelled %s, but expert 0's gate_proj is %s: the engine quantizes all experts of a layer one way",
                lb, l0);
            e = t->num_experts;
            break;
          }
        }
    } else {
      const char *lg = NULL;
      for (int i = 0; i < 3; i++) {
        snprintf(nm, sizeof nm, "%slayers.%d.%s.weight", tp, l, mlp[i]);
        const char *lb = label_of(c, nm);
        if (!lb) ERR(c, nm, "not described: every module the engine builds needs its .weight key");
        if (i == 0) lg = lb;
        else if (i == 1 && lb && lg && strcmp(lb, lg))
          ERR(c, nm, "labelled %s but gate_proj %s: gate/up are one fused Linear in the engine", lb, lg);
      }
    }
  }
  if (c->cfg.has_vision) {
    const cslim_vision_config *v = &c->cfg.vision;
    static const char *blk[] = {"attn.qkv", "attn.proj", "mlp.linear_fc1", "mlp.linear_fc2"};
    for (int b = 0; b < v->depth; b++)
      for (int i = 0; i < 4; i++) {
        snprintf(nm, sizeof nm, "model.visual.blocks.%d.%s.weight", b, blk[i]);
        if (!label_of(c, nm)) ERR(c, nm, "not described: the engine builds every vision block");
      }
    for (int i = 0; i < 2; i++) {
      snprintf(nm, sizeof nm, "model.visual.merger.linear_fc%d.weight", i + 1);
      if (!label_of(c, nm)) ERR(c, nm, "not described (the merger)");
      for (int j = 0; j < v->n_deepstack; j++) {
        snprintf(nm, sizeof nm, "model.visual.deepstack_merger_list.%d.linear_fc%d.weight", j, i + 1);
        if (!label_of(c, nm)) ERR(c, nm, "not described (a deepstack merger)");
      }
    }
  }
}

/* labels the target can serve (engines.md §1.3, §1.5) */
static void check_registry(ck *c, const char *lin, cslim_qtype lab) {
  const cslim_target T = c->p->target;
  int expert = strstr(lin, ".experts.") != NULL;
  char nm[600];
  snprintf(nm, sizeof nm, "%s.weight", lin);
  if (lab == CSLIM_QT_FLOAT) return;
  if (T == CSLIM_TARGET_VLLM_MINDSPORE) {
    if (lab != CSLIM_QT_W8A8 && lab != CSLIM_QT_W8A8S)
      ERR(c, nm, "%s: vllm-mindspore serves FLOAT, W8A8 and W8A8S only", cslim_scheme_get(lab)->label);
    else if (expert) ERR(c, nm, "vllm-mindspore cannot start a MoE model with quantized experts");
  } else if (T == CSLIM_TARGET_VLLM_ASCEND) {
    if (expert && lab != CSLIM_QT_W8A8_DYNAMIC && lab != CSLIM_QT_W4A8_DYNAMIC)
      ERR(c, nm, "%s experts: vLLM-Ascend's MoE runs W8A8_DYNAMIC and W4A8_DYNAMIC only", cslim_scheme_get(lab)->label);
    if (!expert && lab == CSLIM_QT_W4A8_DYNAMIC)
      WARN(c, nm, "W4A8_DYNAMIC on a dense Linear: only older vLLM-Ascend (v0.9 .. v0.25) load it, as weight-only");
    if (lab == CSLIM_QT_W8A8S || lab == CSLIM_QT_W8A8SC)
      WARN(c, nm, "%s runs on the 310P build of vLLM-Ascend only", cslim_scheme_get(lab)->label);
  }
}

static void check_values(ck *c) {
  for (size_t i = 0; i < cslim_st_count(c->st); i++) {
    const cslim_tensor *t = cslim_st_at(c->st, i);
    if (!is_float(t->dtype)) continue;
    float buf[4096];
    for (int64_t o = 0; o < t->numel; o += 4096) {
      int64_t m = t->numel - o < 4096 ? t->numel - o : 4096;
      cslim_convert_to_f32(t->dtype, (const char *)t->data + (size_t)o * cslim_dtype_size(t->dtype), buf, (size_t)m);
      int64_t j = 0;
      while (j < m && isfinite(buf[j])) j++;
      if (j < m) {
        ERR(c, t->name, "entry %lld is %g: every float tensor must be finite", (long long)(o + j), buf[j]);
        break;
      }
    }
  }
}

/* ---- with the float source ------------------------------------------------------------------------ */

static void check_against_source(ck *c) {
  cslim_st *fs = NULL;
  if (cslim_st_open(c->p->source, &fs)) {
    ERR(c, c->p->source, "%s", cslim_errmsg());
    return;
  }
  /* per Linear: the dequantized weight against the float one */
  for (cJSON *e = c->desc->child; e; e = e->next) {
    if (is_global_key(e->string) || !cslim_ends_with(e->string, ".weight") || !cJSON_IsString(e)) continue;
    cslim_qtype lab;
    if (cslim_scheme_parse(e->valuestring, &lab) != 0 || lab == CSLIM_QT_FLOAT || lab == CSLIM_QT_W8A8SC) continue;
    char lin[600];
    snprintf(lin, sizeof lin, "%.*s", (int)(strlen(e->string) - 7), e->string);
    const cslim_tensor *fw = cslim_st_find(fs, e->string), *w = cslim_st_find(c->st, e->string);
    if (!fw || !w || w->dtype != CSLIM_I8 || fw->ndim != 2) continue;
    int64_t n = fw->shape[0], k = fw->shape[1];
    int packed = lab == CSLIM_QT_W4A8_DYNAMIC;
    if (w->numel != (packed ? n / 2 * k : n * k)) continue; /* shape errors are reported elsewhere */
    float *scale = malloc((size_t)n * sizeof(float)), *frow = malloc((size_t)k * sizeof(float));
    int8_t *qrow = malloc((size_t)k);
    const cslim_tensor *ws = cslim_st_findf(c->st, "%s.weight_scale", lin), *dq = cslim_st_findf(c->st, "%s.deq_scale", lin),
                       *is = cslim_st_findf(c->st, "%s.input_scale", lin);
    int ok = scale && frow && qrow;
    for (int64_t r = 0; ok && r < n; r++) {
      if (ws && ws->numel == n) scale[r] = cslim_tensor_f32_at(ws, r);
      else if (dq && is && dq->numel == n && is->numel >= 1) {
        scale[r] = cslim_deq_scale_at(dq, r) / cslim_tensor_f32_at(is, 0);
      } else {
        ok = 0;
      }
    }
    double num = 0, den = 0;
    for (int64_t r = 0; ok && r < n; r++) {
      cslim_convert_to_f32(fw->dtype, (const char *)fw->data + (size_t)r * k * cslim_dtype_size(fw->dtype), frow, (size_t)k);
      const int8_t *q = packed ? qrow : (const int8_t *)w->data + (size_t)r * k;
      if (packed) cslim_int4_unpack_row(w->data, k, r, qrow);
      for (int64_t j = 0; j < k; j++) {
        double d = (double)frow[j] - (double)q[j] * scale[r];
        num += d * d;
        den += (double)frow[j] * frow[j];
      }
    }
    free(scale), free(frow), free(qrow);
    if (!ok || den <= 0) continue;
    double rel = sqrt(num / den);
    if (rel > c->r->max_werr) {
      c->r->max_werr = rel;
      snprintf(c->r->max_werr_linear, sizeof c->r->max_werr_linear, "%s", lin);
    }
    if (rel > 0.5) /* a wrong scale or other codes: the Linear computes something else */
      ERR(c, e->string, "dequantized weight is %.0f %% away from the float one (a wrong scale, or codes of another "
          "weight)", 100 * rel);
  }
  cslim_st_close(fs);
  /* end to end: a few prompts, float model vs the checkpoint as the engine computes it */
  cslim_model *fm = NULL;
  cslim_tokenizer *tok = NULL;
  char tp[4352];
  snprintf(tp, sizeof tp, "%s/tokenizer.json", c->p->source);
  if (cslim_model_open(c->p->source, &fm) || cslim_tokenizer_load(tp, &tok)) {
    ERR(c, c->p->source, "%s", cslim_errmsg());
    cslim_model_close(fm);
    return;
  }
  static const char *prompts[] = {
      "The capital of France is Paris. The capital of Germany is",
      "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n",
      "Quantization maps floating-point weights to small integers so that",
      "Once upon a time, in a small village by the sea, there lived",
      "The Python interpreter reads the source file, compiles it to bytecode and",
      "Water boils at 100 degrees Celsius at sea level, but on a high mountain",
  };
  int np = c->p->prompts > 0 ? c->p->prompts : 4;
  np = np > 6 ? 6 : np;
  int32_t *ids = malloc(6 * 64 * sizeof(int32_t)); /* the sequences back to back */
  int lens[6], at = 0, ns = 0;
  for (int i = 0; ids && i < np; i++) {
    cslim_ids v = {0};
    if (cslim_tokenizer_encode(tok, prompts[i], strlen(prompts[i]), &v) == CSLIM_OK && v.n > 0) {
      lens[ns] = (int)(v.n < 64 ? v.n : 64);
      memcpy(ids + at, v.v, (size_t)lens[ns] * sizeof(int32_t));
      at += lens[ns++];
    }
    free(v.v);
  }
  np = ns;
  int64_t ntok = 0;
  if (ids && cslim_verify_checkpoint(fm, c->p->model_path, ids, lens, np, NULL, &c->r->kl, &c->r->top1, &ntok) == CSLIM_OK) {
    c->r->compared = 1;
    if (c->r->top1 < 0.5 || c->r->kl > 1.0)
      ERR(c, c->p->model_path, "loads, but answers differently from the float model: top-1 agreement %.0f %%, "
          "KL %.3f nats on %d prompts", 100 * c->r->top1, c->r->kl, np);
    else if (c->r->top1 < 0.8 || c->r->kl > 0.2)
      WARN(c, c->p->model_path, "top-1 agreement %.0f %%, KL %.3f nats against the float model", 100 * c->r->top1, c->r->kl);
  } else {
    ERR(c, c->p->model_path, "cannot be evaluated: %s", cslim_errmsg());
  }
  free(ids);
  cslim_tokenizer_free(tok);
  cslim_model_close(fm);
}

/* ---- entry ---------------------------------------------------------------------------------------- */

cslim_status cslim_check(const cslim_check_params *p, cslim_check_report *r) {
  memset(r, 0, sizeof *r);
  ck c = {p, r, {0}, 0, NULL, NULL, "", 0};
  check_files(&c);
  check_index(&c);
  if (cslim_st_open(p->model_path, &c.st)) {
    ERR(&c, p->model_path, "%s", cslim_errmsg());
  } else if (c.desc) {
    r->n_tensors = (int)cslim_st_count(c.st);
    check_description(&c);
    check_values(&c);
    check_modules(&c);
    for (cJSON *e = c.desc->child; e; e = e->next) {
      if (is_global_key(e->string) || !cslim_ends_with(e->string, ".weight") || !cJSON_IsString(e)) continue;
      cslim_qtype lab;
      if (cslim_scheme_parse(e->valuestring, &lab) != 0 || lab == CSLIM_QT_W8A8SC) continue;
      char lin[600];
      snprintf(lin, sizeof lin, "%.*s", (int)(strlen(e->string) - 7), e->string);
      if (lab == CSLIM_QT_FLOAT && !cslim_st_findf(c.st, "%s.deq_scale", lin) && !cslim_st_findf(c.st, "%s.weight_scale", lin))
        continue;
      if (lab == CSLIM_QT_FLOAT) {
        ERR(&c, e->string, "labelled FLOAT but the Linear carries quantization tensors (KeyError in vLLM's loader)");
        continue;
      }
      check_registry(&c, lin, lab);
      check_linear(&c, lin, lab);
    }
    if (p->source && !r->n_errors) check_against_source(&c);
  }
  cJSON_Delete(c.desc);
  cslim_st_close(c.st);
  return c.nomem ? cslim_error(CSLIM_ERR_NOMEM, "out of memory") : CSLIM_OK;
}
