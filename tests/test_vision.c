/* Qwen3-VL against the transformers references (tiny-qwen3-vl_ref):
 * preprocessing (pixel_values, grid, pad count, input ids), the vision
 * tower (last_hidden_state, pooler_output, deepstack features) and the
 * whole multimodal forward pass (every hidden.i and the logits); the image
 * decoder's conversions and errors; the resampler against torchvision;
 * get_rope_index. */
#include "testutil.h"

#include "cslim/chat.h"
#include "cslim/eval.h"
#include "cslim/image.h"
#include "cslim/safetensors.h"
#include "cslim/tokenizer.h"
#include "cslim/vision.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *PROMPTS[2] = {"astronaut", "coffee"};
#define VL_MODEL "models/tiny-qwen3-vl"
#define VL_REF "refs/tiny-qwen3-vl_ref.safetensors"

static const cslim_tensor *ref_t(cslim_st *ref, const char *p, const char *what) {
  char name[96];
  snprintf(name, sizeof name, "%s.%s", p, what);
  const cslim_tensor *t = cslim_st_find(ref, name);
  if (!t) fail_msg("reference tensor %s missing", name);
  return t;
}

/* P.input_ids as int32 (caller frees); *T receives the length. */
static int32_t *ref_ids(cslim_st *ref, const char *p, int *T) {
  const cslim_tensor *it = ref_t(ref, p, "input_ids");
  *T = (int)it->numel;
  int32_t *ids = malloc((size_t)*T * sizeof(int32_t));
  for (int i = 0; i < *T; i++) ids[i] = (int32_t)((const int64_t *)it->data)[i];
  return ids;
}

static void ref_grid(cslim_st *ref, const char *p, int grid[3]) {
  const cslim_tensor *g = ref_t(ref, p, "image_grid_thw");
  for (int k = 0; k < 3; k++) grid[k] = (int)((const int64_t *)g->data)[k];
}

/* ---- preprocessing ----------------------------------------------------------------------- */

static void check_pixels(const char *p, double tol, double *max_diff, size_t *n_diff) {
  cslim_image_processor proc;
  cslim_config cfg;
  assert_int_equal(cslim_config_load(tu_fixture(VL_MODEL), &cfg), CSLIM_OK);
  assert_int_equal(cslim_image_processor_load(tu_fixture(VL_MODEL), &cfg.vision, &proc), CSLIM_OK);
  char rel[96];
  snprintf(rel, sizeof rel, "images/%s_input.png", p);
  cslim_image img;
  if (cslim_image_load(tu_fixture(rel), &img)) fail_msg("%s", cslim_errmsg());
  float *rows;
  int grid[3], want[3];
  assert_int_equal(cslim_image_to_patches(&proc, &img, rel, &rows, grid), CSLIM_OK);
  cslim_st *ref;
  assert_int_equal(cslim_st_open(tu_fixture(VL_REF), &ref), CSLIM_OK);
  ref_grid(ref, p, want);
  assert_memory_equal(grid, want, sizeof grid);
  const cslim_tensor *pv = ref_t(ref, p, "pixel_values");
  assert_int_equal(pv->numel, (int64_t)grid[0] * grid[1] * grid[2] * cslim_image_patch_dim(&proc));
  const float *r = pv->data;
  *max_diff = 0;
  *n_diff = 0;
  for (int64_t i = 0; i < pv->numel; i++) {
    double d = fabs((double)rows[i] - (double)r[i]);
    if (d > *max_diff) *max_diff = d;
    *n_diff += d > 1e-6;
  }
  printf("  %s: %lldx%d patches, max |diff| %.3g, %zu of %lld elements differ\n", p, (long long)pv->shape[0],
         (int)pv->shape[1], *max_diff, *n_diff, (long long)pv->numel);
  if (!(*max_diff <= tol)) fail_msg("%s: pixel_values differ by %g (> %g)", p, *max_diff, tol);
  free(rows);
  cslim_image_free(&img);
  cslim_st_close(ref);
}

static void test_pixels_astronaut(void **s) {
  (void)s;
  double d;
  size_t n;
  check_pixels("astronaut", 1e-6, &d, &n); /* no resampling: exact */
}

