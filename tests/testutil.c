#include "testutil.h"

#include "cslim/common.h"
#include "cslim/staging.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

const char *tu_fixture(const char *rel) {
  static char buf[8][4096];
  static int k;
  char *p = buf[k++ & 7];
  snprintf(p, 4096, "%s/%s", CSLIM_FIXTURES, rel);
  if (access(p, F_OK) != 0) fail_msg("fixture missing: %s (configure with -DCSLIM_FIXTURES=...)", p);
  return p;
}

const char *tu_source(const char *rel) {
  static char buf[8][4096];
  static int k;
  char *p = buf[k++ & 7];
  snprintf(p, 4096, "%s/%s", CSLIM_SOURCE_DIR, rel);
  return p;
}

char *tu_tmpdir(void) {
  const char *base = getenv("TMPDIR");
  char tmpl[4096];
  snprintf(tmpl, sizeof tmpl, "%s/cslim-test-XXXXXX", base && *base ? base : "/tmp");
  mkdir(base && *base ? base : "/tmp", 0755);
  char *d = mkdtemp(tmpl);
  if (!d) fail_msg("mkdtemp failed for %s", tmpl);
  return strdup(d);
}

void tu_rmtree(const char *path) { cslim_remove_tree(path); }

void tu_write_file(const char *path, const void *buf, size_t len) {
  FILE *f = fopen(path, "wb");
  if (!f) fail_msg("cannot create %s", path);
  if (len && fwrite(buf, 1, len, f) != len) fail_msg("cannot write %s", path);
  fclose(f);
}

unsigned char *tu_read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) fail_msg("cannot open %s", path);
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  unsigned char *b = malloc((size_t)n + 1);
  if (fread(b, 1, (size_t)n, f) != (size_t)n) fail_msg("cannot read %s", path);
  fclose(f);
  b[n] = 0;
  *len = (size_t)n;
  return b;
}

unsigned char *tu_st_image(const char *header, const void *data, size_t data_len, size_t *out_len) {
  size_t h = strlen(header);
  unsigned char *b = malloc(8 + h + data_len + 1);
  for (int i = 0; i < 8; i++) b[i] = (unsigned char)((uint64_t)h >> (8 * i));
  memcpy(b + 8, header, h);
  if (data_len) memcpy(b + 8 + h, data, data_len);
  *out_len = 8 + h + data_len;
  return b;
}

double tu_rel_err(const float *a, const float *b, size_t n) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n; i++) {
    double d = (double)a[i] - (double)b[i];
    num += d * d;
    den += (double)b[i] * (double)b[i];
  }
  return den > 0 ? sqrt(num / den) : sqrt(num);
}

