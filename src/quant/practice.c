/* The best-practice lookup (spec §1.2, §1.3): model type → pedigree, then the
 * recipe for a quant type among recipes/<pedigree>/ and recipes/default/, with
 * msModelSlim's fallback order; where the shipped recipes and default
 * calibration sets live. */
#include "cslim/recipe.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#ifndef CSLIM_SOURCE_DIR
#define CSLIM_SOURCE_DIR ""
#endif
#ifndef CSLIM_DATA_INSTALL_DIR
#define CSLIM_DATA_INSTALL_DIR "/usr/local/share/cslim"
#endif

static const struct {
  const char *pedigree;
  const char *types[10];
} k_pedigrees[] = {
    {"qwen3", {"Qwen3-8B", "Qwen3-14B", "Qwen3-32B", NULL}},
    {"qwen3_moe", {"Qwen3-30B", "Qwen3-235B", "Qwen3-Coder-480B-A35B", NULL}},
    {"qwen3_vl", {"Qwen3-VL-4B-Instruct", "Qwen3-VL-8B-Instruct", "Qwen3-VL-32B-Instruct", "Qwen3-VL-Embedding-2B",
                  "Qwen3-VL-Embedding-8B", "Qwen3-VL-Reranker-2B", "Qwen3-VL-Reranker-8B", NULL}},
    {"qwen3_vl_moe", {"Qwen3-VL-30B-A3B", "Qwen3-VL-235B-A22B", NULL}},
};
#define N_PEDIGREES (int)(sizeof k_pedigrees / sizeof k_pedigrees[0])

const char *cslim_model_pedigree(const char *model_type) {
  for (int i = 0; i < N_PEDIGREES; i++)
    for (int j = 0; k_pedigrees[i].types[j]; j++)
      if (!strcmp(k_pedigrees[i].types[j], model_type)) return k_pedigrees[i].pedigree;
  return NULL;
}

const char *cslim_model_types(void) {
  static char buf[512];
  if (!buf[0])
    for (int i = 0; i < N_PEDIGREES; i++)
      for (int j = 0; k_pedigrees[i].types[j]; j++) {
        size_t l = strlen(buf);
        snprintf(buf + l, sizeof buf - l, "%s%s", l ? ", " : "", k_pedigrees[i].types[j]);
      }
  return buf;
}

