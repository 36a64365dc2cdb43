/* Forward pass against the transformers references (float32): every
 * hidden.i and the logits within 1e-5 relative, for the dense and the MoE
 * fixture; layer-level API behaviour; expert layouts; KV-cache decoding; the
 * reproducible arithmetic (model/repro.h) the forward is built on. */
#include "testutil.h"

#include "model/model_internal.h"
#include "model/repro.h"

#include "cslim/eval.h"
#include "cslim/model.h"
#include "cslim/safetensors.h"
#include "cslim/tokenizer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* cslim_expf: within 1 ulp of e^x and correctly rounded for nearly every input, on a sample of every float
 * pattern in [-104, 89]; the limits of its range and the special values. */
static void test_expf_accuracy(void **s) {
  double worst = 0;
  long n = 0, exact = 0;
  const uint32_t lo[2] = {0x00000000u, 0x80000000u}, hi[2] = {cslim_f32_bits(89.0f), cslim_f32_bits(-104.0f)};
  for (int sign = 0; sign < 2; sign++)
    for (uint32_t u = lo[sign]; u <= hi[sign]; u += 2039) {
      const float x = cslim_bits_f32(u), y = cslim_expf(x);
      const double ref = exp((double)x);
      if (isinf((float)ref)) { /* above FLT_MAX: overflows */
        assert_true(isinf(y));
        continue;
      }
      int e;
      frexp(ref, &e);
      double ulp = ldexp(1.0, e - 24);
      if (ulp < ldexp(1.0, -149)) ulp = ldexp(1.0, -149); /* subnormal results */
      const double err = fabs((double)y - ref) / ulp;
      worst = err > worst ? err : worst;
      exact += y == (float)ref;
      n++;
    }
  if (worst > 1.0) fail_msg("cslim_expf: %.3f ulp from e^x", worst);
  if (exact < n * 0.99) fail_msg("cslim_expf: only %ld of %ld correctly rounded", exact, n);
  assert_true(isinf(cslim_expf(89.0f)) && cslim_expf(89.0f) > 0);
  assert_true(isfinite(cslim_expf(88.7f)));  /* the largest results stay finite */
  assert_true(cslim_expf(-104.0f) == 0.0f && cslim_expf(-INFINITY) == 0.0f);
  assert_true(isinf(cslim_expf(INFINITY)));
  assert_true(isnan(cslim_expf(NAN)));
  assert_true(cslim_expf(0.0f) == 1.0f);
}

/* cslim_gemm_ordered: every element bit for bit the single fma chain over t (several depth blocks, edge tiles,
 * both layouts of B, a scale), whatever the thread count. */
static void test_ordered_gemm_is_one_chain(void **s) {
  const int m = 13, n = 37, k = 600; /* k > one depth block; m, n not multiples of the register tile */
  float *A = malloc(sizeof(float) * m * k), *B = malloc(sizeof(float) * n * k), *Bt = malloc(sizeof(float) * n * k);
  float *C1 = malloc(sizeof(float) * m * n), *C2 = malloc(sizeof(float) * m * n), *C3 = malloc(sizeof(float) * m * n);
  uint32_t r = 12345;
  for (int i = 0; i < m * k; i++) r = r * 1664525u + 1013904223u, A[i] = (float)(r >> 8) / 16777216.0f - 0.5f;
  for (int i = 0; i < n * k; i++) r = r * 1664525u + 1013904223u, B[i] = (float)(r >> 8) / 16777216.0f - 0.5f;
  for (int j = 0; j < n; j++)
    for (int t = 0; t < k; t++) Bt[(size_t)t * n + j] = B[(size_t)j * k + t];
  const float alpha = 0.125f;
  assert_int_equal(cslim_gemm_ordered(1, m, n, k, alpha, A, k, B, k, C1, n, 1), CSLIM_OK);
  assert_int_equal(cslim_gemm_ordered(1, m, n, k, alpha, A, k, B, k, C2, n, 2), CSLIM_OK);
  assert_int_equal(cslim_gemm_ordered(0, m, n, k, alpha, A, k, Bt, n, C3, n, 2), CSLIM_OK);
  int differ = 0;
  for (int i = 0; i < m; i++)
    for (int j = 0; j < n; j++) {
      float acc = 0.0f;
      for (int t = 0; t < k; t++) acc = fmaf(A[(size_t)i * k + t], B[(size_t)j * k + t], acc);
      acc = acc * alpha;
      const float *c[3] = {C1, C2, C3};
      for (int v = 0; v < 3; v++) differ += memcmp(&acc, &c[v][(size_t)i * n + j], 4) != 0;
    }
  assert_int_equal(differ, 0);
  free(A), free(B), free(Bt), free(C1), free(C2), free(C3);
}

