/* vl_moe_model: a Qwen3-VL (dense) checkpoint turned into a Qwen3-VL-MoE one with the Hub's fused
 * experts (mlp.experts.gate_up_proj [E, H, 2I], down_proj [E, I, H], applied as x·W), for the GPU
 * parity script (bench/gpu_parity.sh) on the fixture's tiny-qwen3-vl:
 *   vl_moe_model --from DIR --out DIR [--experts E] [--top_k K] [--seed S]
 * Expert e is the dense MLP with its gate rows scaled by 1 + e/E and its up rows by 1 / (1 + e/E)
 * (distinct experts, outputs of the dense model's size); the router is uniform in ±0.1, so that the
 * tokens spread over the experts. Everything else (vision tower, tokenizer, processor) is copied. */
#include "cslim/cslim.h"
#include "cslim/model.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define SUFFIX ".mlp.gate_proj.weight"

static int fail(const char *msg) {
  fprintf(stderr, "vl_moe_model: %s\n", msg);
  return 1;
}

/* config.json with the text model made MoE */
static int write_config(const char *from, const char *out, int E, int K) {
  char path[4096];
  snprintf(path, sizeof path, "%s/config.json", from);
  FILE *f = fopen(path, "rb");
  if (!f) return fail("cannot read config.json");
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *txt = malloc((size_t)n + 1);
  size_t got = fread(txt, 1, (size_t)n, f);
  fclose(f);
  txt[got] = 0;
  cJSON *c = cJSON_Parse(txt);
  free(txt);
  cJSON *t = c ? cJSON_GetObjectItem(c, "text_config") : NULL;
  cJSON *inter = t ? cJSON_GetObjectItem(t, "intermediate_size") : NULL;
  if (!inter) return fail("config.json: no text_config.intermediate_size (not a Qwen3-VL model)");
  cJSON_ReplaceItemInObject(c, "architectures", cJSON_CreateStringArray((const char *[]){"Qwen3VLMoeForConditionalGeneration"}, 1));
  cJSON_ReplaceItemInObject(c, "model_type", cJSON_CreateString("qwen3_vl_moe"));
  cJSON_ReplaceItemInObject(t, "model_type", cJSON_CreateString("qwen3_vl_moe_text"));
  cJSON_AddNumberToObject(t, "num_experts", E);
  cJSON_AddNumberToObject(t, "num_experts_per_tok", K);
  cJSON_AddNumberToObject(t, "moe_intermediate_size", inter->valueint);
  cJSON_AddBoolToObject(t, "norm_topk_prob", 1);
  cJSON_AddNumberToObject(t, "decoder_sparse_step", 1);
  cJSON_AddItemToObject(t, "mlp_only_layers", cJSON_CreateArray());
  char *s = cJSON_Print(c);
  cJSON_Delete(c);
  snprintf(path, sizeof path, "%s/config.json", out);
  f = fopen(path, "wb");
  int bad = !f || fputs(s, f) < 0;
  if (f && fclose(f)) bad = 1;
  free(s);
  return bad ? fail("cannot write config.json") : 0;
}

static float urand(uint64_t *s) {
  *s ^= *s << 13;
  *s ^= *s >> 7;
  *s ^= *s << 17;
  return (float)(*s >> 40) * 0x1p-24f;
}

static float *read_f32(cslim_st *st, const char *name, size_t numel) {
  const cslim_tensor *t = cslim_st_find(st, name);
  if (!t || (size_t)t->numel != numel) return NULL;
  float *x = malloc(numel * sizeof(float));
  if (x) cslim_st_read_f32(st, t, x);
  return x;
}

/* one layer's MLP (prefix "....layers.N"), as the router and the two fused expert tensors */
static cslim_status put_moe(cslim_st_writer *w, cslim_st *st, const char *pre, int E, int H, int I, uint64_t seed) {
  char n[512];
  snprintf(n, sizeof n, "%s.mlp.gate_proj.weight", pre);
  float *g = read_f32(st, n, (size_t)I * H);
  snprintf(n, sizeof n, "%s.mlp.up_proj.weight", pre);
  float *u = read_f32(st, n, (size_t)I * H);
  snprintf(n, sizeof n, "%s.mlp.down_proj.weight", pre);
  float *d = read_f32(st, n, (size_t)H * I);
  float *gu = malloc((size_t)E * H * 2 * I * sizeof(float)), *dn = malloc((size_t)E * I * H * sizeof(float));
  float *r = malloc((size_t)E * H * sizeof(float));
  cslim_status rc = g && u && d && gu && dn && r ? CSLIM_OK : cslim_error(CSLIM_ERR_FORMAT, "%s: MLP weights missing", pre);
  for (int e = 0; !rc && e < E; e++) {
    const float f = 1.0f + (float)e / (float)E;
    for (int h = 0; h < H; h++)
      for (int i = 0; i < I; i++) {
        gu[((size_t)e * H + h) * 2 * I + i] = g[(size_t)i * H + h] * f;
        gu[((size_t)e * H + h) * 2 * I + I + i] = u[(size_t)i * H + h] / f;
        dn[((size_t)e * I + i) * H + h] = d[(size_t)h * I + i];
      }
  }
  for (size_t i = 0; !rc && i < (size_t)E * H; i++) r[i] = (urand(&seed) - 0.5f) * 0.2f;
  if (!rc) {
    snprintf(n, sizeof n, "%s.mlp.gate.weight", pre);
    rc = cslim_st_writer_put_f32(w, n, r);
  }
  if (!rc) {
    snprintf(n, sizeof n, "%s.mlp.experts.gate_up_proj", pre);
    rc = cslim_st_writer_put_f32(w, n, gu);
  }
  if (!rc) {
    snprintf(n, sizeof n, "%s.mlp.experts.down_proj", pre);
    rc = cslim_st_writer_put_f32(w, n, dn);
  }
  free(g), free(u), free(d), free(gu), free(dn), free(r);
  return rc;
}