static void test_pixels_coffee(void **s) {
  (void)s;
  double d;
  size_t n;
  /* resampled 600x400 -> 608x384: at most one 8-bit level (1/127.5 after normalising) */
  check_pixels("coffee", 1.0 / 127.5 + 1e-6, &d, &n);
}

/* The chat prompt with the image's pad count, tokenized: the reference ids. */
static void test_input_ids(void **s) {
  (void)s;
  cslim_st *ref;
  assert_int_equal(cslim_st_open(tu_fixture(VL_REF), &ref), CSLIM_OK);
  cslim_tokenizer *tok;
  assert_int_equal(cslim_tokenizer_load(tu_fixture(VL_MODEL), &tok), CSLIM_OK);
  cslim_chat_style style;
  assert_int_equal(cslim_chat_detect(tu_fixture(VL_MODEL), &style), CSLIM_OK);
  cslim_image_processor proc;
  assert_int_equal(cslim_image_processor_load(tu_fixture(VL_MODEL), NULL, &proc), CSLIM_OK);
  for (int k = 0; k < 2; k++) {
    char rel[96];
    snprintf(rel, sizeof rel, "images/%s_input.png", PROMPTS[k]);
    cslim_image img;
    assert_int_equal(cslim_image_load(tu_fixture(rel), &img), CSLIM_OK);
    int h, w;
    assert_int_equal(cslim_smart_resize(&proc, img.height, img.width, &h, &w), CSLIM_OK);
    int grid[3] = {1, h / proc.patch_size, w / proc.patch_size};
    int n_pad = cslim_image_tokens(&proc, grid);
    cslim_chat chat = {NULL, "Describe this image.", 1, &n_pad, 1, 1};
    char *text;
    assert_int_equal(cslim_chat_render(style, &chat, &text), CSLIM_OK);
    cslim_ids ids = {0};
    assert_int_equal(cslim_tokenizer_encode(tok, text, strlen(text), &ids), CSLIM_OK);
    const cslim_tensor *r = ref_t(ref, PROMPTS[k], "input_ids");
    assert_int_equal((int64_t)ids.n, r->numel);
    for (size_t i = 0; i < ids.n; i++) assert_int_equal(ids.v[i], ((const int64_t *)r->data)[i]);
    free(text);
    cslim_ids_free(&ids);
    cslim_image_free(&img);
  }
  cslim_tokenizer_free(tok);
  cslim_st_close(ref);
}

/* ---- the vision tower and the multimodal forward pass ---------------------------------------- */

static void vision_input_from_ref(cslim_st *ref, const char *p, cslim_vision_input *in) {
  const cslim_tensor *pv = ref_t(ref, p, "pixel_values");
  int grid[3];
  ref_grid(ref, p, grid);
  memset(in, 0, sizeof *in);
  assert_int_equal(cslim_vision_input_add_rows(in, pv->data, (int)pv->shape[0], (int)pv->shape[1],
                                               (const int(*)[3])grid, 1),
                   CSLIM_OK);
}

static void expect_close(const float *got, const cslim_tensor *want, size_t n, const char *what, double *worst) {
  assert_int_equal(want->numel, (int64_t)n);
  double e = tu_rel_err(got, want->data, n);
  if (e > *worst) *worst = e;
  if (!(e < 1e-5)) fail_msg("%s: relative error %.3g", what, e);
}