static const float *ref_f32(cslim_st *ref, const char *name, int64_t numel) {
  const cslim_tensor *t = cslim_st_find(ref, name);
  if (!t) fail_msg("reference tensor %s missing", name);
  assert_int_equal(t->dtype, CSLIM_F32);
  assert_int_equal(t->numel, numel);
  return t->data;
}

/* Run the reference prompts of `model` and compare every hidden.i and the logits. */
static void check_against_reference(const char *model, const char *refname, double *worst) {
  cslim_model *m;
  if (cslim_model_open(tu_fixture(model), &m)) fail_msg("%s", cslim_errmsg());
  cslim_st *ref;
  assert_int_equal(cslim_st_open(tu_fixture(refname), &ref), CSLIM_OK);
  const cslim_tensor *ids_t = cslim_st_find(ref, "input_ids");
  int B = (int)ids_t->shape[0], T = (int)ids_t->shape[1];
  int32_t *ids = malloc((size_t)B * (size_t)T * sizeof(int32_t));
  for (int i = 0; i < B * T; i++) ids[i] = (int32_t)((const int64_t *)ids_t->data)[i];
  int lens[8];
  for (int b = 0; b < B; b++) lens[b] = T;
  cslim_acts *a;
  assert_int_equal(cslim_acts_embed(m, ids, lens, B, &a), CSLIM_OK);
  const cslim_config *c = cslim_model_config(m);
  int L = c->text.num_layers, H = c->text.hidden_size, V = c->text.vocab_size;
  size_t n = (size_t)B * (size_t)T * (size_t)H;
  float **hid = malloc((size_t)(L + 1) * sizeof(float *));
  for (int i = 0; i <= L; i++) hid[i] = malloc(n * sizeof(float));
  assert_int_equal(cslim_model_forward(m, a, hid, NULL), CSLIM_OK);
  *worst = 0;
  for (int i = 0; i <= L; i++) {
    char name[32];
    snprintf(name, sizeof name, "hidden.%d", i);
    double e = tu_rel_err(hid[i], ref_f32(ref, name, (int64_t)n), n);
    if (e > *worst) *worst = e;
    if (!(e < 1e-5)) fail_msg("%s %s: relative error %.3g", model, name, e);
  }
  float *logits = malloc((size_t)B * (size_t)T * (size_t)V * sizeof(float));
  assert_int_equal(cslim_model_logits(m, hid[L], B * T, logits), CSLIM_OK);
  double e = tu_rel_err(logits, ref_f32(ref, "logits", (int64_t)B * T * V), (size_t)B * T * V);
  if (e > *worst) *worst = e;
  if (!(e < 1e-5)) fail_msg("%s logits: relative error %.3g", model, e);
  printf("  %s: worst relative error %.3g\n", model, *worst);
  for (int i = 0; i <= L; i++) free(hid[i]);
  free(hid);
  free(logits);
  free(ids);
  cslim_acts_free(a);
  cslim_st_close(ref);
  cslim_model_close(m);
}

static void test_dense_matches_reference(void **s) {
  (void)s;
  double w;
  check_against_reference("models/tiny-qwen3", "refs/tiny-qwen3_ref.safetensors", &w);
}