static int is_dir(const char *p) {
  struct stat st;
  return p && *p && stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* $env, else the source tree's rel, else the installed share/cslim/rel */
static const char *find_dir(const char *env, const char *rel, char *buf, size_t cap) {
  const char *e = getenv(env);
  if (e && *e) return e;
  snprintf(buf, cap, "%s/%s", CSLIM_SOURCE_DIR, rel);
  if (CSLIM_SOURCE_DIR[0] && is_dir(buf)) return buf;
  snprintf(buf, cap, "%s/%s", CSLIM_DATA_INSTALL_DIR, rel);
  return buf;
}

const char *cslim_recipes_dir(void) {
  static char buf[4096];
  return find_dir("CSLIM_RECIPES", "recipes", buf, sizeof buf);
}

const char *cslim_calib_dir(void) {
  static char buf[4096];
  return find_dir("CSLIM_CALIB_DIR", "data/calib", buf, sizeof buf);
}

cslim_status cslim_calib_resolve(const char *name, char **path) {
  *path = NULL;
  struct stat st;
  char buf[4096];
  const char *dir = cslim_calib_dir();
  if (!strchr(name, '/')) {
    snprintf(buf, sizeof buf, "%s/%s", dir, name);
    if (stat(buf, &st) == 0) return (*path = strdup(buf)) ? CSLIM_OK : cslim_error(CSLIM_ERR_NOMEM, "out of memory");
  }
  if (stat(name, &st) == 0) return (*path = strdup(name)) ? CSLIM_OK : cslim_error(CSLIM_ERR_NOMEM, "out of memory");
  char list[1024] = "";
  DIR *d = opendir(dir);
  struct dirent *de;
  while (d && (de = readdir(d)) != NULL) {
    if (de->d_name[0] == '.') continue;
    size_t l = strlen(list);
    snprintf(list + l, sizeof list - l, "%s%s", l ? ", " : "", de->d_name);
  }
  if (d) closedir(d);
  return cslim_error(CSLIM_ERR_IO, "calibration set '%s' not found in %s (available: %s); give a file or folder with "
                     "--calib_data", name, dir, list[0] ? list : "none");
}

/* ---- selection --------------------------------------------------------------------------------- */

typedef struct cand {
  cslim_recipe *r;
  char *path;
} cand;

static int cand_cmp(const void *a, const void *b) {
  const cand *x = a, *y = b;
  double sx = cslim_recipe_score(x->r), sy = cslim_recipe_score(y->r);
  if (sx != sy) return sx > sy ? -1 : 1;
  return strcmp(cslim_recipe_config_id(x->r), cslim_recipe_config_id(y->r));
}

static void cands_free(cand *c, int n) {
  for (int i = 0; i < n; i++) {
    cslim_recipe_free(c[i].r);
    free(c[i].path);
  }
  free(c);
}

/* every *.yaml of dir/sub, loaded and sorted */
static cslim_status load_dir(const char *dir, const char *sub, cand **out, int *n) {
  *out = NULL;
  *n = 0;
  char d[4096];
  snprintf(d, sizeof d, "%s/%s", dir, sub);
  DIR *dh = opendir(d);
  if (!dh) return CSLIM_OK;
  cand *c = NULL;
  int cnt = 0, cap = 0;
  cslim_status rc = CSLIM_OK;
  struct dirent *de;
  while (!rc && (de = readdir(dh)) != NULL) {
    size_t l = strlen(de->d_name);
    if (l < 6 || strcmp(de->d_name + l - 5, ".yaml")) continue;
    if (cnt == cap) {
      cap = cap ? 2 * cap : 16;
      cand *nc = realloc(c, (size_t)cap * sizeof *c);
      if (!nc) {
        rc = cslim_error(CSLIM_ERR_NOMEM, "out of memory");
        break;
      }
      c = nc;
    }
    char p[4352];
    snprintf(p, sizeof p, "%s/%s", d, de->d_name);
    c[cnt].path = strdup(p);
    rc = c[cnt].path ? cslim_recipe_load(p, &c[cnt].r) : cslim_error(CSLIM_ERR_NOMEM, "out of memory");
    if (rc) free(c[cnt].path);
    else cnt++;
  }
  closedir(dh);
  if (rc) {
    cands_free(c, cnt);
    return rc;
  }
  if (cnt) qsort(c, (size_t)cnt, sizeof *c, cand_cmp);
  *out = c;
  *n = cnt;
  return CSLIM_OK;
}

static int label_eq(cslim_recipe_label a, cslim_recipe_label b) {
  return a.w_bit == b.w_bit && a.a_bit == b.a_bit && !a.is_sparse == !b.is_sparse && !a.kv_cache == !b.kv_cache &&
         a.fa_bit == b.fa_bit;
}

/* mode 0: verified for the model; 1: standby (listed, tags differ); 2: label only (default dir) */
static const char *pick(cand *c, int n, cslim_recipe_label want, const char *model_type, const char *const *tags,
                        int n_tags, int mode) {
  for (int i = 0; i < n; i++) {
    if (!label_eq(cslim_recipe_get_label(c[i].r), want)) continue;
    int standby, ok = cslim_recipe_matches_model(c[i].r, model_type, tags, n_tags, &standby);
    if ((mode == 0 && ok) || (mode == 1 && standby) || mode == 2) return c[i].path;
  }
  return NULL;
}

cslim_status cslim_practice_select(const char *dir, const char *model_type, const char *quant_type,
                                   const char *const *tags, int n_tags, cslim_practice *out) {
  memset(out, 0, sizeof *out);
  cslim_recipe_label want, w8a8;
  if (cslim_recipe_label_parse(quant_type, &want) != 0)
    return cslim_error(CSLIM_ERR_INVALID, "--quant_type '%s' is not a recipe label (w<bits>a<bits>[c8|f8|f4][s]: w8a8, "
                       "w8a8s, w4a8, w8a16, w8a8c8, ...)", quant_type);
  cslim_recipe_label_parse("w8a8", &w8a8);
  const char *ped = cslim_model_pedigree(model_type);
  if (!is_dir(dir)) return cslim_error(CSLIM_ERR_IO, "%s: recipe directory not found (set CSLIM_RECIPES)", dir);
  cand *pc = NULL, *dc = NULL;
  int np = 0, nd = 0;
  cslim_status rc = ped ? load_dir(dir, ped, &pc, &np) : CSLIM_OK;
  if (!rc) rc = load_dir(dir, "default", &dc, &nd);
  if (rc) {
    cands_free(pc, np);
    return rc;
  }
  const char *path = NULL;
  int step = 0;
  static const char *why[] = {
      "", "no recipe for %s %s verified with the tags given; using one verified for other scenarios: %s",
      "no %s recipe for %s; using the default one: %s", "no %s recipe for %s; falling back to W8A8: %s",
      "no %s recipe for %s; falling back to W8A8 verified for other scenarios: %s",
      "no %s recipe for %s; falling back to the default W8A8 one: %s"};
  for (int s = 0; s < 6 && !path; s++) {
    cslim_recipe_label l = s < 3 ? want : w8a8;
    int mode = s % 3;
    path = mode == 2 ? pick(dc, nd, l, model_type, tags, n_tags, 2) : pick(pc, np, l, model_type, tags, n_tags, mode);
    step = s;
  }
  if (!path) {
    rc = cslim_error(CSLIM_ERR_UNSUPPORTED, "no recipe for model type '%s' and quant type '%s' in %s%s%s%s", model_type,
                     quant_type, dir, ped ? "" : " (unknown model type; known: ", ped ? "" : cslim_model_types(),
                     ped ? "" : ")");
  } else if (!(out->path = strdup(path))) {
    rc = cslim_error(CSLIM_ERR_NOMEM, "out of memory");
  } else {
    out->fallback = step;
    const char *mt = ped ? model_type : "an unlisted model type";
    if (step == 1) snprintf(out->note, sizeof out->note, why[1], mt, quant_type, path);
    else if (step) snprintf(out->note, sizeof out->note, why[step], quant_type, mt, path);
  }
  cands_free(pc, np);
  cands_free(dc, nd);
  return rc;
}

void cslim_practice_free(cslim_practice *p) {
  free(p->path);
  p->path = NULL;
}