static void test_vision_tower(void **s) {
  (void)s;
  cslim_model *m;
  if (cslim_model_open(tu_fixture(VL_MODEL), &m)) fail_msg("%s", cslim_errmsg());
  cslim_st *ref;
  assert_int_equal(cslim_st_open(tu_fixture(VL_REF), &ref), CSLIM_OK);
  for (int k = 0; k < 2; k++) {
    const char *p = PROMPTS[k];
    cslim_vision_input in;
    vision_input_from_ref(ref, p, &in);
    cslim_vision_output o;
    /* exact float32: the references' patch embedding ran as a TF32 cuDNN
     * convolution (PyTorch's default on the GPU that made them), which
     * shows as ~1.5e-4 */
    cslim_vision_set_tf32_conv(m, 0);
    if (cslim_vision_forward(m, &in, NULL, 1, &o)) fail_msg("%s", cslim_errmsg());
    double e32 = tu_rel_err(o.last_hidden, ref_t(ref, p, "visual.last_hidden_state")->data,
                            (size_t)o.n_patches * o.vision_hidden);
    printf("  %s vision tower, float32 patch embedding: relative error %.3g\n", p, e32);
    assert_true(e32 > 5e-5 && e32 < 5e-4);
    cslim_vision_output_free(&o);
    /* with the TF32 rounding of the convolution's inputs: within 1e-5 */
    cslim_vision_set_tf32_conv(m, 1);
    if (cslim_vision_forward(m, &in, NULL, 1, &o)) fail_msg("%s", cslim_errmsg());
    double worst = 0;
    expect_close(o.last_hidden, ref_t(ref, p, "visual.last_hidden_state"), (size_t)o.n_patches * o.vision_hidden,
                 "last_hidden_state", &worst);
    expect_close(o.embeds, ref_t(ref, p, "visual.pooler_output"), (size_t)o.n_tokens * o.hidden, "pooler_output",
                 &worst);
    assert_int_equal(o.n_deepstack, 2);
    for (int j = 0; j < o.n_deepstack; j++) {
      char what[64];
      snprintf(what, sizeof what, "visual.deepstack_features.%d", j);
      expect_close(o.deepstack[j], ref_t(ref, p, what), (size_t)o.n_tokens * o.hidden, what, &worst);
    }
    printf("  %s vision tower: worst relative error %.3g\n", p, worst);
    cslim_vision_output_free(&o);
    cslim_vision_input_free(&in);
  }
  cslim_st_close(ref);
  cslim_model_close(m);
}

static void test_multimodal_forward(void **s) {
  (void)s;
  cslim_model *m;
  if (cslim_model_open(tu_fixture(VL_MODEL), &m)) fail_msg("%s", cslim_errmsg());
  cslim_vision_set_tf32_conv(m, 1); /* as the references were computed (test_vision_tower) */
  const cslim_config *c = cslim_model_config(m);
  const int L = c->text.num_layers, H = c->text.hidden_size, V = c->text.vocab_size;
  cslim_st *ref;
  assert_int_equal(cslim_st_open(tu_fixture(VL_REF), &ref), CSLIM_OK);
  for (int k = 0; k < 2; k++) {
    const char *p = PROMPTS[k];
    cslim_vision_input in;
    vision_input_from_ref(ref, p, &in);
    cslim_vision_output o;
    assert_int_equal(cslim_vision_forward(m, &in, NULL, 0, &o), CSLIM_OK);
    int T;
    int32_t *ids = ref_ids(ref, p, &T);
    cslim_acts *a;
    if (cslim_acts_embed_vision(m, ids, &T, 1, &in, &o, &a)) fail_msg("%s", cslim_errmsg());
    float **hid = malloc((size_t)(L + 1) * sizeof(float *));
    for (int i = 0; i <= L; i++) hid[i] = malloc((size_t)T * H * sizeof(float));
    assert_int_equal(cslim_model_forward(m, a, hid, NULL), CSLIM_OK);
    double worst = 0;
    for (int i = 0; i <= L; i++) {
      char what[32];
      snprintf(what, sizeof what, "hidden.%d", i);
      expect_close(hid[i], ref_t(ref, p, what), (size_t)T * H, what, &worst);
    }
    float *logits = malloc((size_t)T * V * sizeof(float));
    assert_int_equal(cslim_model_logits(m, hid[L], T, logits), CSLIM_OK);
    expect_close(logits, ref_t(ref, p, "logits"), (size_t)T * V, "logits", &worst);
    printf("  %s forward: worst relative error %.3g over hidden.0..%d and logits\n", p, worst, L);
    for (int i = 0; i <= L; i++) free(hid[i]);
    free(hid);
    free(logits);
    free(ids);
    cslim_acts_free(a);
    cslim_vision_output_free(&o);
    cslim_vision_input_free(&in);
  }
  cslim_st_close(ref);
  cslim_model_close(m);
}

/* Greedy decoding after an image prompt: the ids transformers 5.23's
 * generate() gives on the CPU in float32 (exact convolution), from the
 * references' input_ids and pixel_values (and mm_token_type_ids marking the
 * image pads, without which transformers places them as text). Checks the prefill with images
 * and the decoding positions (n + rope_delta). */
