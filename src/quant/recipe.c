/* Recipes: msModelSlim's YAML configs (spec §1.4) loaded with libyaml,
 * validated key by key (unknown keys and processors are errors naming the key
 * and its line) and turned into cslim_quant_params.
 *
 * The v1 process list maps onto one run of the layer-wise quantizer:
 *   quarot                         → rot (block_size → rot_block_size)
 *   iter_smooth / smooth_quant /   → one smoothing method (m4 / m1 / m6) with
 *   flex_smooth_quant                its subgraph types, α, scale_min, symmetric
 *   linear_quant, group            → ordered per-Linear rules (include globs
 *                                    minus exclude globs; first match wins;
 *                                    Linears no rule matches stay float)
 * v0 maps anti_cfg.anti_method → the method, calib_cfg → the default scheme,
 * calib_params.mix_cfg → rules, disable_names → rollback. Features the
 * quantizer does not have are recorded while loading and refused when the
 * recipe is applied, so every shipped recipe still loads and validates. */
#include "cslim/recipe.h"

#include "cslim/scheme.h"
#include "io/yaml_doc.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_RULES 64
#define MAX_NAMES 256

struct cslim_recipe {
  cslim_yaml *y;
  cslim_recipe_api api;
  const char *config_id;
  double score;
  cslim_recipe_label label;
  yaml_node_t *verified_types, *verified_tags;
  const char *dataset, *anti_dataset, *default_text;
  /* the run */
  cslim_qtype default_type;
  cslim_mix_rule rules[MAX_RULES];
  int n_rules;
  const char *excl[MAX_NAMES]; /* the rules' exclude lists, back to back */
  int n_excl;
  const char *disable[MAX_NAMES];
  int n_disable;
  cslim_anti_method anti;
  int anti_line;
  double alpha, scale_min;
  int shift;
  unsigned sg;
  int experts;
  int rot, rot_block;
  int act_method, w_method_set;
  cslim_wmethod w_method;
  int group_size;
  double part_file_size;
  int legacy_names, mindie_format;
  cslim_sparse_params sparse;
  char unsupported[320]; /* the first feature the quantizer lacks, with its line */
  char summary[512];
};

/* ---- small helpers ------------------------------------------------------------------------------ */

static cslim_status at(const cslim_recipe *r, const yaml_node_t *n, const char *fmt, ...) {
  char msg[400];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return cslim_error(CSLIM_ERR_FORMAT, "%s:%d: %s", r->y->path, cslim_yaml_line(n), msg);
}

