/* Recipes: every shipped YAML loads and validates (and the ones naming
 * processors the quantizer lacks are refused by name and line when applied),
 * labels, anchors and merge keys, errors naming the key and its line, the
 * per-Linear plan a recipe produces, and the best-practice lookup with its
 * fallback order. End-to-end runs are in cli_recipes.sh. */
#include "testutil.h"

#include "cslim/recipe.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char g_recipes[4096];

static int setup(void **s) {
  (void)s;
  snprintf(g_recipes, sizeof g_recipes, "%s", tu_source("recipes"));
  return 0;
}

/* recipes the quantizer runs today, and the ones it refuses (with what the error names) */
static const struct {
  const char *file;
  const char *refusal; /* NULL: applies */
} k_shipped[] = {
    {"default/default-w8a8.yaml", NULL},
    {"qwen3/qwen3-32b-dense-w8a8.yaml", NULL},
    {"qwen3/qwen3-14b-dense-w8a8.yaml", "disable_level L10"},
    {"qwen3/qwen3-32b-dense-w8a8c8.yaml", "dynamic_cache"},
    {"qwen3/qwen3-32b-dense-w4a4.yaml", "prior stages"},
    {"qwen3/qwen3-32b-dense-w16a16s.yaml", "float_sparse"},
    {"qwen3/qwen3-8b-w8a8s.yaml", NULL},
    {"qwen3/qwen3-14b-w8a8s.yaml", NULL},
    {"qwen3/qwen3-32b-w8a8s.yaml", NULL},
    {"qwen3_moe/qwen3-30b-a3b-w8a8.yaml", NULL},
    {"qwen3_moe/qwen3-30b-w4a8-v1.yaml", NULL},
    {"qwen3_moe/qwen3-235b-w4a8-v1.yaml", NULL},
    {"qwen3_moe/qwen3-coder-480b-w4a8.yaml", NULL},
    {"qwen3_vl/qwen3_vl_w8a8.yaml", NULL},
    {"qwen3_vl/qwen3_vl_4b_w8a8.yaml", NULL},
    {"qwen3_vl/qwen3_vl_embedding_w8a8.yaml", NULL},
    {"qwen3_vl_moe/qwen3_vl_moe_w8a8.yaml", NULL},
};
#define N_SHIPPED (int)(sizeof k_shipped / sizeof k_shipped[0])

static void test_every_shipped_recipe(void **s) {
  (void)s;
  int seen = 0;
  const char *dirs[] = {"default", "qwen3", "qwen3_moe", "qwen3_vl", "qwen3_vl_moe"};
  for (int d = 0; d < 5; d++) { /* every file in recipes/ is in the table */
    char p[4200];
    snprintf(p, sizeof p, "%s/%s", g_recipes, dirs[d]);
    DIR *dh = opendir(p);
    assert_non_null(dh);
    struct dirent *de;
    while ((de = readdir(dh)) != NULL) {
      if (!strstr(de->d_name, ".yaml")) continue;
      char rel[512];
      snprintf(rel, sizeof rel, "%s/%s", dirs[d], de->d_name);
      int found = 0;
      for (int i = 0; i < N_SHIPPED; i++) found |= !strcmp(k_shipped[i].file, rel);
      if (!found) fail_msg("recipes/%s is not in this test's table", rel);
      seen++;
    }
    closedir(dh);
  }
  assert_int_equal(seen, N_SHIPPED);
  for (int i = 0; i < N_SHIPPED; i++) {
    char p[4200];
    snprintf(p, sizeof p, "%s/%s", g_recipes, k_shipped[i].file);
    cslim_recipe *r = NULL;
    if (cslim_recipe_load(p, &r)) fail_msg("%s: %s", k_shipped[i].file, cslim_errmsg());
    assert_true(cslim_recipe_config_id(r)[0] != '\0');
    assert_non_null(cslim_recipe_dataset(r));
    cslim_quant_params q;
    cslim_quant_params_default(&q);
    cslim_status rc = cslim_recipe_apply(r, &q);
    if (k_shipped[i].refusal) {
      if (rc == CSLIM_OK) fail_msg("%s: applied, expected a refusal", k_shipped[i].file);
      assert_errmsg_contains(k_shipped[i].refusal);
      assert_errmsg_contains(k_shipped[i].file); /* path:line: ... */
    } else if (rc) {
      fail_msg("%s: %s", k_shipped[i].file, cslim_errmsg());
    }
    cslim_recipe_free(r);
  }
}

