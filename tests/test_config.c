/* config.json loader: the fixtures (transformers 5 spelling), Hub-style 4.x
 * configs of every family, and clear errors. */
#include "testutil.h"

#include "cslim/config.h"

#include <math.h>
#include <string.h>

static cslim_status parse(const char *json, cslim_config *c) {
  return cslim_config_parse(json, strlen(json), "config.json", c);
}

static void test_fixture_dense(void **s) {
  (void)s;
  cslim_config c;
  assert_int_equal(cslim_config_load(tu_fixture("models/tiny-qwen3"), &c), CSLIM_OK);
  assert_int_equal(c.family, CSLIM_FAMILY_QWEN3);
  assert_string_equal(c.architecture, "Qwen3ForCausalLM");
  assert_int_equal(c.text.hidden_size, 256);
  assert_int_equal(c.text.num_layers, 4);
  assert_int_equal(c.text.num_heads, 4);
  assert_int_equal(c.text.num_kv_heads, 2);
  assert_int_equal(c.text.head_dim, 64);
  assert_int_equal(c.text.intermediate_size, 768);
  assert_int_equal(c.text.vocab_size, 4096);
  assert_true(c.text.rope_theta == 1e6);
  assert_true(fabs(c.text.rms_norm_eps - 1e-6) < 1e-18);
  assert_int_equal(c.text.tie_word_embeddings, 0);
  assert_int_equal(c.text.num_experts, 0);
  assert_int_equal(c.dtype, CSLIM_BF16);
  assert_int_equal(c.transformers_major, 5);
  assert_int_equal(c.text.bos_token_id, 4070);
  assert_int_equal(c.text.n_eos, 1);
  assert_int_equal(c.text.eos_token_ids[0], 4072);
  assert_string_equal(c.text_prefix, "model.");
  assert_int_equal(c.has_vision, 0);
}

static void test_fixture_moe(void **s) {
  (void)s;
  cslim_config c;
  assert_int_equal(cslim_config_load(tu_fixture("models/tiny-qwen3-moe/config.json"), &c), CSLIM_OK);
  assert_int_equal(c.family, CSLIM_FAMILY_QWEN3_MOE);
  assert_int_equal(c.text.num_experts, 8); /* from num_local_experts (5.x) */
  assert_int_equal(c.text.num_experts_per_tok, 2);
  assert_int_equal(c.text.moe_intermediate_size, 128);
  assert_int_equal(c.text.norm_topk_prob, 1);
  assert_int_equal(c.text.decoder_sparse_step, 1);
  for (int l = 0; l < 4; l++) assert_true(cslim_layer_is_moe(&c.text, l));
}

static void test_fixture_vl(void **s) {
  (void)s;
  cslim_config c;
  assert_int_equal(cslim_config_load(tu_fixture("models/tiny-qwen3-vl"), &c), CSLIM_OK);
  assert_int_equal(c.family, CSLIM_FAMILY_QWEN3_VL);
  assert_int_equal(c.has_vision, 1);
  assert_int_equal(c.text.hidden_size, 256);
  assert_int_equal(c.text.mrope_section[0], 8);
  assert_int_equal(c.text.mrope_section[1], 12);
  assert_int_equal(c.text.mrope_section[2], 12);
  assert_int_equal(c.text.mrope_interleaved, 1);
  assert_int_equal(c.vision.depth, 3);
  assert_int_equal(c.vision.hidden_size, 128);
  assert_int_equal(c.vision.num_heads, 4);
  assert_int_equal(c.vision.intermediate_size, 256);
  assert_int_equal(c.vision.patch_size, 16);
  assert_int_equal(c.vision.temporal_patch_size, 2);
  assert_int_equal(c.vision.spatial_merge_size, 2);
  assert_int_equal(c.vision.out_hidden_size, 256);
  assert_int_equal(c.vision.num_position_embeddings, 256);
  assert_int_equal(c.vision.n_deepstack, 2);
  assert_int_equal(c.vision.deepstack_indexes[1], 1);
  assert_true(c.vision.rope_theta == 10000.0);
  assert_string_equal(c.vision.hidden_act, "gelu_pytorch_tanh");
  assert_int_equal(c.image_token_id, 4082);
  assert_int_equal(c.vision_start_token_id, 4079);
  assert_int_equal(c.vision_end_token_id, 4080);
  assert_string_equal(c.text_prefix, "model.language_model.");
}