uint64_t tu_rand(uint64_t *s) {
  uint64_t x = *s += 0x9e3779b97f4a7c15ull; /* splitmix64 */
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

float tu_randf(uint64_t *s) { return (float)((double)(tu_rand(s) >> 11) * 0x1p-53 * 2.0 - 1.0); }

void tu_assert_errmsg(const char *needle, const char *file, int line) {
  const char *m = cslim_errmsg();
  if (!strstr(m, needle)) {
    print_error("expected an error containing '%s', got '%s'\n", needle, m);
    _fail(file, line);
  }
}

/* ---- rewriting checkpoints ------------------------------------------------ */

#include <dirent.h>

struct tu_writer {
  cslim_st_writer *w;
  int pass; /* 0 declare, 1 data */
};

void tu_emit(tu_writer *w, const char *name, cslim_dtype dt, int ndim, const int64_t *shape, const void *data) {
  if (w->pass == 0) {
    if (cslim_st_writer_declare(w->w, name, dt, ndim, shape)) fail_msg("declare %s: %s", name, cslim_errmsg());
  } else {
    if (cslim_st_writer_put(w->w, name, data)) fail_msg("put %s: %s", name, cslim_errmsg());
  }
}

static char *replace_all(const char *s, const char *from, const char *to) {
  size_t lf = strlen(from), lt = strlen(to), n = 0;
  for (const char *p = strstr(s, from); p; p = strstr(p + lf, from)) n++;
  if (!n) fail_msg("config edit: '%s' not found", from);
  char *r = malloc(strlen(s) + n * (lt + 1) + 1), *o = r;
  const char *p = s;
  for (const char *q = strstr(p, from); q; q = strstr(p, from)) {
    memcpy(o, p, (size_t)(q - p));
    o += q - p;
    memcpy(o, to, lt);
    o += lt;
    p = q + lf;
  }
  strcpy(o, p);
  return r;
}

void tu_rewrite_model(const char *src, const char *dst, tu_transform fn, void *ctx, const char *const *edits) {
  mkdir(dst, 0755);
  DIR *d = opendir(src);
  struct dirent *de;
  while ((de = readdir(d))) {
    const char *n = de->d_name;
    size_t l = strlen(n);
    if (n[0] == '.' || (l > 12 && !strcmp(n + l - 12, ".safetensors")) || strstr(n, ".safetensors.index.json"))
      continue;
    char a[4096], b[4096];
    snprintf(a, sizeof a, "%s/%s", src, n);
    snprintf(b, sizeof b, "%s/%s", dst, n);
    if (!strcmp(n, "config.json") && edits) {
      size_t len;
      char *txt = (char *)tu_read_file(a, &len);
      for (int i = 0; edits[i]; i += 2) {
        char *r = replace_all(txt, edits[i], edits[i + 1]);
        free(txt);
        txt = r;
      }
      tu_write_file(b, txt, strlen(txt));
      free(txt);
    } else if (cslim_copy_file(a, b)) {
      fail_msg("copy %s: %s", a, cslim_errmsg());
    }
  }
  closedir(d);
  cslim_st *st;
  if (cslim_st_open(src, &st)) fail_msg("%s", cslim_errmsg());
  tu_writer w = {NULL, 0};
  if (cslim_st_writer_create(dst, "model", 0, &w.w)) fail_msg("%s", cslim_errmsg());
  for (w.pass = 0; w.pass < 2; w.pass++) {
    for (size_t i = 0; i < cslim_st_count(st); i++) fn(&w, cslim_st_at(st, i), ctx);
    if (w.pass == 0 && cslim_st_writer_begin(w.w)) fail_msg("%s", cslim_errmsg());
  }
  if (cslim_st_writer_finish(w.w)) fail_msg("%s", cslim_errmsg());
  cslim_st_writer_free(w.w);
  cslim_st_close(st);
}

/* Fuse the per-expert tensors of tiny-qwen3-moe into gate_up_proj / down_proj:
 * ctx = 0: the Hub's Qwen3-VL-MoE layout [E, H, 2I] + [E, I, H] (x·W);
 * ctx = 1: transformers 5's [E, 2I, H] + [E, H, I]. */
void tu_fuse_experts(tu_writer *w, const cslim_tensor *t, void *ctx) {
  int v5 = *(int *)ctx;
  const int E = 8, H = 256, I = 128;
  int layer;
  char rest[64];
  if (sscanf(t->name, "model.layers.%d.mlp.experts.%63s", &layer, rest) != 2) {
    tu_emit(w, t->name, t->dtype, t->ndim, t->shape, t->data);
    return;
  }
  if (strcmp(rest, "0.gate_proj.weight") != 0) return; /* emit once per layer */
  static cslim_st *src;
  if (!src && cslim_st_open(tu_fixture("models/tiny-qwen3-moe"), &src)) fail_msg("%s", cslim_errmsg());
  char gu[96], dn[96];
  snprintf(gu, sizeof gu, "model.layers.%d.mlp.experts.gate_up_proj", layer);
  snprintf(dn, sizeof dn, "model.layers.%d.mlp.experts.down_proj", layer);
  int64_t sgu[3] = {E, v5 ? 2 * I : H, v5 ? H : 2 * I}, sdn[3] = {E, v5 ? H : I, v5 ? I : H};
  uint16_t *a = NULL, *b = NULL;
  if (w && sgu[0]) {
    a = malloc((size_t)E * H * 2 * I * 2);
    b = malloc((size_t)E * I * H * 2);
    for (int e = 0; e < E; e++) {
      const uint16_t *g = cslim_st_findf(src, "model.layers.%d.mlp.experts.%d.gate_proj.weight", layer, e)->data;
      const uint16_t *u = cslim_st_findf(src, "model.layers.%d.mlp.experts.%d.up_proj.weight", layer, e)->data;
      const uint16_t *d = cslim_st_findf(src, "model.layers.%d.mlp.experts.%d.down_proj.weight", layer, e)->data;
      for (int i = 0; i < I; i++)
        for (int h = 0; h < H; h++) {
          if (v5) {
            a[((size_t)e * 2 * I + i) * H + h] = g[i * H + h];
            a[((size_t)e * 2 * I + I + i) * H + h] = u[i * H + h];
            b[((size_t)e * H + h) * I + i] = d[h * I + i];
          } else {
            a[((size_t)e * H + h) * 2 * I + i] = g[i * H + h];
            a[((size_t)e * H + h) * 2 * I + I + i] = u[i * H + h];
            b[((size_t)e * I + i) * H + h] = d[h * I + i];
          }
        }
    }
  }
  tu_emit(w, gu, CSLIM_BF16, 3, sgu, a);
  tu_emit(w, dn, CSLIM_BF16, 3, sdn, b);
  free(a);
  free(b);
}
