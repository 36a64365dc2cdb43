/* cslim check and cslim convert: good checkpoints pass for every target (and
 * after conversion give the same logits — see cli_deploy.sh); each of the
 * deliberately broken checkpoints below is caught, with the tensor named. */
#include "testutil.h"

#include "cslim/deploy.h"
#include "cslim/dtype.h"
#include "cslim/quant.h"
#include "cslim/safetensors.h"
#include "cslim/scheme.h"
#include "cslim/staging.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *g_dir;
static char g_w8a8[4200], g_moe[4200];

static int setup(void **s) {
  (void)s;
  g_dir = tu_tmpdir();
  snprintf(g_w8a8, sizeof g_w8a8, "%s/w8a8", g_dir);
  snprintf(g_moe, sizeof g_moe, "%s/moe", g_dir);
  cslim_quant_params p;
  cslim_quant_params_default(&p);
  p.model_path = tu_fixture("models/tiny-qwen3");
  p.save_path = g_w8a8;
  p.calib_data = tu_fixture("../calib/mix_calib.jsonl");
  p.calib_samples = 6;
  p.holdout = 0;
  cslim_quant_report r;
  if (cslim_quantize(&p, &r)) return -1;
  cslim_quant_report_free(&r);
  /* MoE: attention W8A8_DYNAMIC, experts W4A8_DYNAMIC (data-free) */
  static const cslim_mix_rule mix[] = {{"*.mlp.experts.*", CSLIM_QT_W4A8_DYNAMIC, NULL, 0, 0, CSLIM_WM_MINMAX}};
  cslim_quant_params_default(&p);
  p.model_path = tu_fixture("models/tiny-qwen3-moe");
  p.save_path = g_moe;
  p.quant_type = CSLIM_QT_W8A8_DYNAMIC;
  p.mix = mix;
  p.n_mix = 1;
  p.holdout = 0;
  if (cslim_quantize(&p, &r)) return -1;
  cslim_quant_report_free(&r);
  return 0;
}

static int teardown(void **s) {
  (void)s;
  tu_rmtree(g_dir);
  free(g_dir);
  return 0;
}

static cslim_check_report check(const char *dir, cslim_target t, const char *source) {
  cslim_check_params p = {dir, t, 910, source, 3};
  cslim_check_report r;
  assert_int_equal(cslim_check(&p, &r), CSLIM_OK);
  return r;
}

/* the report has an error whose where contains `where` and what contains `what` */
static void expect_error(const char *label, cslim_check_report *r, const char *where, const char *what) {
  for (int i = 0; i < r->n; i++)
    if (r->items[i].error && strstr(r->items[i].where, where) && strstr(r->items[i].what, what)) {
      cslim_check_report_free(r);
      return;
    }
  for (int i = 0; i < r->n; i++) fprintf(stderr, "  %s %s: %s\n", r->items[i].error ? "E" : "W", r->items[i].where, r->items[i].what);
  fail_msg("%s: no error at '%s' saying '%s' (%d errors)", label, where, what, r->n_errors);
}

static void expect_clean(const char *label, cslim_check_report *r) {
  for (int i = 0; i < r->n; i++)
    if (r->items[i].error) fail_msg("%s: %s: %s", label, r->items[i].where, r->items[i].what);
  cslim_check_report_free(r);
}

