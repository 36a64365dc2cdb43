/* Test tool: a copy of a dense Qwen3 checkpoint with activation outliers.
 *   outlier_model SRC_DIR DST_FILE FACTOR CH...
 * For every layer, input_layernorm and post_attention_layernorm weights of
 * channels CH are multiplied by FACTOR and the matching input columns of
 * q/k/v and gate/up divided by it: the float function is unchanged (exactly,
 * for a power-of-two FACTOR in bf16), but those channels of the Linears'
 * inputs become FACTOR times larger, as in real LLMs. Writes one
 * safetensors file; the caller copies config.json and the tokenizer. */
#include "cslim/safetensors.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int ends_with(const char *s, const char *suf) {
  size_t a = strlen(s), b = strlen(suf);
  return a >= b && !strcmp(s + a - b, suf);
}

int main(int argc, char **argv) {
  if (argc < 5) {
    fprintf(stderr, "usage: outlier_model SRC_DIR DST_FILE FACTOR CH...\n");
    return 2;
  }
  cslim_st *st;
  if (cslim_st_open(argv[1], &st)) {
    fprintf(stderr, "outlier_model: %s\n", cslim_errmsg());
    return 2;
  }
  float k = (float)atof(argv[3]);
  int nch = argc - 4, *ch = malloc((size_t)nch * sizeof(int));
  for (int i = 0; i < nch; i++) ch[i] = atoi(argv[4 + i]);
  char dir[4096], *slash;
  snprintf(dir, sizeof dir, "%s", argv[2]);
  slash = strrchr(dir, '/');
  const char *base = slash ? slash + 1 : dir;
  char bname[256];
  snprintf(bname, sizeof bname, "%s", base);
  if (ends_with(bname, ".safetensors")) bname[strlen(bname) - 12] = 0;
  if (slash) *slash = 0;
  else snprintf(dir, sizeof dir, ".");
  cslim_st_writer *w;
  int rc = cslim_st_writer_create(dir, bname, 0, &w);
  for (size_t i = 0; !rc && i < cslim_st_count(st); i++) {
    const cslim_tensor *t = cslim_st_at(st, i);
    rc = cslim_st_writer_declare(w, t->name, t->dtype, t->ndim, t->shape);
  }
  if (!rc) rc = cslim_st_writer_begin(w);
  for (size_t i = 0; !rc && i < cslim_st_count(st); i++) {
    const cslim_tensor *t = cslim_st_at(st, i);
    float *f = malloc((size_t)t->numel * sizeof(float));
    cslim_st_read_f32(st, t, f);
    int norm = ends_with(t->name, "input_layernorm.weight") || ends_with(t->name, "post_attention_layernorm.weight");
    int cols = ends_with(t->name, "q_proj.weight") || ends_with(t->name, "k_proj.weight") ||
               ends_with(t->name, "v_proj.weight") || ends_with(t->name, "gate_proj.weight") ||
               ends_with(t->name, "up_proj.weight");
    for (int j = 0; j < nch; j++) {
      if (norm) f[ch[j]] *= k;
      if (cols)
        for (int64_t r = 0; r < t->shape[0]; r++) f[r * t->shape[1] + ch[j]] /= k;
    }
    rc = cslim_st_writer_put_f32(w, t->name, f);
    free(f);
  }
  if (!rc) rc = cslim_st_writer_finish(w);
  if (rc) fprintf(stderr, "outlier_model: %s\n", cslim_errmsg());
  cslim_st_writer_free(w);
  cslim_st_close(st);
  free(ch);
  return rc ? 1 : 0;
}