static void test_moe_matches_reference(void **s) {
  (void)s;
  double w;
  check_against_reference("models/tiny-qwen3-moe", "refs/tiny-qwen3-moe_ref.safetensors", &w);
}

/* ---- perplexity -------------------------------------------------------------------- */

static double ppl_of(const char *model) {
  cslim_tokenizer *tok;
  assert_int_equal(cslim_tokenizer_load(tu_fixture(model), &tok), CSLIM_OK);
  size_t n;
  char *text = (char *)tu_read_file(tu_fixture("text/eval.txt"), &n);
  cslim_ids ids = {0};
  assert_int_equal(cslim_tokenizer_encode(tok, text, n, &ids), CSLIM_OK);
  cslim_model *m;
  assert_int_equal(cslim_model_open(tu_fixture(model), &m), CSLIM_OK);
  cslim_ppl_opts o = {256, 64, 32};
  cslim_ppl_result r;
  assert_int_equal(cslim_eval_perplexity(m, ids.v, ids.n, &o, &r), CSLIM_OK);
  assert_int_equal(r.windows, 64);
  assert_int_equal(r.tokens, 64 * 255);
  printf("  %s: ppl %.4f\n", model, r.ppl);
  cslim_model_close(m);
  cslim_ids_free(&ids);
  free(text);
  cslim_tokenizer_free(tok);
  return r.ppl;
}

static void test_perplexity(void **s) {
  (void)s;
  double d = ppl_of("models/tiny-qwen3"), e = ppl_of("models/tiny-qwen3-moe");
  /* the bound (1 % of 19.05 / 17.90) and the fixtures' float32 values */
  assert_true(fabs(d / 19.05 - 1) < 0.01);
  assert_true(fabs(e / 17.90 - 1) < 0.01);
  assert_true(fabs(d / 19.0464 - 1) < 1e-3);
  assert_true(fabs(e / 17.8859 - 1) < 1e-3);
}

/* ---- generation ---------------------------------------------------------------------- */

static int32_t argmax(const float *x, int n) {
  int32_t b = 0;
  for (int i = 1; i < n; i++)
    if (x[i] > x[b]) b = i;
  return b;
}

static void test_greedy_generation(void **s) {
  (void)s;
  cslim_model *m;
  assert_int_equal(cslim_model_open(tu_fixture("models/tiny-qwen3"), &m), CSLIM_OK);
  cslim_model_set_layer_cache(m, 1u << 30);
  cslim_st *ref;
  assert_int_equal(cslim_st_open(tu_fixture("refs/tiny-qwen3_ref.safetensors"), &ref), CSLIM_OK);
  const int64_t *rid = cslim_st_find(ref, "input_ids")->data;
  const float *rl = cslim_st_find(ref, "logits")->data;
  const int V = 4096, P = 32, N = 12;
  int32_t prompt[64];
  for (int i = 0; i < P; i++) prompt[i] = (int32_t)rid[i];
  cslim_ids out = {0};
  cslim_generate_opts o = {N, NULL, 0, NULL, NULL, NULL};
  assert_int_equal(cslim_generate(m, prompt, P, &o, &out), CSLIM_OK);
  assert_int_equal(out.n, N);
  /* the first token is the argmax of the reference logits at the prompt's end */
  assert_int_equal(out.v[0], argmax(rl + (size_t)(P - 1) * V, V));
  /* decoding with the KV cache agrees with a full forward pass over prompt + output */
  int32_t all[64];
  memcpy(all, prompt, P * sizeof(int32_t));
  memcpy(all + P, out.v, N * sizeof(int32_t));
  int len = P + N;
  cslim_acts *a;
  assert_int_equal(cslim_acts_embed(m, all, &len, 1, &a), CSLIM_OK);
  assert_int_equal(cslim_model_forward(m, a, NULL, NULL), CSLIM_OK);
  float *lg = malloc((size_t)len * V * sizeof(float));
  assert_int_equal(cslim_model_logits(m, a->h, len, lg), CSLIM_OK);
  for (int i = 0; i < N; i++) assert_int_equal(out.v[i], argmax(lg + (size_t)(P - 1 + i) * V, V));
  /* stop tokens end generation after being emitted */
  cslim_ids out2 = {0};
  int32_t stop = out.v[2];
  cslim_generate_opts o2 = {N, &stop, 1, NULL, NULL, NULL};
  assert_int_equal(cslim_generate(m, prompt, P, &o2, &out2), CSLIM_OK);
  assert_int_equal(out2.n, 3);
  free(lg);
  cslim_acts_free(a);
  cslim_ids_free(&out);
  cslim_ids_free(&out2);
  cslim_st_close(ref);
  cslim_model_close(m);
}

