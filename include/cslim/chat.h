/* ChatML prompts as the Qwen3 family's chat templates render them.
 *
 *   [<|im_start|>system\n{system}<|im_end|>\n]
 *   <|im_start|>user\n{<|vision_start|><|image_pad|>xN<|vision_end|>}*{text}<|im_end|>\n
 *   [<|im_start|>assistant\n  (+ "<think>\n\n</think>\n\n" when a hybrid Qwen3
 *    template is asked for enable_thinking=false; + "<think>\n" for the
 *    Qwen3-VL Thinking templates)]
 *
 * The style is read from the model's chat_template.jinja (or the
 * tokenizer_config.json "chat_template"); tests hold the strings that
 * transformers renders for each case. */
#ifndef CSLIM_CHAT_H
#define CSLIM_CHAT_H

#include "cslim/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum cslim_chat_style {
  CSLIM_CHAT_CHATML = 0,    /* plain ChatML (Qwen3-VL Instruct, Qwen2-style) */
  CSLIM_CHAT_QWEN3_HYBRID,  /* Qwen3 text: honours enable_thinking */
  CSLIM_CHAT_QWEN3_THINKING /* generation prompt opens a <think> block (Qwen3-VL Thinking) */
} cslim_chat_style;

typedef struct cslim_chat {
  const char *system;       /* NULL: no system turn */
  const char *user;         /* the user's text (may be "") */
  int n_images;             /* images placed before the text */
  const int *image_tokens;  /* per image: <|image_pad|> count (merged patches) */
  int add_generation_prompt;
  int enable_thinking;      /* 1 by default; 0 closes an empty think block (hybrid) */
} cslim_chat;

/* Style of the model in `model_dir` (CHATML when it has no template). */
cslim_status cslim_chat_detect(const char *model_dir, cslim_chat_style *style);
/* Style from template text. */
cslim_chat_style cslim_chat_style_of(const char *template_text);
/* Render into a malloc'd string. */
cslim_status cslim_chat_render(cslim_chat_style style, const cslim_chat *c, char **out);

#ifdef __cplusplus
}
#endif
#endif