static void test_labels(void **s) {
  (void)s;
  cslim_recipe_label l;
  assert_int_equal(cslim_recipe_label_parse("w8a8", &l), 0);
  assert_true(l.w_bit == 8 && l.a_bit == 8 && !l.is_sparse && !l.kv_cache && !l.fa_bit);
  assert_int_equal(cslim_recipe_label_parse("w8a8s", &l), 0);
  assert_true(l.is_sparse && !l.kv_cache);
  assert_int_equal(cslim_recipe_label_parse("w4a8", &l), 0);
  assert_true(l.w_bit == 4 && l.a_bit == 8);
  assert_int_equal(cslim_recipe_label_parse("w8a8c8", &l), 0);
  assert_true(l.kv_cache && !l.is_sparse);
  assert_int_equal(cslim_recipe_label_parse("w4a4f8", &l), 0);
  assert_true(l.fa_bit == 8);
  assert_int_equal(cslim_recipe_label_parse("w16a16s", &l), 0);
  assert_true(l.w_bit == 16 && l.is_sparse);
  assert_int_equal(cslim_recipe_label_parse("w8a16", &l), 0);
  assert_int_equal(l.a_bit, 16);
  const char *bad[] = {"", "w8", "a8w8", "w8a8x", "w8a8_dynamic", "w0a8", "w8a8sc", NULL};
  for (int i = 0; bad[i]; i++)
    if (cslim_recipe_label_parse(bad[i], &l) == 0) fail_msg("'%s' parsed as a label", bad[i]);
}

/* write text to DIR/name, return the path (static buffer) */
static const char *yaml_file(const char *dir, const char *name, const char *text) {
  static char p[4200];
  snprintf(p, sizeof p, "%s/%s", dir, name);
  tu_write_file(p, text, strlen(text));
  return p;
}