static void unsupported(cslim_recipe *r, const yaml_node_t *n, const char *fmt, ...) {
  if (r->unsupported[0]) return;
  char msg[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  snprintf(r->unsupported, sizeof r->unsupported, "%s:%d: %s", r->y->path, cslim_yaml_line(n), msg);
}

static void add_summary(cslim_recipe *r, const char *fmt, ...) {
  size_t len = strlen(r->summary);
  if (len + 8 >= sizeof r->summary) return;
  if (len) {
    memcpy(r->summary + len, " -> ", 5);
    len += 4;
  }
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(r->summary + len, sizeof r->summary - len, fmt, ap);
  va_end(ap);
}

/* every key of map is in `allowed` (NULL-terminated); `where` names the map in the message */
static cslim_status check_keys(cslim_recipe *r, yaml_node_t *map, const char *where, const char *const *allowed) {
  if (!cslim_yaml_is_map(map)) return at(r, map, "%s must be a mapping", where);
  cslim_yaml_iter it = {0};
  yaml_node_t *k, *v;
  while (cslim_yaml_next(r->y, map, &it, &k, &v)) {
    const char *name = cslim_yaml_str(k);
    int ok = 0;
    for (int i = 0; name && allowed[i] && !ok; i++) ok = !strcmp(name, allowed[i]);
    if (!ok) {
      char list[256] = "";
      for (int i = 0; allowed[i]; i++) {
        size_t l = strlen(list);
        snprintf(list + l, sizeof list - l, "%s%s", i ? ", " : "", allowed[i]);
      }
      return at(r, k, "unknown key '%s' in %s (known: %s)", name ? name : "?", where, list);
    }
  }
  return CSLIM_OK;
}

static cslim_status get_bool(cslim_recipe *r, yaml_node_t *n, const char *key, int *out) {
  const char *s = cslim_yaml_str(n);
  static const char *t[] = {"true", "True", "TRUE", "yes", "on"}, *f[] = {"false", "False", "FALSE", "no", "off"};
  for (int i = 0; s && i < 5; i++) {
    if (!strcmp(s, t[i])) return *out = 1, CSLIM_OK;
    if (!strcmp(s, f[i])) return *out = 0, CSLIM_OK;
  }
  return at(r, n, "%s: expected true or false", key);
}

static cslim_status get_num(cslim_recipe *r, yaml_node_t *n, const char *key, double *out) {
  const char *s = cslim_yaml_str(n);
  char *end = NULL;
  double v = s && *s ? strtod(s, &end) : NAN;
  if (!s || !*s || !end || *end || !isfinite(v)) return at(r, n, "%s: expected a number", key);
  *out = v;
  return CSLIM_OK;
}

static cslim_status get_int(cslim_recipe *r, yaml_node_t *n, const char *key, int *out) {
  double v = 0;
  cslim_status rc = get_num(r, n, key, &v);
  if (rc) return rc;
  if (v != floor(v) || fabs(v) > 1e9) return at(r, n, "%s: expected an integer", key);
  *out = (int)v;
  return CSLIM_OK;
}

static cslim_status get_str(cslim_recipe *r, yaml_node_t *n, const char *key, const char **out) {
  if (!cslim_yaml_is_scalar(n) || cslim_yaml_is_null(n)) return at(r, n, "%s: expected a string", key);
  *out = cslim_yaml_str(n);
  return CSLIM_OK;
}

/* a string or a list of strings into dst[*n] */
static cslim_status get_names(cslim_recipe *r, yaml_node_t *n, const char *key, const char **dst, int cap, int *cnt) {
  if (!n || cslim_yaml_is_null(n)) return CSLIM_OK;
  if (cslim_yaml_is_scalar(n)) {
    if (*cnt >= cap) return at(r, n, "%s: too many names (at most %d)", key, cap);
    dst[(*cnt)++] = cslim_yaml_str(n);
    return CSLIM_OK;
  }
  if (!cslim_yaml_is_seq(n)) return at(r, n, "%s: expected a list of names", key);
  for (int i = 0; i < cslim_yaml_len(n); i++) {
    yaml_node_t *it = cslim_yaml_item(r->y, n, i);
    if (!cslim_yaml_is_scalar(it)) return at(r, it, "%s: expected a list of names", key);
    if (*cnt >= cap) return at(r, it, "%s: too many names (at most %d)", key, cap);
    dst[(*cnt)++] = cslim_yaml_str(it);
  }
  return CSLIM_OK;
}

int cslim_recipe_label_parse(const char *q, cslim_recipe_label *out) {
  memset(out, 0, sizeof *out);
  if (!q || (q[0] != 'w' && q[0] != 'W')) return -1;
  char *e;
  long w = strtol(q + 1, &e, 10);
  if (e == q + 1 || (*e != 'a' && *e != 'A')) return -1;
  const char *s = e + 1;
  long a = strtol(s, &e, 10);
  if (e == s) return -1;
  if (!strncasecmp(e, "c8", 2)) out->kv_cache = 1, e += 2;
  else if (!strncasecmp(e, "f8", 2)) out->fa_bit = 8, e += 2;
  else if (!strncasecmp(e, "f4", 2)) out->fa_bit = 4, e += 2;
  if (*e == 's' || *e == 'S') out->is_sparse = 1, e++;
  if (*e || w <= 0 || w > 16 || a <= 0 || a > 16) return -1;
  out->w_bit = (int)w;
  out->a_bit = (int)a;
  return 0;
}

/* ---- metadata ---------------------------------------------------------------------------------- */

static cslim_status parse_metadata(cslim_recipe *r, yaml_node_t *md) {
  static const char *keys[] = {"config_id", "score", "label", "verified_model_types", "verified_tags", NULL};
  cslim_status rc = check_keys(r, md, "metadata", keys);
  if (rc) return rc;
  yaml_node_t *n;
  if ((n = cslim_yaml_get(r->y, md, "config_id")) && (rc = get_str(r, n, "metadata.config_id", &r->config_id)))
    return rc;
  if ((n = cslim_yaml_get(r->y, md, "score")) && (rc = get_num(r, n, "metadata.score", &r->score))) return rc;
  yaml_node_t *lb = cslim_yaml_get(r->y, md, "label");
  if (!lb) return at(r, md, "metadata.label is missing (w_bit, a_bit, is_sparse, kv_cache)");
  static const char *lkeys[] = {"w_bit", "a_bit", "is_sparse", "kv_cache", "fa_bit", "fa_quant", NULL};
  if ((rc = check_keys(r, lb, "metadata.label", lkeys))) return rc;
  if (!(n = cslim_yaml_get(r->y, lb, "w_bit"))) return at(r, lb, "metadata.label.w_bit is missing");
  if ((rc = get_int(r, n, "metadata.label.w_bit", &r->label.w_bit))) return rc;
  if (!(n = cslim_yaml_get(r->y, lb, "a_bit"))) return at(r, lb, "metadata.label.a_bit is missing");
  if ((rc = get_int(r, n, "metadata.label.a_bit", &r->label.a_bit))) return rc;
  if ((n = cslim_yaml_get(r->y, lb, "is_sparse")) && (rc = get_bool(r, n, "metadata.label.is_sparse", &r->label.is_sparse)))
    return rc;
  if ((n = cslim_yaml_get(r->y, lb, "kv_cache")) && (rc = get_bool(r, n, "metadata.label.kv_cache", &r->label.kv_cache)))
    return rc;
  if ((n = cslim_yaml_get(r->y, lb, "fa_bit")) && !cslim_yaml_is_null(n) &&
      (rc = get_int(r, n, "metadata.label.fa_bit", &r->label.fa_bit)))
    return rc;
  int faq = 0;
  if ((n = cslim_yaml_get(r->y, lb, "fa_quant")) && (rc = get_bool(r, n, "metadata.label.fa_quant", &faq))) return rc;
  if (faq && !r->label.fa_bit) r->label.fa_bit = 8;
  r->verified_types = cslim_yaml_get(r->y, md, "verified_model_types");
  r->verified_tags = cslim_yaml_get(r->y, md, "verified_tags");
  if (r->verified_types && !cslim_yaml_is_null(r->verified_types) && !cslim_yaml_is_seq(r->verified_types))
    return at(r, r->verified_types, "metadata.verified_model_types: expected a list of model types");
  if (r->verified_tags && !cslim_yaml_is_null(r->verified_tags)) {
    cslim_yaml_iter it = {0};
    yaml_node_t *k, *v;
    if (!cslim_yaml_is_map(r->verified_tags))
      return at(r, r->verified_tags, "metadata.verified_tags: expected {model_type: [[tag, ...], ...]}");
    while (cslim_yaml_next(r->y, r->verified_tags, &it, &k, &v)) {
      if (!cslim_yaml_is_seq(v)) return at(r, v, "metadata.verified_tags.%s: expected a list of tag lists", cslim_yaml_str(k));
      for (int i = 0; i < cslim_yaml_len(v); i++)
        if (!cslim_yaml_is_seq(cslim_yaml_item(r->y, v, i)))
          return at(r, cslim_yaml_item(r->y, v, i), "metadata.verified_tags.%s: each scenario is a list of tags",
                    cslim_yaml_str(k));
    }
  }
  return CSLIM_OK;
}

/* ---- processors (v1) ------------------------------------------------------------------------------ */

static cslim_status subgraph_types(cslim_recipe *r, yaml_node_t *n, unsigned *sg) {
  if (!n || cslim_yaml_is_null(n)) return CSLIM_OK;
  if (!cslim_yaml_is_seq(n)) return at(r, n, "enable_subgraph_type: expected a list");
  static const struct { const char *name; unsigned bit; } k[] = {{"norm-linear", CSLIM_SG_NORM_LINEAR},
                                                                 {"ov", CSLIM_SG_OV},
                                                                 {"up-down", CSLIM_SG_UP_DOWN},
                                                                 {"linear-linear", CSLIM_SG_LINEAR_LINEAR}};
  *sg = 0;
  for (int i = 0; i < cslim_yaml_len(n); i++) {
    yaml_node_t *it = cslim_yaml_item(r->y, n, i);
    const char *s = cslim_yaml_str(it);
    int j = 0;
    while (j < 4 && !(s && !strcmp(s, k[j].name))) j++;
    if (j == 4) return at(r, it, "enable_subgraph_type: '%s' is not norm-linear, linear-linear, ov or up-down", s ? s : "?");
    *sg |= k[j].bit;
  }
  return CSLIM_OK;
}

/* include must be all ("*") and exclude empty for the smoothing processors */
static void smoothing_scope(cslim_recipe *r, yaml_node_t *proc, const char *type) {
  yaml_node_t *inc = cslim_yaml_get(r->y, proc, "include"), *exc = cslim_yaml_get(r->y, proc, "exclude");
  int all = !inc || cslim_yaml_is_null(inc) || (cslim_yaml_is_scalar(inc) && !strcmp(cslim_yaml_str(inc), "*")) ||
            (cslim_yaml_len(inc) == 1 && !strcmp(cslim_yaml_str(cslim_yaml_item(r->y, inc, 0)) ?: "", "*"));
  if (!all) unsupported(r, inc, "%s: include other than \"*\" is not supported (every subgraph is smoothed)", type);
  if (exc && !cslim_yaml_is_null(exc) && cslim_yaml_len(exc) > 0)
    unsupported(r, exc, "%s: exclude is not supported (every subgraph is smoothed)", type);
}

static cslim_status proc_smooth(cslim_recipe *r, yaml_node_t *proc, const char *type) {
  static const char *iter_keys[] = {"type", "alpha", "scale_min", "symmetric", "enable_subgraph_type", "include", "exclude", NULL};
  static const char *sq_keys[] = {"type", "alpha", "symmetric", "enable_subgraph_type", "include", "exclude", NULL};
  static const char *flex_keys[] = {"type", "alpha", "beta", "enable_subgraph_type", "include", "exclude", NULL};
  int iter = !strcmp(type, "iter_smooth"), sq = !strcmp(type, "smooth_quant");
  cslim_status rc = check_keys(r, proc, type, iter ? iter_keys : sq ? sq_keys : flex_keys);
  if (rc) return rc;
  if (r->anti != CSLIM_ANTI_NONE) unsupported(r, proc, "%s: a second smoothing processor (one per run is supported)", type);
  r->anti = iter ? CSLIM_ANTI_M4 : sq ? CSLIM_ANTI_M1 : CSLIM_ANTI_M6;
  r->anti_line = cslim_yaml_line(proc);
  r->alpha = iter ? 0.9 : 0.5; /* the processors' defaults */
  r->sg = CSLIM_SG_NORM_LINEAR | (sq ? 0 : CSLIM_SG_OV | CSLIM_SG_UP_DOWN | CSLIM_SG_LINEAR_LINEAR);
  r->experts = iter; /* v1 smooths every expert's up → down */
  int sym = 1;
  yaml_node_t *n;
  if ((n = cslim_yaml_get(r->y, proc, "alpha")) && !cslim_yaml_is_null(n)) {
    if ((rc = get_num(r, n, "alpha", &r->alpha))) return rc;
    if (r->alpha <= 0 || r->alpha >= 1) return at(r, n, "alpha: %g is not in (0, 1)", r->alpha);
    if (!iter && !sq) unsupported(r, n, "flex_smooth_quant: a fixed alpha (cslim searches alpha and beta)");
  }
  if ((n = cslim_yaml_get(r->y, proc, "beta")) && !cslim_yaml_is_null(n)) {
    double b;
    if ((rc = get_num(r, n, "beta", &b))) return rc;
    unsupported(r, n, "flex_smooth_quant: a fixed beta (cslim searches alpha and beta)");
  }
  if ((n = cslim_yaml_get(r->y, proc, "scale_min")) && (rc = get_num(r, n, "scale_min", &r->scale_min))) return rc;
  if ((n = cslim_yaml_get(r->y, proc, "symmetric")) && (rc = get_bool(r, n, "symmetric", &sym))) return rc;
  r->shift = !sym;
  if ((rc = subgraph_types(r, cslim_yaml_get(r->y, proc, "enable_subgraph_type"), &r->sg))) return rc;
  if (sq && (r->sg & ~(unsigned)CSLIM_SG_NORM_LINEAR))
    return at(r, proc, "smooth_quant: only norm-linear subgraphs");
  smoothing_scope(r, proc, type);
  if (iter || sq) add_summary(r, "%s (alpha %g%s)", type, r->alpha, sym ? "" : ", shift");
  else add_summary(r, "%s (alpha, beta searched)", type);
  return CSLIM_OK;
}

static cslim_status proc_quarot(cslim_recipe *r, yaml_node_t *proc) {
  static const char *keys[] = {"type", "online", "block_size", "max_tp_size", "down_proj_online_layers",
                               "export_extra_info", NULL};
  cslim_status rc = check_keys(r, proc, "quarot", keys);
  if (rc) return rc;
  yaml_node_t *n;
  int online = 0, bs = -1, tp = 4, extra = 1;
  if ((n = cslim_yaml_get(r->y, proc, "online")) && (rc = get_bool(r, n, "online", &online))) return rc;
  if (online) unsupported(r, n, "quarot: online rotation (the engine rotates at run time) is not supported");
  if ((n = cslim_yaml_get(r->y, proc, "block_size")) && (rc = get_int(r, n, "block_size", &bs))) return rc;
  if (n && bs != -1 && (bs <= 0 || (bs & (bs - 1)))) return at(r, n, "block_size: %d is not -1 or a power of two", bs);
  if ((n = cslim_yaml_get(r->y, proc, "max_tp_size")) && (rc = get_int(r, n, "max_tp_size", &tp))) return rc;
  if ((n = cslim_yaml_get(r->y, proc, "export_extra_info")) && (rc = get_bool(r, n, "export_extra_info", &extra)))
    return rc;
  if ((n = cslim_yaml_get(r->y, proc, "down_proj_online_layers")) && cslim_yaml_len(n) > 0)
    unsupported(r, n, "quarot: down_proj_online_layers (online rotation) is not supported");
  if (r->rot) unsupported(r, proc, "quarot: a second rotation");
  r->rot = 1;
  r->rot_block = bs > 0 ? bs : 0;
  add_summary(r, bs > 0 ? "quarot (block %d)" : "quarot", bs);
  return CSLIM_OK;
}

/* qconfig {act, weight} → scheme; 0 when the pair is not one the engines serve */
static cslim_status qconfig_type(cslim_recipe *r, yaml_node_t *qc, cslim_qtype *t, int *wm_set, cslim_wmethod *wm,
                                 int *ok) {
  static const char *keys[] = {"act", "weight", NULL};
  static const char *tk[] = {"scope", "dtype", "symmetric", "method", "ext", NULL};
  cslim_status rc = check_keys(r, qc, "qconfig", keys);
  if (rc) return rc;
  yaml_node_t *act = cslim_yaml_get(r->y, qc, "act"), *w = cslim_yaml_get(r->y, qc, "weight");
  if (!w) return at(r, qc, "qconfig.weight is missing");
  if ((rc = check_keys(r, w, "qconfig.weight", tk))) return rc;
  if (act && !cslim_yaml_is_null(act) && (rc = check_keys(r, act, "qconfig.act", tk))) return rc;
  const char *ws = "per_channel", *wd = "int8", *wmeth = "minmax", *as = NULL, *ad = "int8", *ameth = "minmax";
  int wsym = 1, asym = 1;
  yaml_node_t *n;
#define STR(node, key, dst) \
  if ((n = cslim_yaml_get(r->y, node, key)) && (rc = get_str(r, n, #node "." key, &dst))) return rc;
  STR(w, "scope", ws)
  STR(w, "dtype", wd)
  STR(w, "method", wmeth)
  if (act && !cslim_yaml_is_null(act)) {
    as = "per_tensor";
    STR(act, "scope", as)
    STR(act, "dtype", ad)
    STR(act, "method", ameth)
    if ((n = cslim_yaml_get(r->y, act, "symmetric")) && (rc = get_bool(r, n, "act.symmetric", &asym))) return rc;
  }
#undef STR
  if ((n = cslim_yaml_get(r->y, w, "symmetric")) && (rc = get_bool(r, n, "weight.symmetric", &wsym))) return rc;
  yaml_node_t *ext = cslim_yaml_get(r->y, w, "ext");
  *ok = 0;
  int wbits = !strcmp(wd, "int8") ? 8 : !strcmp(wd, "int4") ? 4 : 0;
  if (!wbits || !wsym || (strcmp(ws, "per_channel") && strcmp(ws, "per_group"))) {
    unsupported(r, w, "weight %s %s%s: cslim quantizes weights symmetric int8 / int4 per channel or group", ws, wd,
                wsym ? "" : " asymmetric");
    return CSLIM_OK;
  }
  if (!strcmp(wmeth, "minmax")) *wm = CSLIM_WM_MINMAX;
  else if (!strcmp(wmeth, "ssz")) *wm = CSLIM_WM_SSZ;
  else {
    unsupported(r, w, "weight method '%s': cslim has minmax and ssz", wmeth);
    return CSLIM_OK;
  }
  *wm_set = 1;
  if (!strcmp(ws, "per_group")) {
    int gs = 0;
    yaml_node_t *g = cslim_yaml_get(r->y, ext, "group_size");
    if (!g || (rc = get_int(r, g, "weight.ext.group_size", &gs))) return g ? rc : at(r, w, "per_group weights need ext.group_size");
    if (r->group_size && r->group_size != gs) unsupported(r, g, "two different group sizes in one recipe");
    r->group_size = gs;
  }
  if (!as) {
    *t = wbits == 8 ? CSLIM_QT_W8A16 : CSLIM_QT_FLOAT;
    if (wbits == 4) unsupported(r, w, "W4A16 (4-bit weights without activation quantization)");
    *ok = wbits == 8;
    return CSLIM_OK;
  }
  if (strcmp(ad, "int8")) {
    unsupported(r, act, "activations %s %s: cslim quantizes activations to int8", as, ad);
    return CSLIM_OK;
  }
  if (!strcmp(ameth, "histogram")) r->act_method = 2;
  else if (strcmp(ameth, "minmax")) {
    unsupported(r, act, "activation method '%s': cslim has minmax and histogram", ameth);
    return CSLIM_OK;
  }
  if (!strcmp(as, "per_tensor") && wbits == 8) *t = CSLIM_QT_W8A8;
  else if (!strcmp(as, "pd_mix") && wbits == 8) *t = CSLIM_QT_W8A8_MIX;
  else if (!strcmp(as, "per_token")) *t = wbits == 8 ? CSLIM_QT_W8A8_DYNAMIC : CSLIM_QT_W4A8_DYNAMIC;
  else {
    unsupported(r, act, "activations %s with int%d weights: no engine kernel for that pair", as, wbits);
    return CSLIM_OK;
  }
  (void)asym;
  *ok = 1;
  return CSLIM_OK;
}

static cslim_status proc_linear_quant(cslim_recipe *r, yaml_node_t *proc) {
  static const char *keys[] = {"type", "qconfig", "include", "exclude", NULL};
  cslim_status rc = check_keys(r, proc, "linear_quant", keys);
  if (rc) return rc;
  yaml_node_t *qc = cslim_yaml_get(r->y, proc, "qconfig");
  if (!qc) return at(r, proc, "linear_quant: qconfig is missing");
  cslim_qtype t = CSLIM_QT_FLOAT;
  int wm_set = 0, ok = 0;
  cslim_wmethod wm = CSLIM_WM_MINMAX;
  if ((rc = qconfig_type(r, qc, &t, &wm_set, &wm, &ok))) return rc;
  const char *inc[MAX_NAMES];
  int ni = 0, e0 = r->n_excl;
  yaml_node_t *in = cslim_yaml_get(r->y, proc, "include");
  if (in) {
    if ((rc = get_names(r, in, "linear_quant.include", inc, MAX_NAMES, &ni))) return rc;
  } else {
    inc[ni++] = "*";
  }
  if ((rc = get_names(r, cslim_yaml_get(r->y, proc, "exclude"), "linear_quant.exclude", r->excl, MAX_NAMES, &r->n_excl)))
    return rc;
  for (int i = 0; i < ni; i++) {
    if (r->n_rules >= MAX_RULES) return at(r, proc, "too many linear_quant patterns (at most %d)", MAX_RULES);
    cslim_mix_rule *m = &r->rules[r->n_rules++];
    m->pattern = inc[i];
    m->type = t;
    m->exclude = r->excl + e0;
    m->n_exclude = r->n_excl - e0;
    m->w_method_set = wm_set;
    m->w_method = wm;
  }
  if (ok) add_summary(r, "linear_quant %s%s", cslim_scheme_get(t)->label, wm_set && wm == CSLIM_WM_SSZ ? " (ssz)" : "");
  return CSLIM_OK;
}

static cslim_status proc_list(cslim_recipe *r, yaml_node_t *list, const char *where);

static cslim_status proc_one(cslim_recipe *r, yaml_node_t *proc, const char *where) {
  if (!cslim_yaml_is_map(proc)) return at(r, proc, "%s: each processor is a mapping with a 'type'", where);
  yaml_node_t *tn = cslim_yaml_get(r->y, proc, "type");
  const char *type = cslim_yaml_str(tn);
  if (!type) return at(r, proc, "%s: processor without a 'type'", where);
  if (!strcmp(type, "quarot")) return proc_quarot(r, proc);
  if (!strcmp(type, "iter_smooth") || !strcmp(type, "smooth_quant") || !strcmp(type, "flex_smooth_quant"))
    return proc_smooth(r, proc, type);
  if (!strcmp(type, "linear_quant")) return proc_linear_quant(r, proc);
  if (!strcmp(type, "group")) {
    static const char *keys[] = {"type", "configs", NULL};
    cslim_status rc = check_keys(r, proc, "group", keys);
    if (rc) return rc;
    yaml_node_t *c = cslim_yaml_get(r->y, proc, "configs");
    if (!cslim_yaml_is_seq(c)) return at(r, c ? c : proc, "group: configs must be a list of processors");
    return proc_list(r, c, "group.configs");
  }
  if (!strcmp(type, "dynamic_cache")) {
    static const char *keys[] = {"type", "qconfig", "include", "exclude", NULL};
    cslim_status rc = check_keys(r, proc, "dynamic_cache", keys);
    if (rc) return rc;
    unsupported(r, proc, "dynamic_cache (KV cache int8, C8) is not implemented yet");
    add_summary(r, "dynamic_cache");
    return CSLIM_OK;
  }
  static const char *known[] = {"adapt_rotation", "autoround_quant", "float_sparse", "flex_awq_ssz",
                                "awq",            "kv_smooth",       "fa3_quant",    NULL};
  for (int i = 0; known[i]; i++)
    if (!strcmp(type, known[i])) {
      unsupported(r, proc, "processor '%s' is not implemented yet", type);
      add_summary(r, "%s", type);
      return CSLIM_OK;
    }
  return at(r, tn, "%s: unknown processor type '%s' (known: quarot, iter_smooth, smooth_quant, flex_smooth_quant, "
            "linear_quant, group, dynamic_cache, adapt_rotation, autoround_quant, float_sparse, flex_awq_ssz, awq, "
            "kv_smooth, fa3_quant)", where, type);
}

static cslim_status proc_list(cslim_recipe *r, yaml_node_t *list, const char *where) {
  for (int i = 0; i < cslim_yaml_len(list); i++) {
    cslim_status rc = proc_one(r, cslim_yaml_item(r->y, list, i), where);
    if (rc) return rc;
  }
  return CSLIM_OK;
}

static cslim_status parse_v1(cslim_recipe *r, yaml_node_t *spec) {
  static const char *keys[] = {"runner", "prior", "process", "save", "dataset", NULL};
  static const char *vkeys[] = {"runner", "prior", "process", "save", "dataset", "default_text", NULL};
  cslim_status rc = check_keys(r, spec, "spec", r->api == CSLIM_RECIPE_VLM_V1 ? vkeys : keys);
  if (rc) return rc;
  yaml_node_t *n;
  if ((n = cslim_yaml_get(r->y, spec, "runner"))) {
    const char *s = cslim_yaml_str(n);
    static const char *ok[] = {"auto", "layer_wise", "dp_layer_wise", "model_wise", NULL};
    int i = 0;
    while (s && ok[i] && strcmp(ok[i], s)) i++;
    if (!s || !ok[i]) return at(r, n, "runner: '%s' is not auto, layer_wise, dp_layer_wise or model_wise", s ? s : "?");
  }
  if ((n = cslim_yaml_get(r->y, spec, "prior")) && cslim_yaml_len(n) > 0) {
    for (int i = 0; i < cslim_yaml_len(n); i++) {
      yaml_node_t *st = cslim_yaml_item(r->y, n, i);
      static const char *pk[] = {"process", "dataset", NULL};
      if ((rc = check_keys(r, st, "prior stage", pk))) return rc;
    }
    unsupported(r, n, "prior stages (adapt_rotation training) are not implemented yet");
  }
  yaml_node_t *proc = cslim_yaml_get(r->y, spec, "process");
  if (!cslim_yaml_is_seq(proc)) return at(r, proc ? proc : spec, "spec.process must be a list of processors");
  if ((rc = proc_list(r, proc, "spec.process"))) return rc;
  if ((n = cslim_yaml_get(r->y, spec, "save"))) {
    if (!cslim_yaml_is_seq(n)) return at(r, n, "spec.save must be a list of savers");
    for (int i = 0; i < cslim_yaml_len(n); i++) {
      yaml_node_t *sv = cslim_yaml_item(r->y, n, i), *t;
      static const char *sk[] = {"type", "part_file_size", NULL};
      if ((rc = check_keys(r, sv, "saver", sk))) return rc;
      const char *type = cslim_yaml_str(t = cslim_yaml_get(r->y, sv, "type"));
      if (!type) return at(r, sv, "saver without a 'type'");
      if (!strcmp(type, "mindie_format_saver")) r->mindie_format = 1;
      else if (!strcmp(type, "compressed_tensors")) unsupported(r, t, "saver compressed_tensors is not implemented");
      else if (strcmp(type, "ascendv1_saver"))
        return at(r, t, "unknown saver '%s' (known: ascendv1_saver, mindie_format_saver, compressed_tensors)", type);
      yaml_node_t *ps = cslim_yaml_get(r->y, sv, "part_file_size");
      if (ps && !cslim_yaml_is_null(ps) && (rc = get_num(r, ps, "part_file_size", &r->part_file_size))) return rc;
    }
  }
  if ((n = cslim_yaml_get(r->y, spec, "dataset")) && (rc = get_str(r, n, "spec.dataset", &r->dataset))) return rc;
  if (!r->dataset) r->dataset = r->api == CSLIM_RECIPE_VLM_V1 ? "calibImages" : "mix_calib.jsonl";
  if ((n = cslim_yaml_get(r->y, spec, "default_text")) && (rc = get_str(r, n, "spec.default_text", &r->default_text)))
    return rc;
  r->default_type = CSLIM_QT_FLOAT; /* Linears no linear_quant matches */
  return CSLIM_OK;
}

/* ---- v0 ------------------------------------------------------------------------------------------- */

static cslim_status parse_v0(cslim_recipe *r, yaml_node_t *spec) {
  static const char *keys[] = {"anti_cfg", "anti_params", "calib_cfg", "calib_params", "calib_save_params",
                               "batch_size", "anti_dataset", "calib_dataset", NULL};
  cslim_status rc = check_keys(r, spec, "spec", keys);
  if (rc) return rc;
  yaml_node_t *n, *anti = cslim_yaml_get(r->y, spec, "anti_cfg");
  if (anti && !cslim_yaml_is_null(anti)) {
    static const char *ak[] = {"anti_method", "w_bit", "a_bit", "w_sym", "dev_type", "dev_id", "disable_anti_names",
                               "flex_config", NULL};
    if ((rc = check_keys(r, anti, "anti_cfg", ak))) return rc;
    const char *m = "m2"; /* AntiOutlierConfig's default */
    if ((n = cslim_yaml_get(r->y, anti, "anti_method")) && (rc = get_str(r, n, "anti_cfg.anti_method", &m))) return rc;
    if (cslim_anti_method_parse(m, &r->anti) != 0) {
      if (!strcmp(m, "m3") || !strcmp(m, "m5")) unsupported(r, n, "anti_method %s is not implemented", m);
      else return at(r, n, "anti_cfg.anti_method: '%s' is not m1 .. m6", m);
    }
    r->anti_line = cslim_yaml_line(anti);
    r->alpha = 0.5;
    if ((n = cslim_yaml_get(r->y, anti, "disable_anti_names")) && cslim_yaml_len(n) > 0)
      unsupported(r, n, "anti_cfg.disable_anti_names is not supported");
    if ((n = cslim_yaml_get(r->y, anti, "flex_config")) && !cslim_yaml_is_null(n)) {
      static const char *fk[] = {"alpha", "beta", NULL};
      if ((rc = check_keys(r, n, "anti_cfg.flex_config", fk))) return rc;
      yaml_node_t *a = cslim_yaml_get(r->y, n, "alpha"), *b = cslim_yaml_get(r->y, n, "beta");
      if ((a && !cslim_yaml_is_null(a)) || (b && !cslim_yaml_is_null(b)))
        unsupported(r, n, "anti_cfg.flex_config with fixed alpha / beta (cslim searches them)");
    }
    if (r->anti != CSLIM_ANTI_NONE) add_summary(r, "anti_method %s", cslim_anti_method_name(r->anti));
  }
  if ((n = cslim_yaml_get(r->y, spec, "anti_params")) && !cslim_yaml_is_null(n)) {
    static const char *pk[] = {"norm_class_name", NULL};
    if ((rc = check_keys(r, n, "anti_params", pk))) return rc;
  }
  /* calib_cfg: QuantConfig's arguments */
  static const char *ck[] = {"w_bit", "a_bit", "act_method", "w_method", "disable_names", "pr", "mm_tensor", "dev_type",
                             "dev_id", "fraction", "nonuniform", "co_sparse", "w_sym", "is_lowbit", "do_smooth",
                             "use_sigma", "sigma_factor", "disable_last_linear", "use_kvcache_quant", "open_outlier",
                             "is_dynamic", "group_size", "percdamp", "pdmix", "use_fa_quant", "fa_amp", NULL};
  yaml_node_t *cc = cslim_yaml_get(r->y, spec, "calib_cfg");
  if (!cc) return at(r, spec, "spec.calib_cfg is missing (w_bit, a_bit, ...)");
  if ((rc = check_keys(r, cc, "calib_cfg", ck))) return rc;
  int wb = 8, ab = 8, dyn = 0, pdmix = 0, lowbit = 0, cosparse = 0, mm = 1, wsym = 1, kv = 0, fa = 0, last = 1, b;
  double pr = 1.0;
#define BOOL(key, dst) \
  if ((n = cslim_yaml_get(r->y, cc, key)) && (rc = get_bool(r, n, "calib_cfg." key, &dst))) return rc;
  if ((n = cslim_yaml_get(r->y, cc, "w_bit")) && (rc = get_int(r, n, "calib_cfg.w_bit", &wb))) return rc;
  if ((n = cslim_yaml_get(r->y, cc, "a_bit")) && (rc = get_int(r, n, "calib_cfg.a_bit", &ab))) return rc;
  BOOL("is_dynamic", dyn)
  BOOL("pdmix", pdmix)
  BOOL("is_lowbit", lowbit)
  BOOL("co_sparse", cosparse)
  BOOL("mm_tensor", mm)
  BOOL("w_sym", wsym)
  BOOL("use_kvcache_quant", kv)
  BOOL("use_fa_quant", fa)
  BOOL("disable_last_linear", last)
  b = 0;
  BOOL("do_smooth", b)
  if (b) unsupported(r, n, "calib_cfg.do_smooth (low-bit built-in smoothing) is not implemented");
  b = 0;
  BOOL("nonuniform", b)
  if (b) unsupported(r, n, "calib_cfg.nonuniform is not implemented");
  BOOL("use_sigma", r->sparse.use_sigma)
  BOOL("open_outlier", r->sparse.open_outlier)
#undef BOOL
  if ((n = cslim_yaml_get(r->y, cc, "fraction")) && (rc = get_num(r, n, "calib_cfg.fraction", &r->sparse.fraction)))
    return rc;
  if (n && (r->sparse.fraction < 0.01 || r->sparse.fraction > 0.1))
    return at(r, n, "calib_cfg.fraction: %g is not in [0.01, 0.1]", r->sparse.fraction);
  if ((n = cslim_yaml_get(r->y, cc, "sigma_factor")) &&
      (rc = get_num(r, n, "calib_cfg.sigma_factor", &r->sparse.sigma_factor)))
    return rc;
  if (n && (r->sparse.sigma_factor < 1.0 || r->sparse.sigma_factor > 4.0))
    return at(r, n, "calib_cfg.sigma_factor: %g is not in [1.0, 4.0]", r->sparse.sigma_factor);
  r->sparse.co_sparse = cosparse && !lowbit; /* is_lowbit disables the legacy backend */
  if ((n = cslim_yaml_get(r->y, cc, "pr")) && (rc = get_num(r, n, "calib_cfg.pr", &pr))) return rc;
  if (pr != 1.0) unsupported(r, n, "calib_cfg.pr %g (QDrop): cslim always passes the quantized activation on", pr);
  if (mm) unsupported(r, cc, "calib_cfg.mm_tensor true (per-tensor weight scales): cslim quantizes weights per channel "
                      "(set mm_tensor: False, as every Qwen3 preset does)");
  if (!wsym) unsupported(r, cc, "calib_cfg.w_sym false: weights are symmetric");
  if (kv) unsupported(r, cc, "calib_cfg.use_kvcache_quant (KV cache int8) is not implemented yet");
  if (fa) unsupported(r, cc, "calib_cfg.use_fa_quant is not implemented");
  if (!last) unsupported(r, cc, "calib_cfg.disable_last_linear false: lm_head always stays float");
  if ((n = cslim_yaml_get(r->y, cc, "act_method")) && (rc = get_int(r, n, "calib_cfg.act_method", &r->act_method)))
    return rc;
  if (r->act_method < 1 || r->act_method > 3) return at(r, n, "calib_cfg.act_method: %d is not 1, 2 or 3", r->act_method);
  if ((n = cslim_yaml_get(r->y, cc, "w_method"))) {
    const char *s;
    if ((rc = get_str(r, n, "calib_cfg.w_method", &s))) return rc;
    if (!strcmp(s, "MinMax")) r->w_method_set = 1, r->w_method = CSLIM_WM_MINMAX;
    else unsupported(r, n, "calib_cfg.w_method %s: cslim's v0 path has MinMax", s);
  }
  if ((n = cslim_yaml_get(r->y, cc, "group_size")) && (rc = get_int(r, n, "calib_cfg.group_size", &b))) return rc;
  if ((rc = get_names(r, cslim_yaml_get(r->y, cc, "disable_names"), "calib_cfg.disable_names", r->disable, MAX_NAMES,
                      &r->n_disable)))
    return rc;
  /* QuantType.get_quant_type (spec §2.1) */
  if (wb == 8 && ab == 8) r->default_type = dyn ? CSLIM_QT_W8A8_DYNAMIC : pdmix ? CSLIM_QT_W8A8_MIX : CSLIM_QT_W8A8;
  else if (wb == 4 && ab == 8 && dyn) r->default_type = CSLIM_QT_W4A8_DYNAMIC;
  else if ((wb == 4 && ab == 8 && lowbit) || cosparse) {
    r->default_type = CSLIM_QT_W8A8S;
    if (r->act_method == 3) return at(r, cc, "calib_cfg.act_method 3 is not allowed with is_lowbit (W8A8S)");
  } else if (wb == 8 && ab == 16) r->default_type = CSLIM_QT_W8A16;
  else return at(r, cc, "calib_cfg: w_bit %d / a_bit %d%s is not a scheme cslim writes", wb, ab, dyn ? " dynamic" : "");
  yaml_node_t *cp = cslim_yaml_get(r->y, spec, "calib_params");
  if (cp && !cslim_yaml_is_null(cp)) {
    static const char *pk[] = {"disable_level", "mix_cfg", "all_tensors", NULL};
    if ((rc = check_keys(r, cp, "calib_params", pk))) return rc;
    if ((n = cslim_yaml_get(r->y, cp, "disable_level"))) {
      const char *s;
      if ((rc = get_str(r, n, "calib_params.disable_level", &s))) return rc;
      char *e;
      long lv = (s[0] == 'L') ? strtol(s + 1, &e, 10) : -1;
      if (lv < 0 || *e) return at(r, n, "calib_params.disable_level: '%s' is not L0, L1, ...", s);
      if (lv > 0) unsupported(r, n, "calib_params.disable_level %s (automatic rollback) is not implemented yet; name the "
                              "Linears in calib_cfg.disable_names", s);
    }
    yaml_node_t *mix = cslim_yaml_get(r->y, cp, "mix_cfg");
    if (mix && !cslim_yaml_is_null(mix)) {
      if (!cslim_yaml_is_map(mix)) return at(r, mix, "calib_params.mix_cfg: expected {pattern: type}");
      cslim_yaml_iter it = {0};
      yaml_node_t *k, *v;
      while (cslim_yaml_next(r->y, mix, &it, &k, &v)) {
        const char *ts = cslim_yaml_str(v);
        cslim_qtype t;
        if (!ts || cslim_scheme_parse(ts, &t) != 0 ||
            (t != CSLIM_QT_FLOAT && t != CSLIM_QT_W8A8 && t != CSLIM_QT_W8A16 && t != CSLIM_QT_W8A8_DYNAMIC &&
             t != CSLIM_QT_W4A8_DYNAMIC))
          return at(r, v, "calib_params.mix_cfg['%s']: '%s' is not w8a8, w8a16, w8a8_dynamic, w4a8_dynamic or float",
                    cslim_yaml_str(k), ts ? ts : "?");
        if (r->n_rules >= MAX_RULES) return at(r, k, "calib_params.mix_cfg: too many patterns (at most %d)", MAX_RULES);
        r->rules[r->n_rules].pattern = cslim_yaml_str(k);
        r->rules[r->n_rules++].type = t;
      }
    }
  }
  if ((n = cslim_yaml_get(r->y, spec, "calib_save_params")) && !cslim_yaml_is_null(n)) {
    static const char *sk[] = {"part_file_size", NULL};
    if ((rc = check_keys(r, n, "calib_save_params", sk))) return rc;
    yaml_node_t *ps = cslim_yaml_get(r->y, n, "part_file_size");
    if (ps && !cslim_yaml_is_null(ps) && (rc = get_num(r, ps, "part_file_size", &r->part_file_size))) return rc;
  }
  if ((n = cslim_yaml_get(r->y, spec, "batch_size")) && (rc = get_int(r, n, "batch_size", &b))) return rc;
  if ((n = cslim_yaml_get(r->y, spec, "anti_dataset")) && !cslim_yaml_is_null(n) &&
      (rc = get_str(r, n, "anti_dataset", &r->anti_dataset)))
    return rc;
  r->dataset = "teacher_qualification.jsonl"; /* v0's default */
  if ((n = cslim_yaml_get(r->y, spec, "calib_dataset")) && (rc = get_str(r, n, "calib_dataset", &r->dataset))) return rc;
  r->legacy_names = 1;
  char mix[96] = "";
  if (r->n_rules) snprintf(mix, sizeof mix, ", mix_cfg of %d pattern%s", r->n_rules, r->n_rules > 1 ? "s" : "");
  add_summary(r, "%s%s%s", cslim_scheme_get(r->default_type)->label, r->n_disable ? ", rollback names" : "", mix);
  return CSLIM_OK;
}

/* ---- loading ------------------------------------------------------------------------------------ */

static cslim_status recipe_build(cslim_yaml *y, cslim_recipe **out);

cslim_status cslim_recipe_load(const char *path, cslim_recipe **out) {
  *out = NULL;
  cslim_yaml *y;
  cslim_status rc = cslim_yaml_load(path, &y);
  return rc ? rc : recipe_build(y, out);
}

cslim_status cslim_recipe_parse(const char *text, size_t len, const char *name, cslim_recipe **out) {
  *out = NULL;
  cslim_yaml *y;
  cslim_status rc = cslim_yaml_parse(text, len, name, &y);
  return rc ? rc : recipe_build(y, out);
}

/* takes y */
static cslim_status recipe_build(cslim_yaml *y, cslim_recipe **out) {
  const char *path = y->path;
  cslim_recipe *r = calloc(1, sizeof *r);
  if (!r) {
    cslim_yaml_free(y);
    return cslim_error(CSLIM_ERR_NOMEM, "out of memory");
  }
  r->y = y;
  cslim_status rc = CSLIM_OK;
  r->act_method = 1;
  r->shift = -1;
  r->sparse.fraction = 0.01; /* QuantConfig's defaults */
  r->sparse.sigma_factor = 3.0;
  r->sparse.open_outlier = 1;
  yaml_node_t *root = cslim_yaml_root(r->y), *n;
  if (!cslim_yaml_is_map(root)) rc = at(r, root, "a recipe is a mapping (apiversion, metadata, spec)");
  const char *api = NULL;
  if (!rc && !(n = cslim_yaml_get(r->y, root, "apiversion")))
    rc = at(r, root, "apiversion is missing (modelslim_v0, modelslim_v1 or multimodal_vlm_modelslim_v1)");
  if (!rc && !(api = cslim_yaml_str(n))) rc = at(r, n, "apiversion: expected a string");
  if (!rc) {
    if (!strcmp(api, "modelslim_v0")) r->api = CSLIM_RECIPE_V0;
    else if (!strcmp(api, "modelslim_v1")) r->api = CSLIM_RECIPE_V1;
    else if (!strcmp(api, "multimodal_vlm_modelslim_v1")) r->api = CSLIM_RECIPE_VLM_V1;
    else if (!strcmp(api, "modelslim_convert"))
      rc = cslim_error(CSLIM_ERR_UNSUPPORTED, "%s:%d: apiversion modelslim_convert: use 'cslim convert'", path,
                       cslim_yaml_line(n));
    else
      rc = at(r, n, "apiversion: '%s' is not modelslim_v0, modelslim_v1 or multimodal_vlm_modelslim_v1", api);
  }
  /* other top-level keys hold YAML anchors (ignored, as msModelSlim's loader does) */
  if (!rc) {
    yaml_node_t *md = cslim_yaml_get(r->y, root, "metadata");
    rc = md ? parse_metadata(r, md) : at(r, root, "metadata is missing (config_id, score, label, verified_model_types)");
  }
  if (!rc) {
    yaml_node_t *spec = cslim_yaml_get(r->y, root, "spec");
    if (!spec) rc = at(r, root, "spec is missing");
    else rc = r->api == CSLIM_RECIPE_V0 ? parse_v0(r, spec) : parse_v1(r, spec);
  }
  if (rc) {
    cslim_recipe_free(r);
    return rc;
  }
  *out = r;
  return CSLIM_OK;
}

void cslim_recipe_free(cslim_recipe *r) {
  if (!r) return;
  cslim_yaml_free(r->y);
  free(r);
}

const char *cslim_recipe_path(const cslim_recipe *r) { return r->y->path; }
const char *cslim_recipe_text(const cslim_recipe *r) { return r->y->text; }
cslim_recipe_api cslim_recipe_apiversion(const cslim_recipe *r) { return r->api; }
const char *cslim_recipe_config_id(const cslim_recipe *r) { return r->config_id ? r->config_id : ""; }
double cslim_recipe_score(const cslim_recipe *r) { return r->score; }
cslim_recipe_label cslim_recipe_get_label(const cslim_recipe *r) { return r->label; }
const char *cslim_recipe_dataset(const cslim_recipe *r) { return r->dataset; }
const char *cslim_recipe_anti_dataset(const cslim_recipe *r) { return r->anti_dataset; }
const char *cslim_recipe_summary(const cslim_recipe *r) { return r->summary; }

int cslim_recipe_matches_model(const cslim_recipe *r, const char *model_type, const char *const *tags, int n_tags,
                               int *standby) {
  *standby = 0;
  cslim_recipe *rr = (cslim_recipe *)r;
  if (cslim_yaml_len(r->verified_types) > 0) {
    for (int i = 0; i < cslim_yaml_len(r->verified_types); i++) {
      const char *s = cslim_yaml_str(cslim_yaml_item(rr->y, r->verified_types, i));
      if (s && !strcmp(s, model_type)) return 1;
    }
    return 0;
  }
  yaml_node_t *sc = cslim_yaml_get(rr->y, r->verified_tags, model_type);
  if (!sc) return 0;
  if (n_tags == 0) return 1;
  for (int i = 0; i < cslim_yaml_len(sc); i++) {
    yaml_node_t *set = cslim_yaml_item(rr->y, sc, i);
    int all = 1;
    for (int t = 0; t < n_tags && all; t++) {
      int found = 0;
      for (int j = 0; j < cslim_yaml_len(set) && !found; j++) {
        const char *s = cslim_yaml_str(cslim_yaml_item(rr->y, set, j));
        found = s && !strcasecmp(s, tags[t]);
      }
      all = found;
    }
    if (all) return 1;
  }
  *standby = 1;
  return 0;
}

cslim_status cslim_recipe_apply(const cslim_recipe *r, cslim_quant_params *p) {
  if (r->unsupported[0]) return cslim_error(CSLIM_ERR_UNSUPPORTED, "%s", r->unsupported);
  p->quant_type = r->default_type;
  p->mix = r->rules;
  p->n_mix = r->n_rules;
  p->disable_names = r->disable;
  p->n_disable = r->n_disable;
  p->anti_method = r->anti;
  if (r->anti != CSLIM_ANTI_NONE) {
    p->anti_alpha = r->alpha;
    if (r->scale_min > 0) p->anti_scale_min = r->scale_min;
    p->anti_subgraphs = r->sg ? r->sg : p->anti_subgraphs;
    p->anti_experts = r->experts;
    p->anti_shift = r->shift;
  }
  p->rot = r->rot;
  p->rot_block_size = r->rot_block;
  p->act_method = r->act_method;
  p->w_method_set = r->w_method_set;
  p->w_method = r->w_method;
  p->group_size = r->group_size;
  p->part_file_size = r->part_file_size;
  p->legacy_names = r->legacy_names;
  p->mindie_format = r->mindie_format;
  p->sparse = r->sparse;
  return CSLIM_OK;
}