/* Qwen3-8B as on the Hub (transformers 4.51 spelling). */
static const char *QWEN3_8B =
    "{\"architectures\":[\"Qwen3ForCausalLM\"],\"attention_bias\":false,\"attention_dropout\":0.0,"
    "\"bos_token_id\":151643,\"eos_token_id\":151645,\"head_dim\":128,\"hidden_act\":\"silu\","
    "\"hidden_size\":4096,\"initializer_range\":0.02,\"intermediate_size\":12288,"
    "\"max_position_embeddings\":40960,\"max_window_layers\":36,\"model_type\":\"qwen3\","
    "\"num_attention_heads\":32,\"num_hidden_layers\":36,\"num_key_value_heads\":8,"
    "\"rms_norm_eps\":1e-06,\"rope_scaling\":null,\"rope_theta\":1000000,\"sliding_window\":null,"
    "\"tie_word_embeddings\":false,\"torch_dtype\":\"bfloat16\",\"transformers_version\":\"4.51.0\","
    "\"use_cache\":true,\"use_sliding_window\":false,\"vocab_size\":151936}";

static void test_hub_v4_dense(void **s) {
  (void)s;
  cslim_config c;
  assert_int_equal(parse(QWEN3_8B, &c), CSLIM_OK);
  assert_int_equal(c.family, CSLIM_FAMILY_QWEN3);
  assert_int_equal(c.text.hidden_size, 4096);
  assert_int_equal(c.text.head_dim, 128);
  assert_true(c.text.rope_theta == 1e6);
  assert_int_equal(c.text.rope_type, CSLIM_ROPE_DEFAULT);
  assert_int_equal(c.dtype, CSLIM_BF16);
  assert_string_equal(c.dtype_name, "bfloat16");
  assert_int_equal(c.transformers_major, 4);
  assert_int_equal(c.text.vocab_size, 151936);
}

static void test_hub_v4_moe(void **s) {
  (void)s;
  const char *j =
      "{\"architectures\":[\"Qwen3MoeForCausalLM\"],\"decoder_sparse_step\":1,\"eos_token_id\":151645,"
      "\"head_dim\":128,\"hidden_size\":2048,\"intermediate_size\":6144,\"model_type\":\"qwen3_moe\","
      "\"moe_intermediate_size\":768,\"norm_topk_prob\":true,\"num_attention_heads\":32,"
      "\"num_experts\":128,\"num_experts_per_tok\":8,\"num_hidden_layers\":48,"
      "\"num_key_value_heads\":4,\"mlp_only_layers\":[],\"rope_theta\":1000000.0,"
      "\"torch_dtype\":\"bfloat16\",\"vocab_size\":151936,\"transformers_version\":\"4.51.0\"}";
  cslim_config c;
  assert_int_equal(parse(j, &c), CSLIM_OK);
  assert_int_equal(c.text.num_experts, 128);
  assert_int_equal(c.text.num_experts_per_tok, 8);
  assert_int_equal(c.text.moe_intermediate_size, 768);
  /* mlp_only_layers and decoder_sparse_step decide which layers are sparse */
  const char *j2 =
      "{\"model_type\":\"qwen3_moe\",\"hidden_size\":64,\"intermediate_size\":128,"
      "\"moe_intermediate_size\":32,\"num_attention_heads\":2,\"num_experts\":4,\"num_experts_per_tok\":2,"
      "\"num_hidden_layers\":6,\"vocab_size\":100,\"decoder_sparse_step\":2,"
      "\"mlp_only_layers\":[3]}";
  assert_int_equal(parse(j2, &c), CSLIM_OK);
  assert_false(cslim_layer_is_moe(&c.text, 0));
  assert_true(cslim_layer_is_moe(&c.text, 1));
  assert_false(cslim_layer_is_moe(&c.text, 2));
  assert_false(cslim_layer_is_moe(&c.text, 3)); /* mlp_only */
  assert_true(cslim_layer_is_moe(&c.text, 5));
  assert_int_equal(c.text.norm_topk_prob, 0); /* class default */
  assert_int_equal(c.text.num_kv_heads, 2);    /* defaults to num_attention_heads */
  assert_int_equal(c.text.head_dim, 32);       /* hidden / heads */
  assert_string_equal(c.architecture, "Qwen3MoeForCausalLM");
}