static void test_generate_with_image(void **s) {
  (void)s;
  static const int32_t want[2][16] = {
      {1267, 263, 1329, 615, 288, 533, 284, 546, 2462, 63, 462, 1466, 261, 824, 315, 804},
      {256, 288, 918, 284, 613, 13, 2159, 63, 310, 437, 861, 1297, 288, 533, 284, 613}};
  cslim_model *m;
  assert_int_equal(cslim_model_open(tu_fixture(VL_MODEL), &m), CSLIM_OK);
  cslim_model_set_layer_cache(m, (uint64_t)1 << 30);
  cslim_st *ref;
  assert_int_equal(cslim_st_open(tu_fixture(VL_REF), &ref), CSLIM_OK);
  for (int k = 0; k < 2; k++) {
    cslim_vision_input in;
    vision_input_from_ref(ref, PROMPTS[k], &in);
    int T;
    int32_t *ids = ref_ids(ref, PROMPTS[k], &T);
    cslim_generate_opts o = {16, NULL, 0, NULL, NULL, &in};
    cslim_ids out = {0};
    if (cslim_generate(m, ids, T, &o, &out)) fail_msg("%s", cslim_errmsg());
    assert_int_equal(out.n, 16);
    for (int i = 0; i < 16; i++)
      if (out.v[i] != want[k][i]) fail_msg("%s: token %d is %d, transformers %d", PROMPTS[k], i, out.v[i], want[k][i]);
    cslim_ids_free(&out);
    free(ids);
    cslim_vision_input_free(&in);
  }
  cslim_st_close(ref);
  cslim_model_close(m);
}

/* A prompt whose pad count disagrees with the image, and a text model. */
static void test_multimodal_errors(void **s) {
  (void)s;
  cslim_model *m;
  assert_int_equal(cslim_model_open(tu_fixture(VL_MODEL), &m), CSLIM_OK);
  cslim_st *ref;
  assert_int_equal(cslim_st_open(tu_fixture(VL_REF), &ref), CSLIM_OK);
  cslim_vision_input in;
  vision_input_from_ref(ref, "astronaut", &in);
  cslim_vision_output o;
  assert_int_equal(cslim_vision_forward(m, &in, NULL, 0, &o), CSLIM_OK);
  int T;
  int32_t *src = ref_ids(ref, "astronaut", &T);
  T--; /* one <|image_pad|> fewer */
  int32_t *ids = malloc((size_t)T * sizeof(int32_t));
  /* drop one <|image_pad|> */
  int j = 0, dropped = 0;
  for (int i = 0; i <= T; i++) {
    if (!dropped && src[i] == cslim_model_config(m)->image_token_id) {
      dropped = 1;
      continue;
    }
    ids[j++] = src[i];
  }
  cslim_acts *a = NULL;
  assert_int_equal(cslim_acts_embed_vision(m, ids, &T, 1, &in, &o, &a), CSLIM_ERR_INVALID);
  assert_errmsg_contains("79 <|image_pad|> tokens but the images give 80");
  /* wrong patch width */
  in.patch_dim = 100;
  cslim_vision_output o2;
  assert_int_equal(cslim_vision_forward(m, &in, NULL, 0, &o2), CSLIM_ERR_INVALID);
  assert_errmsg_contains("1536");
  in.patch_dim = 1536;
  cslim_model_close(m);
  /* a text model has no vision tower */
  assert_int_equal(cslim_model_open(tu_fixture("models/tiny-qwen3"), &m), CSLIM_OK);
  assert_int_equal(cslim_vision_forward(m, &in, NULL, 0, &o2), CSLIM_ERR_INVALID);
  assert_errmsg_contains("no vision tower");
  cslim_model_close(m);
  free(ids);
  free(src);
  cslim_vision_output_free(&o);
  cslim_vision_input_free(&in);
  cslim_st_close(ref);
}

/* Qwen3-VL-MoE: tiny-qwen3-vl with every MLP turned into two identical
 * experts in the Hub's fused layout (gate_up_proj [E, H, 2I], down_proj
 * [E, I, H], applied as x·W) and a zero router (weights 1/2 each): the model
 * must still compute the dense references. */
