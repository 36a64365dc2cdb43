/* ChatML rendering for the Qwen3 family (see cslim/chat.h). */
#include "cslim/chat.h"

#include "io/json_util.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

cslim_chat_style cslim_chat_style_of(const char *t) {
  if (!t) return CSLIM_CHAT_CHATML;
  if (strstr(t, "enable_thinking")) return CSLIM_CHAT_QWEN3_HYBRID;
  if (strstr(t, "<|im_start|>assistant\\n<think>\\n") || strstr(t, "<|im_start|>assistant\n<think>\n"))
    return CSLIM_CHAT_QWEN3_THINKING;
  return CSLIM_CHAT_CHATML;
}

cslim_status cslim_chat_detect(const char *dir, cslim_chat_style *style) {
  char path[4096];
  char *text = NULL;
  size_t n;
  *style = CSLIM_CHAT_CHATML;
  snprintf(path, sizeof path, "%s/chat_template.jinja", dir);
  if (access(path, F_OK) == 0) {
    cslim_status rc = cslim_read_file(path, &text, &n);
    if (rc) return rc;
    *style = cslim_chat_style_of(text);
    free(text);
    return CSLIM_OK;
  }
  snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
  if (access(path, F_OK) != 0) return CSLIM_OK;
  cJSON *cfg = NULL;
  cslim_status rc = cslim_json_load_file(path, &cfg);
  if (rc) return rc;
  const cJSON *t = cJSON_GetObjectItemCaseSensitive(cfg, "chat_template");
  if (cJSON_IsString(t)) *style = cslim_chat_style_of(t->valuestring);
  cJSON_Delete(cfg);
  return CSLIM_OK;
}

typedef struct sb {
  char *p;
  size_t n, cap;
  int oom;
} sb;

static void add(sb *b, const char *s) {
  size_t l = strlen(s);
  if (b->oom) return;
  if (b->n + l + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->n + l + 1) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
      b->oom = 1;
      return;
    }
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->n, s, l + 1);
  b->n += l;
}

cslim_status cslim_chat_render(cslim_chat_style style, const cslim_chat *c, char **out) {
  sb b = {0};
  if (c->system) {
    add(&b, "<|im_start|>system\n");
    add(&b, c->system);
    add(&b, "<|im_end|>\n");
  }
  add(&b, "<|im_start|>user\n");
  for (int i = 0; i < c->n_images; i++) {
    if (c->image_tokens[i] <= 0) {
      free(b.p);
      return cslim_error(CSLIM_ERR_INVALID, "chat: image %d has no tokens", i);
    }
    add(&b, "<|vision_start|>");
    for (int k = 0; k < c->image_tokens[i]; k++) add(&b, "<|image_pad|>");
    add(&b, "<|vision_end|>");
  }
  add(&b, c->user ? c->user : "");
  add(&b, "<|im_end|>\n");
  if (c->add_generation_prompt) {
    add(&b, "<|im_start|>assistant\n");
    if (style == CSLIM_CHAT_QWEN3_HYBRID && !c->enable_thinking) add(&b, "<think>\n\n</think>\n\n");
    if (style == CSLIM_CHAT_QWEN3_THINKING) add(&b, "<think>\n");
  }
  if (b.oom) {
    free(b.p);
    return cslim_error(CSLIM_ERR_NOMEM, "out of memory");
  }
  *out = b.p;
  return CSLIM_OK;
}