/* Qwen3-VL-30B-A3B-Instruct as on the Hub (4.57 spelling). */
static const char *QWEN3_VL_MOE =
    "{\"architectures\":[\"Qwen3VLMoeForConditionalGeneration\"],\"image_token_id\":151655,"
    "\"model_type\":\"qwen3_vl_moe\",\"text_config\":{\"bos_token_id\":151643,\"decoder_sparse_step\":1,"
    "\"eos_token_id\":151645,\"head_dim\":128,\"hidden_act\":\"silu\",\"hidden_size\":2048,"
    "\"intermediate_size\":6144,\"max_position_embeddings\":262144,\"mlp_only_layers\":[],"
    "\"model_type\":\"qwen3_vl_moe_text\",\"moe_intermediate_size\":768,\"norm_topk_prob\":true,"
    "\"num_attention_heads\":32,\"num_experts\":128,\"num_experts_per_tok\":8,\"num_hidden_layers\":48,"
    "\"num_key_value_heads\":4,\"rms_norm_eps\":1e-06,\"rope_scaling\":{\"mrope_interleaved\":true,"
    "\"mrope_section\":[24,20,20],\"rope_type\":\"default\"},\"rope_theta\":5000000,"
    "\"dtype\":\"bfloat16\",\"vocab_size\":151936},\"tie_word_embeddings\":false,"
    "\"transformers_version\":\"4.57.0.dev0\",\"video_token_id\":151656,\"vision_config\":{"
    "\"deepstack_visual_indexes\":[8,16,24],\"depth\":27,\"hidden_act\":\"gelu_pytorch_tanh\","
    "\"hidden_size\":1152,\"in_channels\":3,\"initializer_range\":0.02,\"intermediate_size\":4304,"
    "\"model_type\":\"qwen3_vl_moe\",\"num_heads\":16,\"num_position_embeddings\":2304,"
    "\"out_hidden_size\":2048,\"patch_size\":16,\"spatial_merge_size\":2,\"temporal_patch_size\":2},"
    "\"vision_end_token_id\":151653,\"vision_start_token_id\":151652}";

static void test_hub_v4_vl_moe(void **s) {
  (void)s;
  cslim_config c;
  assert_int_equal(parse(QWEN3_VL_MOE, &c), CSLIM_OK);
  assert_int_equal(c.family, CSLIM_FAMILY_QWEN3_VL_MOE);
  assert_true(c.text.rope_theta == 5e6);
  assert_int_equal(c.text.mrope_section[0], 24);
  assert_int_equal(c.text.mrope_section[2], 20);
  assert_int_equal(c.text.num_experts, 128);
  assert_int_equal(c.text.norm_topk_prob, 1);
  assert_int_equal(c.vision.depth, 27);
  assert_int_equal(c.vision.n_deepstack, 3);
  assert_int_equal(c.vision.deepstack_indexes[2], 24);
  assert_int_equal(c.dtype, CSLIM_BF16); /* from text_config.dtype */
  assert_int_equal(c.transformers_major, 4);
}