static void to_vl_moe(tu_writer *w, const cslim_tensor *t, void *ctx) {
  (void)ctx;
  const int E = 2, H = 256, I = 768;
  int layer;
  char what[64];
  if (sscanf(t->name, "model.language_model.layers.%d.mlp.%63s", &layer, what) != 2) {
    tu_emit(w, t->name, t->dtype, t->ndim, t->shape, t->data);
    return;
  }
  if (strcmp(what, "gate_proj.weight") != 0) return; /* emitted once per layer, below */
  static cslim_st *src;
  if (!src && cslim_st_open(tu_fixture(VL_MODEL), &src)) fail_msg("%s", cslim_errmsg());
  const uint16_t *g = cslim_st_findf(src, "model.language_model.layers.%d.mlp.gate_proj.weight", layer)->data;
  const uint16_t *u = cslim_st_findf(src, "model.language_model.layers.%d.mlp.up_proj.weight", layer)->data;
  const uint16_t *d = cslim_st_findf(src, "model.language_model.layers.%d.mlp.down_proj.weight", layer)->data;
  uint16_t *a = malloc((size_t)E * H * 2 * I * 2), *b = malloc((size_t)E * I * H * 2), *r = calloc((size_t)E * H, 2);
  for (int e = 0; e < E; e++)
    for (int i = 0; i < I; i++)
      for (int h = 0; h < H; h++) {
        a[((size_t)e * H + h) * 2 * I + i] = g[i * H + h];
        a[((size_t)e * H + h) * 2 * I + I + i] = u[i * H + h];
        b[((size_t)e * I + i) * H + h] = d[h * I + i];
      }
  char name[128];
  int64_t sgu[3] = {E, H, 2 * I}, sdn[3] = {E, I, H}, sr[2] = {E, H};
  snprintf(name, sizeof name, "model.language_model.layers.%d.mlp.gate.weight", layer);
  tu_emit(w, name, CSLIM_BF16, 2, sr, r);
  snprintf(name, sizeof name, "model.language_model.layers.%d.mlp.experts.gate_up_proj", layer);
  tu_emit(w, name, CSLIM_BF16, 3, sgu, a);
  snprintf(name, sizeof name, "model.language_model.layers.%d.mlp.experts.down_proj", layer);
  tu_emit(w, name, CSLIM_BF16, 3, sdn, b);
  free(a);
  free(b);
  free(r);
}

static void test_vl_moe_fused_experts(void **s) {
  (void)s;
  char *dir = tu_tmpdir(), path[4096];
  snprintf(path, sizeof path, "%s/vl-moe", dir);
  const char *edits[] = {"\"Qwen3VLForConditionalGeneration\"", "\"Qwen3VLMoeForConditionalGeneration\"",
                         "\"model_type\": \"qwen3_vl\",", "\"model_type\": \"qwen3_vl_moe\",",
                         "\"model_type\": \"qwen3_vl_text\",",
                         "\"model_type\": \"qwen3_vl_moe_text\", \"num_experts\": 2, \"num_experts_per_tok\": 2, "
                         "\"moe_intermediate_size\": 768, \"norm_topk_prob\": true, \"decoder_sparse_step\": 1,",
                         NULL};
  tu_rewrite_model(tu_fixture(VL_MODEL), path, to_vl_moe, NULL, edits);
  cslim_model *m;
  if (cslim_model_open(path, &m)) fail_msg("%s", cslim_errmsg());
  const cslim_config *c = cslim_model_config(m);
  assert_int_equal(c->family, CSLIM_FAMILY_QWEN3_VL_MOE);
  assert_int_equal(c->text.num_experts, 2);
  cslim_vision_set_tf32_conv(m, 1);
  cslim_st *ref;
  assert_int_equal(cslim_st_open(tu_fixture(VL_REF), &ref), CSLIM_OK);
  cslim_vision_input in;
  vision_input_from_ref(ref, "coffee", &in);
  cslim_vision_output o;
  assert_int_equal(cslim_vision_forward(m, &in, NULL, 0, &o), CSLIM_OK);
  int T, V = c->text.vocab_size;
  int32_t *ids = ref_ids(ref, "coffee", &T);
  cslim_acts *a;
  assert_int_equal(cslim_acts_embed_vision(m, ids, &T, 1, &in, &o, &a), CSLIM_OK);
  assert_int_equal(cslim_model_forward(m, a, NULL, NULL), CSLIM_OK);
  float *logits = malloc((size_t)T * V * sizeof(float));
  assert_int_equal(cslim_model_logits(m, a->h, T, logits), CSLIM_OK);
  double worst = 0;
  expect_close(logits, ref_t(ref, "coffee", "logits"), (size_t)T * V, "VL-MoE logits", &worst);
  printf("  Qwen3-VL-MoE (fused Hub experts): logits relative error %.3g\n", worst);
  free(logits);
  free(ids);
  cslim_acts_free(a);
  cslim_vision_output_free(&o);
  cslim_vision_input_free(&in);
  cslim_st_close(ref);
  cslim_model_close(m);
  tu_rmtree(dir);
  free(dir);
}