static void test_good_checkpoints(void **s) {
  (void)s;
  cslim_check_report r = check(g_w8a8, CSLIM_TARGET_NONE, tu_fixture("models/tiny-qwen3"));
  assert_true(r.compared);
  assert_true(r.top1 > 0.8);
  assert_true(r.max_werr > 0 && r.max_werr < 0.05);
  assert_int_equal(r.n_linears, 4 * 7);
  expect_clean("W8A8, with source", &r);
  r = check(g_w8a8, CSLIM_TARGET_VLLM_ASCEND, NULL);
  expect_clean("W8A8 vllm-ascend", &r);
  r = check(g_w8a8, CSLIM_TARGET_MINDIE, NULL);
  expect_clean("W8A8 mindie", &r);
  r = check(g_moe, CSLIM_TARGET_VLLM_ASCEND, tu_fixture("models/tiny-qwen3-moe"));
  expect_clean("MoE W4A8 vllm-ascend", &r);
  /* the msModelSlim layout is not vllm-mindspore's, and converting fixes that */
  r = check(g_w8a8, CSLIM_TARGET_VLLM_MINDSPORE, NULL);
  expect_error("W8A8 as it is, for vllm-mindspore", &r, "input_scale", "expects a float [256]");
  char out[4200];
  snprintf(out, sizeof out, "%s/ms", g_dir);
  cslim_convert_params cp = {g_w8a8, out, CSLIM_TARGET_VLLM_MINDSPORE, 910, tu_fixture("models/tiny-qwen3"), 1};
  cslim_convert_report cr;
  if (cslim_convert(&cp, &cr)) fail_msg("%s", cslim_errmsg());
  r = check(out, CSLIM_TARGET_VLLM_MINDSPORE, tu_fixture("models/tiny-qwen3"));
  expect_clean("converted for vllm-mindspore", &r);
  /* and W4A8 experts cannot go there */
  cp.model_path = g_moe;
  assert_int_not_equal(cslim_convert(&cp, &cr), CSLIM_OK);
  assert_errmsg_contains("vllm-mindspore serves FLOAT, W8A8 and W8A8S Linears only");
}

/* ---- breaking a copy ------------------------------------------------------------------------------ */

typedef enum {
  B_DEQ_I64,      /* deq_scale as int64 bits on a bfloat16 model */
  B_DROP,         /* drop the tensor */
  B_OFFSET_300,   /* input_offset 300 */
  B_ZERO_ROW,     /* first value 0 (a scale) */
  B_SCALE_TIMES,  /* input_scale x 1.01 */
  B_SCALAR,       /* a 0-d tensor */
  B_NAN,          /* NaN in a float tensor */
  B_PLUS_ONE,     /* +1 on the first int32 entry */
  B_SWAP_NIBBLES, /* swap the two int4 codes of every byte */
  B_ONE,          /* first float value 1.0 (a weight offset) */
  B_PERMUTE,      /* reverse the output rows of weight, deq_scale and quant_bias consistently */
  B_KEEP
} breakage;

typedef struct brk {
  breakage how;
  const char *name; /* tensor (or suffix for B_PERMUTE) */
} brk;

static void transform(tu_writer *w, const cslim_tensor *t, void *ctx) {
  const brk *b = ctx;
  int hit = b->how == B_PERMUTE ? strstr(t->name, b->name) && (strstr(t->name, "o_proj.") || strstr(t->name, "down_proj."))
                                : !strcmp(t->name, b->name);
  if (!hit || b->how == B_KEEP) {
    tu_emit(w, t->name, t->dtype, t->ndim, t->shape, t->data);
    return;
  }
  size_t es = cslim_dtype_size(t->dtype);
  char *d = malloc(t->nbytes + 8);
  memcpy(d, t->data, t->nbytes);
  int64_t shape[CSLIM_MAX_DIMS];
  memcpy(shape, t->shape, sizeof shape);
  cslim_dtype dt = t->dtype;
  int nd = t->ndim;
  switch (b->how) {
  case B_DEQ_I64: {
    int64_t *v = malloc((size_t)t->numel * 8);
    for (int64_t i = 0; i < t->numel; i++) v[i] = cslim_deq_scale_to_int64(((const float *)t->data)[i]);
    free(d);
    d = (char *)v;
    dt = CSLIM_I64;
    break;
  }
  case B_DROP: free(d); return;
  case B_OFFSET_300: {
    float v = 300.0f;
    memcpy(d, &v, 4);
    break;
  }
  case B_ZERO_ROW: memset(d, 0, es); break;
  case B_SCALE_TIMES: {
    float v;
    memcpy(&v, d, 4);
    v *= 1.01f;
    memcpy(d, &v, 4);
    break;
  }
  case B_SCALAR: nd = 0; break;
  case B_NAN: {
    uint16_t nan = 0x7fc0;
    memcpy(d + 2 * 3, &nan, 2);
    break;
  }
  case B_PLUS_ONE: ((int32_t *)d)[0] += 1; break;
  case B_SWAP_NIBBLES:
    for (uint64_t i = 0; i < t->nbytes; i++) d[i] = (char)(((uint8_t)d[i] >> 4) | ((uint8_t)d[i] << 4));
    break;
  case B_ONE: {
    float v = 1.0f;
    memcpy(d, &v, 4);
    break;
  }
  case B_PERMUTE: {
    if (strstr(t->name, ".weight") || strstr(t->name, ".deq_scale") || strstr(t->name, ".quant_bias")) {
      int64_t rows = t->shape[0], rb = (int64_t)(t->nbytes / (uint64_t)rows);
      for (int64_t r = 0; r < rows; r++) memcpy(d + r * rb, (const char *)t->data + (rows - 1 - r) * rb, (size_t)rb);
    }
    break;
  }
  default: break;
  }
  tu_emit(w, t->name, dt, nd, shape, d);
  free(d);
}