int main(int argc, char **argv) {
  const char *from = NULL, *out = NULL;
  int E = 4, K = 2;
  unsigned long long seed = 1;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--from")) from = argv[i + 1];
    else if (!strcmp(argv[i], "--out")) out = argv[i + 1];
    else if (!strcmp(argv[i], "--experts")) E = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--top_k")) K = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--seed")) seed = strtoull(argv[i + 1], NULL, 10);
  }
  if (!from || !out || E < 1 || K < 1 || K > E) {
    fprintf(stderr, "usage: vl_moe_model --from QWEN3_VL_DIR --out DIR [--experts E] [--top_k K] [--seed S]\n");
    return 2;
  }
  if (mkdir(out, 0755)) return fail("cannot create the output directory (it must not exist)");
  DIR *dir = opendir(from);
  if (!dir) return fail("cannot open the input directory");
  for (struct dirent *de; (de = readdir(dir));) {
    const char *n = de->d_name;
    if (n[0] == '.' || strstr(n, ".safetensors") || !strcmp(n, "config.json")) continue;
    char a[4096], b[4096];
    snprintf(a, sizeof a, "%s/%s", from, n);
    snprintf(b, sizeof b, "%s/%s", out, n);
    if (cslim_copy_file(a, b)) return fail(cslim_errmsg());
  }
  closedir(dir);
  if (write_config(from, out, E, K)) return 1;
  cslim_model *m;
  if (cslim_model_open(from, &m)) return fail(cslim_errmsg());
  const int H = cslim_model_config(m)->text.hidden_size, I = cslim_model_config(m)->text.intermediate_size;
  cslim_model_close(m);
  cslim_st *st;
  cslim_st_writer *w;
  if (cslim_st_open(from, &st)) return fail(cslim_errmsg());
  if (cslim_st_writer_create(out, "model", 0, &w)) return fail(cslim_errmsg());
  cslim_status rc = CSLIM_OK;
  for (int pass = 0; pass < 2 && !rc; pass++) { /* declare every tensor, then write them */
    for (size_t i = 0; i < cslim_st_count(st) && !rc; i++) {
      const cslim_tensor *t = cslim_st_at(st, i);
      const char *mlp = strstr(t->name, ".mlp.");
      size_t len = strlen(t->name), k = strlen(SUFFIX);
      if (mlp && strstr(t->name, "layers.") && !strstr(t->name, "visual")) {
        if (len <= k || strcmp(t->name + len - k, SUFFIX)) continue; /* up / down: with the gate */
        char pre[384];
        snprintf(pre, sizeof pre, "%.*s", (int)(mlp - t->name), t->name);
        if (pass) {
          rc = put_moe(w, st, pre, E, H, I, seed + i);
          continue;
        }
        char n[512];
        int64_t sr[2] = {E, H}, sgu[3] = {E, H, 2 * I}, sdn[3] = {E, I, H};
        snprintf(n, sizeof n, "%s.mlp.gate.weight", pre);
        rc = cslim_st_writer_declare(w, n, CSLIM_BF16, 2, sr);
        snprintf(n, sizeof n, "%s.mlp.experts.gate_up_proj", pre);
        if (!rc) rc = cslim_st_writer_declare(w, n, CSLIM_BF16, 3, sgu);
        snprintf(n, sizeof n, "%s.mlp.experts.down_proj", pre);
        if (!rc) rc = cslim_st_writer_declare(w, n, CSLIM_BF16, 3, sdn);
      } else {
        rc = pass ? cslim_st_writer_put(w, t->name, t->data) : cslim_st_writer_declare(w, t->name, t->dtype, t->ndim, t->shape);
      }
    }
    if (!rc && !pass) rc = cslim_st_writer_begin(w);
  }
  if (!rc) rc = cslim_st_writer_finish(w);
  cslim_st_writer_free(w);
  cslim_st_close(st);
  if (rc) return fail(cslim_errmsg());
  printf("wrote %s (Qwen3-VL-MoE, %d experts, top-%d, fused [E, H, 2I] experts)\n", out, E, K);
  return 0;
}