/* get_rope_index: the architecture notes' worked example, grid (1, 28, 40). */
static void test_mrope_positions(void **s) {
  (void)s;
  cslim_config c;
  assert_int_equal(cslim_config_load(tu_fixture(VL_MODEL), &c), CSLIM_OK);
  const int n_img = 14 * 20, n = 4 + n_img + 3;
  int32_t ids[4 + 280 + 3], pos[3 * (4 + 280 + 3)];
  for (int i = 0; i < n; i++) ids[i] = 100 + i;
  for (int i = 4; i < 4 + n_img; i++) ids[i] = c.image_token_id;
  int grid[1][3] = {{1, 28, 40}}, next = 0, delta = 0;
  assert_int_equal(cslim_mrope_positions(&c, ids, n, (const int(*)[3])grid, 1, &next, pos, (size_t)n, &delta),
                   CSLIM_OK);
  assert_int_equal(next, 1);
  for (int i = 0; i < 4; i++)
    for (int a = 0; a < 3; a++) assert_int_equal(pos[a * n + i], i);
  /* image token (r, c): T = 4, H = 4 + r, W = 4 + c */
  assert_int_equal(pos[4], 4);
  assert_int_equal(pos[n + 4 + 20 * 13 + 19], 4 + 13);
  assert_int_equal(pos[2 * n + 4 + 20 * 13 + 19], 4 + 19);
  assert_int_equal(pos[0 * n + 4 + 20 * 13 + 19], 4);
  /* text after the image starts at 4 + max(14, 20) = 24 */
  for (int a = 0; a < 3; a++) assert_int_equal(pos[a * n + 4 + n_img], 24);
  assert_int_equal(delta, 26 + 1 - n);
  /* too few pads for the grid */
  next = 0;
  assert_int_equal(cslim_mrope_positions(&c, ids, n - 2, (const int(*)[3])grid, 1, &next, pos, (size_t)n, NULL),
                   CSLIM_OK); /* a cut after the image is fine */
  next = 0;
  assert_int_equal(cslim_mrope_positions(&c, ids, 100, (const int(*)[3])grid, 1, &next, pos, (size_t)n, NULL),
                   CSLIM_ERR_INVALID);
  assert_errmsg_contains("needs 280 <|image_pad|> tokens");
}

/* ---- decoding ------------------------------------------------------------------------------ */

static uint8_t *read_ppm(const char *path, int *w, int *h) {
  size_t len;
  unsigned char *buf = tu_read_file(path, &len);
  int maxv, off = 0;
  /* header "P6\nW H\n255\n": the pixels start after the third newline (a
   * scanf "\n" would also eat pixel bytes that look like whitespace) */
  if (sscanf((char *)buf, "P6 %d %d %d", w, h, &maxv) != 3 || maxv != 255) fail_msg("bad ppm %s", path);
  for (int nl = 0; nl < 3 && (size_t)off < len; off++) nl += buf[off] == '\n';
  assert_int_equal(len - (size_t)off, (size_t)*w * *h * 3);
  uint8_t *px = malloc(len - (size_t)off);
  memcpy(px, buf + off, len - (size_t)off);
  free(buf);
  return px;
}