/* a broken copy of src in g_dir/name; edits: config.json replacements; desc_edit: key → label (NULL deletes) */
static const char *broken(const char *src, const char *name, brk b, const char *const *edits, const char *desc_key,
                          const char *desc_label) {
  static char out[4200];
  snprintf(out, sizeof out, "%s/%s", g_dir, name);
  tu_rewrite_model(src, out, transform, &b, edits);
  if (desc_key) {
    char p[4300];
    snprintf(p, sizeof p, "%s/quant_model_description.json", out);
    size_t len;
    char *txt = (char *)tu_read_file(p, &len);
    cJSON *j = cJSON_ParseWithLength(txt, len);
    free(txt);
    if (desc_label) cJSON_ReplaceItemInObjectCaseSensitive(j, desc_key, cJSON_CreateString(desc_label));
    else cJSON_DeleteItemFromObjectCaseSensitive(j, desc_key);
    if (!cJSON_HasObjectItem(j, desc_key) && desc_label) cJSON_AddStringToObject(j, desc_key, desc_label);
    char *o = cJSON_Print(j);
    tu_write_file(p, o, strlen(o));
    free(o);
    cJSON_Delete(j);
  }
  return out;
}

#define L0 "model.layers.0.self_attn."
#define E0 "model.layers.0.mlp.experts.0."