static void test_rope_variants(void **s) {
  (void)s;
  cslim_config c;
  const char *yarn =
      "{\"model_type\":\"qwen3\",\"hidden_size\":64,\"intermediate_size\":128,"
      "\"num_attention_heads\":2,\"num_hidden_layers\":1,\"vocab_size\":10,\"rope_theta\":1000000,"
      "\"rope_scaling\":{\"rope_type\":\"yarn\",\"factor\":4.0,"
      "\"original_max_position_embeddings\":32768}}";
  assert_int_equal(parse(yarn, &c), CSLIM_OK);
  assert_int_equal(c.text.rope_type, CSLIM_ROPE_YARN);
  assert_true(c.text.rope_factor == 4.0);
  assert_int_equal(c.text.rope_original_max_pos, 32768);
  assert_true(c.text.rope_beta_fast == 32.0 && c.text.rope_beta_slow == 1.0);
  const char *v5 =
      "{\"model_type\":\"qwen3\",\"hidden_size\":64,\"intermediate_size\":128,"
      "\"num_attention_heads\":2,\"num_hidden_layers\":1,\"vocab_size\":10,"
      "\"rope_parameters\":{\"rope_type\":\"default\",\"rope_theta\":5000000.0},\"dtype\":\"float16\"}";
  assert_int_equal(parse(v5, &c), CSLIM_OK);
  assert_true(c.text.rope_theta == 5e6);
  assert_int_equal(c.dtype, CSLIM_F16);
  const char *bad =
      "{\"model_type\":\"qwen3\",\"hidden_size\":64,\"intermediate_size\":128,"
      "\"num_attention_heads\":2,\"num_hidden_layers\":1,\"vocab_size\":10,"
      "\"rope_scaling\":{\"rope_type\":\"longrope\"}}";
  assert_int_equal(parse(bad, &c), CSLIM_ERR_UNSUPPORTED);
  assert_errmsg_contains("rope_type 'longrope'");
}

static void test_errors(void **s) {
  (void)s;
  cslim_config c;
  assert_int_equal(parse("{\"architectures\":[\"LlamaForCausalLM\"],\"model_type\":\"llama\"}", &c),
                   CSLIM_ERR_UNSUPPORTED);
  assert_errmsg_contains("architecture 'LlamaForCausalLM' is not supported");
  assert_errmsg_contains("Qwen3MoeForCausalLM"); /* the list of supported ones */
  assert_int_equal(parse("{\"model_type\":\"qwen2\"}", &c), CSLIM_ERR_UNSUPPORTED);
  assert_errmsg_contains("model_type 'qwen2'");
  assert_int_equal(parse("{\"hidden_size\":3}", &c), CSLIM_ERR_FORMAT);
  assert_errmsg_contains("neither");
  assert_int_equal(parse("{\"model_type\":\"qwen3\",\"hidden_size\":64}", &c), CSLIM_ERR_FORMAT);
  assert_errmsg_contains("config.json: num_hidden_layers is missing");
  assert_int_equal(parse("{\"model_type\":\"qwen3\",\"hidden_size\":\"big\"}", &c), CSLIM_ERR_FORMAT);
  assert_errmsg_contains("hidden_size must be an integer");
  assert_int_equal(parse("{\"model_type\":\"qwen3\",\"architectures\":[\"Qwen3MoeForCausalLM\"]}", &c),
                   CSLIM_ERR_FORMAT);
  assert_errmsg_contains("contradicts");
  assert_int_equal(parse("{\"model_type\":\"qwen3_vl\",\"text_config\":{}}", &c), CSLIM_ERR_FORMAT);
  assert_errmsg_contains("vision_config");
  assert_int_equal(parse("{\"model_type\": qwen3}", &c), CSLIM_ERR_FORMAT);
  assert_errmsg_contains("invalid JSON at line 1");
  assert_int_equal(parse("{\"model_type\":\"qwen3\",\"hidden_size\":64,\"intermediate_size\":1,"
                         "\"num_attention_heads\":3,\"num_key_value_heads\":2,"
                         "\"num_hidden_layers\":1,\"vocab_size\":10}", &c),
                   CSLIM_ERR_FORMAT);
  assert_errmsg_contains("not a multiple of num_key_value_heads");
  assert_int_equal(cslim_config_load("/nonexistent-model-dir", &c), CSLIM_ERR_IO);
  assert_errmsg_contains("/nonexistent-model-dir/config.json");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_fixture_dense), cmocka_unit_test(test_fixture_moe),
      cmocka_unit_test(test_fixture_vl),    cmocka_unit_test(test_hub_v4_dense),
      cmocka_unit_test(test_hub_v4_moe),    cmocka_unit_test(test_hub_v4_vl_moe),
      cmocka_unit_test(test_rope_variants), cmocka_unit_test(test_errors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