/* Each test image decodes to exactly what PIL makes of it. */
static void test_decode_conversions(void **s) {
  (void)s;
  static const char *cases[][2] = {
      {"gray.png", "gray.ppm"},           {"gray_alpha.png", "gray_alpha.ppm"},
      {"rgba.png", "rgba.ppm"},           {"palette.png", "palette.ppm"},
      {"bilevel.png", "bilevel.ppm"},     {"rgb16_interlaced.png", "rgb16_interlaced.ppm"},
      {"orient2.png", "orient2.ppm"},     {"orient3.png", "orient3.ppm"},
      {"orient4.png", "orient4.ppm"},     {"orient5.png", "orient5.ppm"},
      {"orient6.png", "orient6.ppm"},     {"orient7.png", "orient7.ppm"},
      {"orient8.png", "orient8.ppm"},     {"orient6.jpg", "orient6_jpg.ppm"},
      {"gray.jpg", "gray_jpg.ppm"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char a[128], b[128];
    snprintf(a, sizeof a, "tests/data/images/%s", cases[i][0]);
    snprintf(b, sizeof b, "tests/data/images/%s", cases[i][1]);
    cslim_image img;
    if (cslim_image_load(tu_source(a), &img)) fail_msg("%s", cslim_errmsg());
    int w, h;
    uint8_t *want = read_ppm(tu_source(b), &w, &h);
    if (img.width != w || img.height != h) fail_msg("%s: %dx%d, PIL %dx%d", a, img.width, img.height, w, h);
    int worst = 0;
    for (size_t k = 0; k < (size_t)w * h * 3; k++) {
      int d = abs((int)img.rgb[k] - (int)want[k]);
      if (d > worst) worst = d;
    }
    if (worst) fail_msg("%s: differs from PIL by up to %d levels", a, worst);
    free(want);
    cslim_image_free(&img);
  }
}

/* The resampler against torchvision's resize (uint8, bicubic, antialias). */
static void test_resize_matches_torchvision(void **s) {
  (void)s;
  int w, h;
  uint8_t *src = read_ppm(tu_source("tests/data/images/resize_src.ppm"), &w, &h);
  cslim_image in = {w, h, src};
  static const int sizes[][2] = {{50, 31}, {12, 9}, {37, 10}, {19, 64}, {5, 23}};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    char rel[96];
    snprintf(rel, sizeof rel, "tests/data/images/resize_%dx%d.ppm", sizes[i][0], sizes[i][1]);
    int ww, hh;
    uint8_t *want = read_ppm(tu_source(rel), &ww, &hh);
    cslim_image out;
    assert_int_equal(cslim_image_resize(&in, ww, hh, &out), CSLIM_OK);
    for (size_t k = 0; k < (size_t)ww * hh * 3; k++)
      if (out.rgb[k] != want[k]) fail_msg("%s: byte %zu is %d, torchvision %d", rel, k, out.rgb[k], want[k]);
    cslim_image_free(&out);
    free(want);
  }
  free(src);
}