static void test_broken_checkpoints(void **s) {
  (void)s;
  cslim_check_report r;
  const char *d;
  int n_cases = 0;
#define CASE(label, dir, target, where, what)                                                                          \
  do {                                                                                                                 \
    r = check(dir, target, NULL);                                                                                      \
    expect_error(label, &r, where, what);                                                                              \
    n_cases++;                                                                                                         \
  } while (0)

  d = broken(g_w8a8, "b1", (brk){B_DEQ_I64, L0 "q_proj.deq_scale"}, NULL, NULL, NULL);
  CASE("deq_scale int64 on a bfloat16 model", d, CSLIM_TARGET_VLLM_ASCEND, L0 "q_proj.deq_scale", "numeric cast");

  d = broken(g_w8a8, "b2", (brk){B_DROP, "model.layers.1.self_attn.o_proj.quant_bias"}, NULL, NULL, NULL);
  CASE("missing quant_bias", d, CSLIM_TARGET_VLLM_ASCEND, "layers.1.self_attn.o_proj.quant_bias", "missing");

  d = broken(g_w8a8, "b3", (brk){B_OFFSET_300, L0 "o_proj.input_offset"}, NULL, NULL, NULL);
  CASE("input_offset out of range", d, CSLIM_TARGET_NONE, L0 "o_proj.input_offset", "[-128, 127]");

  d = broken(g_w8a8, "b4", (brk){B_KEEP, ""}, NULL, NULL, NULL);
  {
    char p[4300];
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", d);
    const char *ix = "{\"metadata\": {}, \"weight_map\": {\"lm_head.weight\": \"model-00002-of-00002.safetensors\"}}";
    tu_write_file(p, ix, strlen(ix));
  }
  CASE("index naming a missing file", d, CSLIM_TARGET_NONE, "model.safetensors.index.json", "does not exist");

  d = broken(g_w8a8, "b5", (brk){B_ZERO_ROW, "model.layers.2.mlp.up_proj.deq_scale"}, NULL, NULL, NULL);
  CASE("a deq_scale of zero", d, CSLIM_TARGET_NONE, "layers.2.mlp.up_proj.deq_scale", "finite and positive");

  d = broken(g_moe, "b6", (brk){B_SWAP_NIBBLES, E0 "up_proj.weight"}, NULL, NULL, NULL);
  CASE("swapped packed nibbles", d, CSLIM_TARGET_VLLM_ASCEND, E0 "up_proj.scale_bias", "nibbles swapped");

  d = broken(g_w8a8, "b7", (brk){B_SCALE_TIMES, L0 "k_proj.input_scale"}, NULL, NULL, NULL);
  CASE("k_proj's input_scale differs from q_proj's", d, CSLIM_TARGET_NONE, L0 "k_proj.input_scale", "differs from");

  d = broken(g_w8a8, "b8", (brk){B_KEEP, ""}, NULL, "model.layers.3.mlp.gate_proj.deq_scale", NULL);
  CASE("a tensor missing from the description", d, CSLIM_TARGET_NONE, "layers.3.mlp.gate_proj.deq_scale",
       "not in the description");

  static const char *qc[] = {"\"architectures\"", "\"quantization_config\": {\"quant_method\": \"x\"}, \"architectures\"",
                             NULL};
  d = broken(g_w8a8, "b9", (brk){B_KEEP, ""}, qc, NULL, NULL);
  CASE("quantization_config left in config.json", d, CSLIM_TARGET_VLLM_ASCEND, "config.json", "quantization_config");

  d = broken(g_w8a8, "b10", (brk){B_SCALAR, L0 "v_proj.input_scale"}, NULL, NULL, NULL);
  CASE("a [] scalar", d, CSLIM_TARGET_NONE, L0 "v_proj.input_scale", "0-d scalar");

  d = broken(g_w8a8, "b11", (brk){B_NAN, "model.layers.0.input_layernorm.weight"}, NULL, NULL, NULL);
  CASE("NaN in a norm", d, CSLIM_TARGET_NONE, "layers.0.input_layernorm.weight", "finite");

  d = broken(g_w8a8, "b12", (brk){B_PLUS_ONE, "model.layers.1.mlp.down_proj.quant_bias"}, NULL, NULL, NULL);
  CASE("quant_bias not its definition", d, CSLIM_TARGET_NONE, "layers.1.mlp.down_proj.quant_bias", "row 0");

  d = broken(g_w8a8, "b13", (brk){B_KEEP, ""}, NULL, L0 "v_proj.weight", "W8A8_DYNAMIC");
  CASE("q/k/v with different labels", d, CSLIM_TARGET_NONE, L0 "v_proj.weight", "one fused Linear");

  d = broken(g_moe, "b14", (brk){B_ONE, L0 "q_proj.weight_offset"}, NULL, NULL, NULL);
  CASE("a non-zero weight offset", d, CSLIM_TARGET_VLLM_ASCEND, L0 "q_proj.weight_offset", "must be zero");

  d = broken(g_w8a8, "b15", (brk){B_KEEP, ""}, NULL, "model_quant_type", "W8A16");
  CASE("model_quant_type of another scheme", d, CSLIM_TARGET_MINDIE, "model_quant_type", "labelled up to W8A8");

  d = broken(g_w8a8, "b16", (brk){B_KEEP, ""}, NULL, "model.layers.0.mlp.down_proj.weight", NULL);
  CASE("a module without its key", d, CSLIM_TARGET_NONE, "layers.0.mlp.down_proj.weight", "not in the description");

  d = broken(g_w8a8, "b17", (brk){B_KEEP, ""}, NULL, NULL, NULL);
  {
    char a[4300], b2[4300];
    snprintf(a, sizeof a, "%s/quant_model_description.json", d);
    snprintf(b2, sizeof b2, "%s/ori_quant_model_description.json", d);
    assert_int_equal(cslim_copy_file(a, b2), CSLIM_OK);
  }
  CASE("two description files", d, CSLIM_TARGET_VLLM_ASCEND, d, "end with quant_model_description.json");

  /* loads, but answers garbage: output channels permuted consistently (every structural rule holds) */
  d = broken(g_w8a8, "b18", (brk){B_PERMUTE, "model.layers."}, NULL, NULL, NULL);
  r = check(d, CSLIM_TARGET_NONE, NULL);
  expect_clean("permuted rows are structurally valid", &r);
  r = check(d, CSLIM_TARGET_NONE, tu_fixture("models/tiny-qwen3"));
  assert_true(r.compared);
  expect_error("permuted rows against the float model", &r, d, "answers differently");
  n_cases++;
  assert_true(n_cases >= 10);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_good_checkpoints),
      cmocka_unit_test(test_broken_checkpoints),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