/* anchors, aliases and merge keys; the plan of the rules (first match, excludes, per-rule method) */
static void test_anchors_and_plan(void **s) {
  (void)s;
  char *dir = tu_tmpdir();
  const char *y = "apiversion: modelslim_v1\n"
                  "metadata:\n"
                  "  config_id: t\n"
                  "  label: {w_bit: 4, a_bit: 8, is_sparse: false, kv_cache: false}\n"
                  "base_act: &act {scope: per_token, dtype: int8, symmetric: true, method: minmax}\n"
                  "w8: &w8\n"
                  "  act: *act\n"
                  "  weight: {scope: per_channel, dtype: int8, symmetric: true, method: ssz}\n"
                  "w4:\n"
                  "  <<: *w8\n"
                  "  weight: {scope: per_channel, dtype: int4, symmetric: true, method: minmax}\n"
                  "spec:\n"
                  "  process:\n"
                  "    - {type: iter_smooth, alpha: 0.7, symmetric: false, enable_subgraph_type: [norm-linear, ov]}\n"
                  "    - type: group\n"
                  "      configs:\n"
                  "        - {type: linear_quant, qconfig: *w8, include: ['*self_attn*'], exclude: ['*o_proj']}\n"
                  "        - type: linear_quant\n"
                  "          qconfig:\n"
                  "            <<: *w8\n"
                  "            weight: {scope: per_channel, dtype: int4, symmetric: true, method: minmax}\n"
                  "          include: ['*mlp.experts.*', 'model.layers.{0,1}.self_attn.o_proj']\n";
  cslim_recipe *r = NULL;
  if (cslim_recipe_load(yaml_file(dir, "a.yaml", y), &r)) fail_msg("%s", cslim_errmsg());
  assert_int_equal(cslim_recipe_apiversion(r), CSLIM_RECIPE_V1);
  assert_string_equal(cslim_recipe_dataset(r), "mix_calib.jsonl"); /* v1's default */
  cslim_quant_params q;
  cslim_quant_params_default(&q);
  assert_int_equal(cslim_recipe_apply(r, &q), CSLIM_OK);
  assert_int_equal(q.anti_method, CSLIM_ANTI_M4);
  assert_true(q.anti_alpha == 0.7);
  assert_int_equal(q.anti_shift, 1);
  assert_int_equal(q.anti_subgraphs, CSLIM_SG_NORM_LINEAR | CSLIM_SG_OV);
  assert_int_equal(q.legacy_names, 0);
  struct {
    const char *name;
    cslim_qtype t;
    cslim_wmethod wm;
  } want[] = {
      {"model.layers.3.self_attn.q_proj", CSLIM_QT_W8A8_DYNAMIC, CSLIM_WM_SSZ},
      {"model.layers.3.self_attn.o_proj", CSLIM_QT_FLOAT, CSLIM_WM_MINMAX},       /* excluded, no later rule */
      {"model.layers.1.self_attn.o_proj", CSLIM_QT_W4A8_DYNAMIC, CSLIM_WM_MINMAX}, /* falls to the next rule */
      {"model.layers.0.mlp.experts.5.down_proj", CSLIM_QT_W4A8_DYNAMIC, CSLIM_WM_MINMAX},
      {"model.layers.0.mlp.gate", CSLIM_QT_FLOAT, CSLIM_WM_MINMAX}, /* routers never */
      {"lm_head", CSLIM_QT_FLOAT, CSLIM_WM_MINMAX},
  };
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
    cslim_qtype t = cslim_quant_plan_linear(&q, want[i].name);
    if (t != want[i].t) fail_msg("%s: type %d, expected %d", want[i].name, (int)t, (int)want[i].t);
    if (t != CSLIM_QT_FLOAT && cslim_quant_plan_wmethod(&q, want[i].name, t) != want[i].wm)
      fail_msg("%s: weight method differs", want[i].name);
  }
  cslim_recipe_free(r);
  tu_rmtree(dir);
  free(dir);
}

/* v0: calib_cfg → scheme, mix_cfg in order, disable_names, legacy names, anti_dataset */
static void test_v0(void **s) {
  (void)s;
  char *dir = tu_tmpdir();
  const char *y = "apiversion: modelslim_v0\n"
                  "metadata: {config_id: v, score: 10, label: {w_bit: 8, a_bit: 8}, verified_model_types: [Qwen3-8B]}\n"
                  "spec:\n"
                  "  anti_cfg: {anti_method: m4}\n"
                  "  calib_cfg: {w_bit: 8, a_bit: 8, mm_tensor: False, act_method: 2,\n"
                  "              disable_names: [model.layers.1.mlp.down_proj]}\n"
                  "  calib_params:\n"
                  "    mix_cfg: {'*.mlp.*': w8a8_dynamic, '*': w8a8}\n"
                  "  calib_save_params: {part_file_size: 2}\n"
                  "  anti_dataset: a.json\n"
                  "  calib_dataset: c.jsonl\n";
  cslim_recipe *r = NULL;
  if (cslim_recipe_load(yaml_file(dir, "v0.yaml", y), &r)) fail_msg("%s", cslim_errmsg());
  cslim_quant_params q;
  cslim_quant_params_default(&q);
  assert_int_equal(cslim_recipe_apply(r, &q), CSLIM_OK);
  assert_int_equal(q.quant_type, CSLIM_QT_W8A8);
  assert_int_equal(q.anti_method, CSLIM_ANTI_M4);
  assert_int_equal(q.anti_experts, 0); /* v0 never smooths experts */
  assert_int_equal(q.act_method, 2);
  assert_int_equal(q.legacy_names, 1);
  assert_true(q.part_file_size == 2.0);
  assert_string_equal(cslim_recipe_anti_dataset(r), "a.json");
  assert_string_equal(cslim_recipe_dataset(r), "c.jsonl");
  assert_int_equal(cslim_quant_plan_linear(&q, "model.layers.1.mlp.down_proj"), CSLIM_QT_FLOAT);
  assert_int_equal(cslim_quant_plan_linear(&q, "model.layers.2.mlp.down_proj"), CSLIM_QT_W8A8_DYNAMIC);
  assert_int_equal(cslim_quant_plan_linear(&q, "model.layers.2.self_attn.k_proj"), CSLIM_QT_W8A8);
  int standby;
  assert_true(cslim_recipe_matches_model(r, "Qwen3-8B", NULL, 0, &standby));
  assert_false(cslim_recipe_matches_model(r, "Qwen3-14B", NULL, 0, &standby));
  cslim_recipe_free(r);
  tu_rmtree(dir);
  free(dir);
}