/* ---- the layer API: hooks, weight replacement, routing -------------------------------- */

typedef struct hook_log {
  int calls[5];
  int rows[5];
  int expert_calls;
  int routed;
  int fail_at_kind; /* -1: never */
  int n_lins[5];
} hook_log;

static cslim_status log_hook(void *ctx, const cslim_linear_group *g, float *x, int rows) {
  hook_log *h = ctx;
  (void)x;
  if ((int)g->kind == h->fail_at_kind) return cslim_error(CSLIM_ERR_NUMERIC, "hook says stop");
  h->calls[g->kind]++;
  h->rows[g->kind] += rows;
  h->n_lins[g->kind] = g->n;
  if (g->expert >= 0) h->expert_calls++;
  for (int i = 0; i < g->n; i++) assert_non_null(g->lin[i]->w); /* weights ready when the hook runs */
  return CSLIM_OK;
}

static void log_routing(void *ctx, int layer, const int *counts, int n) {
  hook_log *h = ctx;
  (void)layer;
  for (int e = 0; e < n; e++) h->routed += counts[e];
}

static void test_layer_api(void **s) {
  (void)s;
  cslim_model *m;
  assert_int_equal(cslim_model_open(tu_fixture("models/tiny-qwen3-moe"), &m), CSLIM_OK);
  int32_t ids[40];
  for (int i = 0; i < 40; i++) ids[i] = (i * 37) % 4000;
  int lens[2] = {25, 15};
  cslim_acts *a;
  assert_int_equal(cslim_acts_embed(m, ids, lens, 2, &a), CSLIM_OK);
  cslim_layer *l;
  assert_int_equal(cslim_layer_load(m, 0, &l), CSLIM_OK);
  assert_true(l->is_moe);
  assert_int_equal(l->n_experts, 8);
  assert_null(l->experts[0].w); /* experts are converted lazily */
  hook_log h = {{0}, {0}, 0, 0, -1, {0}};
  cslim_hooks hooks = {&h, log_hook, log_routing};
  assert_int_equal(cslim_layer_forward(m, l, a, &hooks, NULL), CSLIM_OK);
  assert_int_equal(h.rows[CSLIM_IN_QKV], 40);
  assert_int_equal(h.n_lins[CSLIM_IN_QKV], 3);
  assert_int_equal(h.rows[CSLIM_IN_O], 40);
  assert_int_equal(h.rows[CSLIM_IN_ROUTER], 40);
  assert_int_equal(h.routed, 40 * 2);              /* top-2 */
  assert_int_equal(h.rows[CSLIM_IN_GATE_UP], 80);  /* every routed row, once */
  assert_int_equal(h.rows[CSLIM_IN_DOWN], 80);
  assert_int_equal(h.n_lins[CSLIM_IN_GATE_UP], 2);
  assert_true(h.expert_calls >= 2);
  assert_null(l->experts[0].w); /* and released after use */
  /* a failing hook stops the pass with its error */
  h.fail_at_kind = CSLIM_IN_O;
  assert_int_equal(cslim_layer_forward(m, l, a, &hooks, NULL), CSLIM_ERR_NUMERIC);
  assert_errmsg_contains("hook says stop");
  cslim_layer_free(m, l);
  cslim_acts_free(a);
  cslim_model_close(m);
}

