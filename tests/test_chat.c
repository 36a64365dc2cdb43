/* Chat rendering: the strings transformers renders from the fixtures'
 * chat_template.jinja (rendered with jinja2 when these tests were written),
 * and the Qwen3-VL image prompt, whose token ids must equal the reference
 * input_ids. */
#include "testutil.h"

#include "cslim/chat.h"
#include "cslim/safetensors.h"
#include "cslim/tokenizer.h"

#include <stdlib.h>
#include <string.h>

static char *render(cslim_chat_style st, const char *sys, const char *user, int gen, int think) {
  cslim_chat c = {sys, user, 0, NULL, gen, think};
  char *out;
  assert_int_equal(cslim_chat_render(st, &c, &out), CSLIM_OK);
  return out;
}

static void test_qwen3_template_cases(void **s) {
  (void)s;
  cslim_chat_style st;
  assert_int_equal(cslim_chat_detect(tu_fixture("models/tiny-qwen3"), &st), CSLIM_OK);
  assert_int_equal(st, CSLIM_CHAT_QWEN3_HYBRID);
  char *r = render(st, NULL, "Hello", 1, 1);
  assert_string_equal(r, "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n");
  free(r);
  r = render(st, "You are a bot.", "Hello", 1, 1);
  assert_string_equal(r, "<|im_start|>system\nYou are a bot.<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n"
                         "<|im_start|>assistant\n");
  free(r);
  r = render(st, NULL, "Hello", 1, 0);
  assert_string_equal(r, "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n");
  free(r);
  r = render(st, NULL, "Hello", 0, 1);
  assert_string_equal(r, "<|im_start|>user\nHello<|im_end|>\n");
  free(r);
  r = render(st, "S", "multi\nline <b>", 0, 0);
  assert_string_equal(r, "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nmulti\nline <b><|im_end|>\n");
  free(r);
  /* the real Qwen3 template (in tokenizer_config.json) is the same hybrid style */
  assert_int_equal(cslim_chat_detect(tu_fixture("models/tiny-qwen3-moe"), &st), CSLIM_OK);
  assert_int_equal(st, CSLIM_CHAT_QWEN3_HYBRID);
}

static void test_styles(void **s) {
  (void)s;
  assert_int_equal(cslim_chat_style_of(NULL), CSLIM_CHAT_CHATML);
  assert_int_equal(cslim_chat_style_of("{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n<think>\\n' }}"),
                   CSLIM_CHAT_QWEN3_THINKING);
  char *r = render(CSLIM_CHAT_QWEN3_THINKING, NULL, "x", 1, 1);
  assert_string_equal(r, "<|im_start|>user\nx<|im_end|>\n<|im_start|>assistant\n<think>\n");
  free(r);
  r = render(CSLIM_CHAT_CHATML, NULL, "x", 1, 0); /* enable_thinking means nothing here */
  assert_string_equal(r, "<|im_start|>user\nx<|im_end|>\n<|im_start|>assistant\n");
  free(r);
  char *dir = tu_tmpdir();
  assert_int_equal(cslim_chat_detect(dir, &(cslim_chat_style){0}), CSLIM_OK); /* no template: ChatML */
  tu_rmtree(dir);
  free(dir);
}

/* Qwen3-VL: a user turn holding one image then text; the ids equal the
 * reference processor's input_ids for both prompts. */
static void test_vl_prompt_matches_reference_ids(void **s) {
  (void)s;
  cslim_tokenizer *tok;
  assert_int_equal(cslim_tokenizer_load(tu_fixture("models/tiny-qwen3-vl"), &tok), CSLIM_OK);
  cslim_st *ref;
  assert_int_equal(cslim_st_open(tu_fixture("refs/tiny-qwen3-vl_ref.safetensors"), &ref), CSLIM_OK);
  const char *names[2] = {"astronaut", "coffee"};
  for (int k = 0; k < 2; k++) {
    const cslim_tensor *thw = cslim_st_findf(ref, "%s.image_grid_thw", names[k]);
    const cslim_tensor *want = cslim_st_findf(ref, "%s.input_ids", names[k]);
    const int64_t *g = thw->data;
    int pads = (int)(g[0] * g[1] * g[2] / 4);
    cslim_chat c = {NULL, "Describe this image.", 1, &pads, 1, 1};
    char *prompt;
    assert_int_equal(cslim_chat_render(CSLIM_CHAT_CHATML, &c, &prompt), CSLIM_OK);
    cslim_ids ids = {0};
    assert_int_equal(cslim_tokenizer_encode(tok, prompt, strlen(prompt), &ids), CSLIM_OK);
    assert_int_equal(ids.n, want->numel);
    const int64_t *w = want->data;
    for (size_t i = 0; i < ids.n; i++) assert_int_equal(ids.v[i], w[i]);
    free(prompt);
    cslim_ids_free(&ids);
  }
  cslim_st_close(ref);
  cslim_tokenizer_free(tok);
  /* an image with no tokens is refused */
  int zero = 0;
  cslim_chat c = {NULL, "x", 1, &zero, 1, 1};
  char *p;
  assert_int_equal(cslim_chat_render(CSLIM_CHAT_CHATML, &c, &p), CSLIM_ERR_INVALID);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_qwen3_template_cases),
      cmocka_unit_test(test_styles),
      cmocka_unit_test(test_vl_prompt_matches_reference_ids),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