/* each malformed recipe: the error names the file, the line and the key */
static void test_errors(void **s) {
  (void)s;
  char *dir = tu_tmpdir();
  static const char head[] = "apiversion: modelslim_v1\nmetadata: {config_id: e, label: {w_bit: 8, a_bit: 8}}\n";
  static const struct {
    const char *body, *needle;
  } cases[] = {
      {"spec:\n  process:\n    - type: iter_smooth\n      alpah: 0.5\n", ":6: unknown key 'alpah' in iter_smooth"},
      {"spec:\n  process:\n    - type: smoothquant\n", ":5: spec.process: unknown processor type 'smoothquant'"},
      {"spec:\n  procss: []\n", ":4: unknown key 'procss' in spec"},
      {"spec:\n  process:\n    - {type: iter_smooth, alpha: 1.5}\n", "alpha: 1.5 is not in (0, 1)"},
      {"spec:\n  process:\n    - {type: iter_smooth, symmetric: maybe}\n", "symmetric: expected true or false"},
      {"spec:\n  process:\n    - {type: iter_smooth, enable_subgraph_type: [norm-lin]}\n", "'norm-lin' is not norm-linear"},
      {"spec:\n  process:\n    - {type: quarot, block_size: 48}\n", "block_size: 48 is not -1 or a power of two"},
      {"spec:\n  process: [{type: linear_quant, qconfig: {weight: {scope: per_channel}, actt: {}}}]\n",
       "unknown key 'actt' in qconfig"},
      {"spec:\n  process: []\n  save: [{type: fancy_saver}]\n", "unknown saver 'fancy_saver'"},
      {"spec:\n  process: [\n", "invalid YAML"},
      {"spec:\n  runner: sideways\n  process: []\n", "runner: 'sideways'"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char text[1024];
    snprintf(text, sizeof text, "%s%s", head, cases[i].body);
    const char *p = yaml_file(dir, "bad.yaml", text);
    cslim_recipe *r = NULL;
    if (cslim_recipe_load(p, &r) == CSLIM_OK) fail_msg("case %zu loaded", i);
    if (!strstr(cslim_errmsg(), cases[i].needle) || !strstr(cslim_errmsg(), "bad.yaml"))
      fail_msg("case %zu: '%s' lacks '%s'", i, cslim_errmsg(), cases[i].needle);
  }
  const char *nolabel = "apiversion: modelslim_v1\nmetadata: {config_id: e}\nspec: {process: []}\n";
  cslim_recipe *r = NULL;
  assert_int_not_equal(cslim_recipe_load(yaml_file(dir, "n.yaml", nolabel), &r), CSLIM_OK);
  assert_errmsg_contains("metadata.label is missing");
  const char *api = "apiversion: modelslim_v9\nmetadata: {label: {w_bit: 8, a_bit: 8}}\nspec: {}\n";
  assert_int_not_equal(cslim_recipe_load(yaml_file(dir, "a.yaml", api), &r), CSLIM_OK);
  assert_errmsg_contains("a.yaml:1: apiversion: 'modelslim_v9'");
  tu_rmtree(dir);
  free(dir);
}

static void expect_choice(const char *model, const char *qt, const char *const *tags, int n_tags, const char *file,
                          int fallback) {
  cslim_practice p;
  if (cslim_practice_select(g_recipes, model, qt, tags, n_tags, &p)) fail_msg("%s %s: %s", model, qt, cslim_errmsg());
  const char *base = strrchr(p.path, '/') + 1;
  if (strcmp(base, file) || p.fallback != fallback)
    fail_msg("%s %s: chose %s (fallback %d), expected %s (fallback %d)", model, qt, base, p.fallback, file, fallback);
  if (fallback) assert_true(strlen(p.note) > 0);
  cslim_practice_free(&p);
}

static void test_practice_select(void **s) {
  (void)s;
  assert_string_equal(cslim_model_pedigree("Qwen3-32B"), "qwen3");
  assert_string_equal(cslim_model_pedigree("Qwen3-235B"), "qwen3_moe");
  assert_string_equal(cslim_model_pedigree("Qwen3-VL-8B-Instruct"), "qwen3_vl");
  assert_string_equal(cslim_model_pedigree("Qwen3-VL-30B-A3B"), "qwen3_vl_moe");
  assert_null(cslim_model_pedigree("qwen3-32b")); /* case sensitive */
  expect_choice("Qwen3-30B", "w8a8", NULL, 0, "qwen3-30b-a3b-w8a8.yaml", 0);
  expect_choice("Qwen3-30B", "w4a8", NULL, 0, "qwen3-30b-w4a8-v1.yaml", 0);
  expect_choice("Qwen3-235B", "w4a8", NULL, 0, "qwen3-235b-w4a8-v1.yaml", 0);
  expect_choice("Qwen3-235B", "w8a8", NULL, 0, "default-w8a8.yaml", 2); /* the README's case for the script */
  expect_choice("Qwen3-8B", "w8a8", NULL, 0, "default-w8a8.yaml", 2);
  expect_choice("Qwen3-8B", "w8a8s", NULL, 0, "qwen3-8b-w8a8s.yaml", 0);
  expect_choice("Qwen3-8B", "w4a8", NULL, 0, "default-w8a8.yaml", 5); /* no w4a8 anywhere: default W8A8 */
  expect_choice("Qwen3-32B", "w8a8c8", NULL, 0, "qwen3-32b-dense-w8a8c8.yaml", 0);
  const char *mindie[] = {"mindie", "atlas_a2_inference"}; /* tags are case-insensitive */
  expect_choice("Qwen3-32B", "w8a8", mindie, 2, "qwen3-32b-dense-w8a8.yaml", 0);
  const char *vllm[] = {"vLLM_Ascend"};
  expect_choice("Qwen3-32B", "w8a8", vllm, 1, "qwen3-32b-dense-w8a8.yaml", 1); /* standby */
  expect_choice("Qwen3-VL-32B-Instruct", "w8a8", NULL, 0, "qwen3_vl_w8a8.yaml", 0);
  expect_choice("Qwen3-VL-8B-Instruct", "w8a8", NULL, 0, "default-w8a8.yaml", 2);
  expect_choice("Qwen3-VL-30B-A3B", "w8a8", vllm, 1, "qwen3_vl_moe_w8a8.yaml", 0);
  expect_choice("Llama-3-8B", "w8a8", NULL, 0, "default-w8a8.yaml", 2);
  cslim_practice p;
  assert_int_not_equal(cslim_practice_select(g_recipes, "Qwen3-8B", "int8", NULL, 0, &p), CSLIM_OK);
  assert_errmsg_contains("--quant_type 'int8' is not a recipe label");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_every_shipped_recipe), cmocka_unit_test(test_labels),
      cmocka_unit_test(test_anchors_and_plan),     cmocka_unit_test(test_v0),
      cmocka_unit_test(test_errors),               cmocka_unit_test(test_practice_select),
  };
  return cmocka_run_group_tests(tests, setup, NULL);
}