/* Zero o_proj and down_proj of a dense layer: its output is its input. */
static void test_weight_replacement(void **s) {
  (void)s;
  cslim_model *m;
  assert_int_equal(cslim_model_open(tu_fixture("models/tiny-qwen3"), &m), CSLIM_OK);
  int32_t ids[16];
  for (int i = 0; i < 16; i++) ids[i] = 100 + i;
  int len = 16;
  cslim_acts *a;
  assert_int_equal(cslim_acts_embed(m, ids, &len, 1, &a), CSLIM_OK);
  float *before = malloc(16 * 256 * sizeof(float));
  memcpy(before, a->h, 16 * 256 * sizeof(float));
  cslim_layer *l;
  assert_int_equal(cslim_layer_load(m, 1, &l), CSLIM_OK);
  memset(l->o.w, 0, (size_t)l->o.out * l->o.in * sizeof(float));
  memset(l->down.w, 0, (size_t)l->down.out * l->down.in * sizeof(float));
  assert_int_equal(cslim_layer_forward(m, l, a, NULL, NULL), CSLIM_OK);
  assert_memory_equal(before, a->h, 16 * 256 * sizeof(float));
  cslim_layer_free(m, l);
  cslim_acts_free(a);
  free(before);
  cslim_model_close(m);
}

/* ---- checkpoint variants ----------------------------------------------------------------- */

static void logits_of(const char *dir, float *out, int *len) {
  cslim_model *m;
  if (cslim_model_open(dir, &m)) fail_msg("%s", cslim_errmsg());
  int32_t ids[24];
  for (int i = 0; i < 24; i++) ids[i] = (i * 151) % 4000;
  *len = 24;
  cslim_acts *a;
  assert_int_equal(cslim_acts_embed(m, ids, len, 1, &a), CSLIM_OK);
  assert_int_equal(cslim_model_forward(m, a, NULL, NULL), CSLIM_OK);
  assert_int_equal(cslim_model_logits(m, a->h, 24, out), CSLIM_OK);
  cslim_acts_free(a);
  cslim_model_close(m);
}

static void test_fused_expert_layouts(void **s) {
  (void)s;
  float *want = malloc(24 * 4096 * sizeof(float)), *got = malloc(24 * 4096 * sizeof(float));
  int len;
  logits_of(tu_fixture("models/tiny-qwen3-moe"), want, &len);
  char *root = tu_tmpdir();
  for (int v5 = 0; v5 < 2; v5++) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/fused%d", root, v5);
    tu_rewrite_model(tu_fixture("models/tiny-qwen3-moe"), dir, tu_fuse_experts, &v5, NULL);
    cslim_st *st;
    assert_int_equal(cslim_st_open(dir, &st), CSLIM_OK);
    const cslim_tensor *gu = cslim_st_find(st, "model.layers.0.mlp.experts.gate_up_proj");
    assert_non_null(gu); /* [8, 256, 256] either way: only down_proj tells them apart */
    assert_int_equal(gu->shape[1], 256);
    cslim_st_close(st);
    logits_of(dir, got, &len);
    assert_memory_equal(got, want, 24 * 4096 * sizeof(float));
  }
  tu_rmtree(root);
  free(root);
  free(want);
  free(got);
}

static void copy_lm_head_from_embed(tu_writer *w, const cslim_tensor *t, void *ctx) {
  (void)ctx;
  if (!strcmp(t->name, "lm_head.weight")) return; /* tied: no lm_head */
  tu_emit(w, t->name, t->dtype, t->ndim, t->shape, t->data);
}

static void keep_embed_as_head(tu_writer *w, const cslim_tensor *t, void *ctx) {
  (void)ctx;
  if (!strcmp(t->name, "lm_head.weight")) return;
  tu_emit(w, t->name, t->dtype, t->ndim, t->shape, t->data);
  if (!strcmp(t->name, "model.embed_tokens.weight")) tu_emit(w, "lm_head.weight", t->dtype, t->ndim, t->shape, t->data);
}