static void test_decode_errors(void **s) {
  (void)s;
  cslim_image img;
  size_t len;
  unsigned char *png = tu_read_file(tu_fixture("images/astronaut_input.png"), &len);
  /* truncated PNG */
  assert_int_equal(cslim_image_decode(png, len / 2, "half.png", &img), CSLIM_ERR_FORMAT);
  assert_errmsg_contains("half.png: corrupt PNG: file is truncated");
  assert_null(img.rgb);
  /* corrupt data: a flipped byte inside the image data (CRC or zlib error) */
  unsigned char *bad = malloc(len);
  memcpy(bad, png, len);
  bad[len / 2] ^= 0x55;
  assert_int_equal(cslim_image_decode(bad, len, "flipped.png", &img), CSLIM_ERR_FORMAT);
  assert_errmsg_contains("flipped.png: corrupt PNG");
  /* a PNG declaring 70000 x 70000 pixels: refused before any pixel memory */
  memcpy(bad, png, 33);
  bad[16] = 0, bad[17] = 1, bad[18] = 0x11, bad[19] = 0x70; /* width 70000 */
  bad[20] = 0, bad[21] = 1, bad[22] = 0x11, bad[23] = 0x70; /* height 70000 */
  assert_int_not_equal(cslim_image_decode(bad, 33, "huge.png", &img), CSLIM_OK);
  assert_errmsg_contains("huge.png");
  free(bad);
  free(png);
  /* truncated JPEG */
  unsigned char *jpg = tu_read_file(tu_fixture("images/astronaut.jpg"), &len);
  assert_int_equal(cslim_image_decode(jpg, len * 2 / 3, "cut.jpg", &img), CSLIM_ERR_FORMAT);
  assert_errmsg_contains("cut.jpg: corrupt JPEG: file is truncated");
  /* a JPEG declaring 60000 x 60000 pixels (SOF0 dimensions) */
  for (size_t i = 2; i + 9 < len; i++)
    if (jpg[i] == 0xFF && (jpg[i + 1] == 0xC0 || jpg[i + 1] == 0xC2)) {
      jpg[i + 5] = 0xEA, jpg[i + 6] = 0x60, jpg[i + 7] = 0xEA, jpg[i + 8] = 0x60;
      break;
    }
  assert_int_equal(cslim_image_decode(jpg, len, "bomb.jpg", &img), CSLIM_ERR_UNSUPPORTED);
  assert_errmsg_contains("bomb.jpg: image is 60000x60000 = 3600000000 pixels, beyond the limit");
  free(jpg);
  /* not an image, empty */
  assert_int_equal(cslim_image_decode("GIF89a....", 10, "x.gif", &img), CSLIM_ERR_FORMAT);
  assert_errmsg_contains("x.gif: not a PNG or JPEG image");
  assert_int_equal(cslim_image_decode("", 0, "empty.png", &img), CSLIM_ERR_FORMAT);
  assert_errmsg_contains("empty.png: empty file");
  assert_int_equal(cslim_image_load("/nonexistent/a.png", &img), CSLIM_ERR_IO);
  assert_errmsg_contains("/nonexistent/a.png");
}

/* smart_resize: rounding, limits, aspect ratio. */
static void test_smart_resize(void **s) {
  (void)s;
  cslim_image_processor p;
  assert_int_equal(cslim_image_processor_load(tu_fixture(VL_MODEL), NULL, &p), CSLIM_OK);
  assert_int_equal(p.patch_size, 16);
  assert_int_equal(p.min_pixels, 65536);
  assert_int_equal(p.max_pixels, 262144);
  int h, w;
  assert_int_equal(cslim_smart_resize(&p, 400, 600, &h, &w), CSLIM_OK);
  assert_int_equal(h, 384);
  assert_int_equal(w, 608);
  /* 80 / 32 = 2.5 rounds to even: 64, not 96 */
  assert_int_equal(cslim_smart_resize(&p, 80, 1600, &h, &w), CSLIM_OK);
  assert_int_equal(h, 64);
  assert_int_equal(w, 1600);
  /* beyond max_pixels: scaled down, floors */
  assert_int_equal(cslim_smart_resize(&p, 1080, 1920, &h, &w), CSLIM_OK);
  assert_int_equal(h, 384);
  assert_int_equal(w, 672);
  assert_true((int64_t)h * w <= p.max_pixels);
  /* aspect ratio over 200 */
  assert_int_equal(cslim_smart_resize(&p, 10, 2010, &h, &w), CSLIM_ERR_UNSUPPORTED);
  assert_errmsg_contains("aspect ratio 201.0 is beyond the limit of 200");
  /* an image beyond the pixel limit is scaled to fit; a grid off the merge size is refused */
  cslim_image img = {3, 700, calloc(3 * 700, 3)};
  float *rows;
  int grid[3];
  assert_int_equal(cslim_image_to_patches(&p, &img, "thin.png", &rows, grid), CSLIM_ERR_UNSUPPORTED);
  assert_errmsg_contains("thin.png");
  cslim_image_free(&img);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_pixels_astronaut),   cmocka_unit_test(test_pixels_coffee),
      cmocka_unit_test(test_input_ids),          cmocka_unit_test(test_vision_tower),
      cmocka_unit_test(test_multimodal_forward), cmocka_unit_test(test_generate_with_image),
      cmocka_unit_test(test_multimodal_errors),  cmocka_unit_test(test_vl_moe_fused_experts),
      cmocka_unit_test(test_mrope_positions),    cmocka_unit_test(test_decode_conversions),
      cmocka_unit_test(test_resize_matches_torchvision), cmocka_unit_test(test_decode_errors),
      cmocka_unit_test(test_smart_resize),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