static void test_tied_embeddings(void **s) {
  (void)s;
  char *root = tu_tmpdir();
  char tied[4096], untied[4096];
  snprintf(tied, sizeof tied, "%s/tied", root);
  snprintf(untied, sizeof untied, "%s/untied", root);
  const char *edits[] = {"\"tie_word_embeddings\": false", "\"tie_word_embeddings\": true", NULL};
  tu_rewrite_model(tu_fixture("models/tiny-qwen3"), tied, copy_lm_head_from_embed, NULL, edits);
  tu_rewrite_model(tu_fixture("models/tiny-qwen3"), untied, keep_embed_as_head, NULL, NULL);
  float *a = malloc(24 * 4096 * sizeof(float)), *b = malloc(24 * 4096 * sizeof(float));
  int len;
  logits_of(tied, a, &len);
  logits_of(untied, b, &len);
  assert_memory_equal(a, b, 24 * 4096 * sizeof(float));
  free(a);
  free(b);
  tu_rmtree(root);
  free(root);
}

static void drop_k_proj(tu_writer *w, const cslim_tensor *t, void *ctx) {
  (void)ctx;
  if (!strcmp(t->name, "model.layers.2.self_attn.k_proj.weight")) return;
  tu_emit(w, t->name, t->dtype, t->ndim, t->shape, t->data);
}

static void bad_shape(tu_writer *w, const cslim_tensor *t, void *ctx) {
  (void)ctx;
  if (!strcmp(t->name, "model.layers.1.mlp.up_proj.weight")) {
    int64_t sh[2] = {767, 256};
    tu_emit(w, t->name, t->dtype, 2, sh, t->data);
    return;
  }
  tu_emit(w, t->name, t->dtype, t->ndim, t->shape, t->data);
}

static void test_checkpoint_errors(void **s) {
  (void)s;
  char *root = tu_tmpdir();
  char d1[4096], d2[4096];
  snprintf(d1, sizeof d1, "%s/missing", root);
  snprintf(d2, sizeof d2, "%s/shape", root);
  tu_rewrite_model(tu_fixture("models/tiny-qwen3"), d1, drop_k_proj, NULL, NULL);
  tu_rewrite_model(tu_fixture("models/tiny-qwen3"), d2, bad_shape, NULL, NULL);
  cslim_model *m;
  assert_int_equal(cslim_model_open(d1, &m), CSLIM_ERR_FORMAT);
  assert_errmsg_contains("tensor 'model.layers.2.self_attn.k_proj.weight' is missing");
  assert_int_equal(cslim_model_open(d2, &m), CSLIM_ERR_FORMAT);
  assert_errmsg_contains("'model.layers.1.mlp.up_proj.weight' has shape [767, 256]; config.json implies [768, 256]");
  /* token ids outside the vocabulary */
  assert_int_equal(cslim_model_open(tu_fixture("models/tiny-qwen3"), &m), CSLIM_OK);
  int32_t ids[2] = {5, 5000};
  int len = 2;
  cslim_acts *a;
  assert_int_equal(cslim_acts_embed(m, ids, &len, 1, &a), CSLIM_ERR_INVALID);
  assert_errmsg_contains("token id 5000");
  cslim_model_close(m);
  tu_rmtree(root);
  free(root);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_expf_accuracy),
      cmocka_unit_test(test_ordered_gemm_is_one_chain),
      cmocka_unit_test(test_dense_matches_reference),
      cmocka_unit_test(test_moe_matches_reference),
      cmocka_unit_test(test_perplexity),
      cmocka_unit_test(test_greedy_generation),
      cmocka_unit_test(test_layer_api),
      cmocka_unit_test(test_weight_replacement),
      cmocka_unit_test(test_fused_expert_layouts),
      cmocka_unit_test(test_tied_embeddings),
      cmocka_unit_test(test_checkpoint_errors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
