/* cslim generate: greedy decoding with a KV cache, streaming to stdout. */
#include "cli/args.h"
#include "cli/commands.h"
#include "cslim/chat.h"
#include "cslim/cslim.h"
#include "cslim/eval.h"
#include "cslim/vision.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Stream tokens as UTF-8: hold back bytes of an unfinished character. */
typedef struct streamer {
  const cslim_tokenizer *tok;
  unsigned char pend[8];
  int npend;
  int skip_special;
} streamer;

static int utf8_len(unsigned char c) { return c < 0x80 ? 1 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4; }

static int on_token(void *ctx, int32_t id) {
  streamer *s = ctx;
  if (s->skip_special && cslim_tokenizer_is_special(s->tok, id)) return 0;
  size_t n;
  const char *b = cslim_tokenizer_token_bytes(s->tok, id, &n);
  for (size_t i = 0; b && i < n; i++) {
    s->pend[s->npend++] = (unsigned char)b[i];
    int need = utf8_len(s->pend[0]);
    if ((s->pend[0] & 0xc0) == 0x80) need = 1; /* stray continuation byte: pass through */
    if (s->npend >= need || s->npend == (int)sizeof s->pend) {
      fwrite(s->pend, 1, (size_t)s->npend, stdout);
      s->npend = 0;
    }
  }
  fflush(stdout);
  return 0;
}

int cmd_generate(int argc, char **argv) {
  const char *model_path = NULL, *prompt = NULL, *system = NULL;
  int chat = 0, max_new = 64, think = 1, show_special = 0;
  cli_list images = {0};
  cli_opt opts[] = {
      {"model_path", CLI_STR, &model_path, "DIR", "model directory", 1, 0},
      {"prompt", CLI_STR, &prompt, "S", "the prompt text", 1, 0},
      {"image", CLI_LIST, &images, "FILE", "Qwen3-VL: images (PNG/JPEG) placed before the prompt; implies --chat", 0,
       0},
      {"chat", CLI_BOOL, &chat, NULL, "wrap the prompt in the chat template (user turn + generation prompt)", 0, 0},
      {"system", CLI_STR, &system, "S", "with --chat: a system turn", 0, 0},
      {"enable_thinking", CLI_BOOL, &think, NULL, "with --chat on hybrid Qwen3 templates (default True)", 0, 0},
      {"max_new_tokens", CLI_INT, &max_new, "N", "stop after N new tokens (default 64)", 0, 0},
      {"show_special", CLI_BOOL, &show_special, NULL, "print special tokens too", 0, 0},
      CLI_END,
  };
  cli_command cmd = {"generate", "Greedy generation with a KV cache, streaming tokens to stdout.",
                     "cslim generate --model_path DIR --prompt S [--chat] [--image FILE...] [--max_new_tokens N]",
                     "Generation stops at the model's end-of-sequence tokens (<|im_end|>,\n"
                     "<|endoftext|> and config.json's eos_token_id) or after --max_new_tokens.\n"
                     "Layer weights are kept converted between steps when they fit in half the RAM."};
  int r = cli_parse(&cmd, opts, argc, argv, NULL, NULL);
  if (r) return r < 0 ? CLI_EXIT_OK : r;
  if (max_new < 1) return cli_usage_error(&cmd, "--max_new_tokens must be at least 1");

  if (images.n) chat = 1;
  cslim_tokenizer *tok;
  if (cslim_tokenizer_load(model_path, &tok)) return cli_fail();
  char *text = strdup(prompt);
  cslim_status rc = CSLIM_OK;
  cslim_ids ids = {0}, outids = {0};
  cslim_vision_input vin = {0};
  if (images.n) {
    /* images: the processor and the template with each image's pad count */
    cslim_prompter pr;
    rc = cslim_prompter_load(model_path, NULL, &pr);
    if (rc) cslim_error_context("--image");
    cslim_vision_prompt vp = {images.v, images.n, prompt, system, 1, think};
    if (!rc) rc = cslim_vision_prompt_build(tok, &pr, &vp, &ids, &vin);
  } else if (chat) {
    cslim_chat_style style;
    rc = cslim_chat_detect(model_path, &style);
    cslim_chat c = {system, prompt, 0, NULL, 1, think};
    free(text);
    text = NULL;
    if (!rc) rc = cslim_chat_render(style, &c, &text);
  }
  if (!rc && !images.n) rc = cslim_tokenizer_encode(tok, text, strlen(text), &ids);
  cslim_model *m = NULL;
  if (!rc) rc = cslim_model_open(model_path, &m);
  if (!rc) {
    /* keep converted layers between steps within half of the physical memory */
    long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
    cslim_model_set_layer_cache(m, pages > 0 && psz > 0 ? (uint64_t)pages * (uint64_t)psz / 2 : 0);
    const cslim_config *c = cslim_model_config(m);
    int32_t stops[8];
    int ns = 0;
    for (int i = 0; i < c->text.n_eos && ns < 6; i++) stops[ns++] = c->text.eos_token_ids[i];
    int32_t e1 = cslim_tokenizer_find(tok, "<|im_end|>"), e2 = cslim_tokenizer_find(tok, "<|endoftext|>");
    if (e1 >= 0) stops[ns++] = e1;
    if (e2 >= 0) stops[ns++] = e2;
    streamer s = {tok, {0}, 0, !show_special};
    cslim_generate_opts go = {max_new, stops, ns, on_token, &s, images.n ? &vin : NULL};
    if (!chat) fputs(prompt, stdout);
    rc = cslim_generate(m, ids.v, (int)ids.n, &go, &outids);
    if (s.npend) fwrite(s.pend, 1, (size_t)s.npend, stdout);
    putchar('\n');
    if (!rc) CSLIM_INFO("%zu prompt tokens, %zu generated", ids.n, outids.n);
  }
  cslim_model_close(m);
  cslim_vision_input_free(&vin);
  cslim_ids_free(&ids);
  cslim_ids_free(&outids);
  cslim_tokenizer_free(tok);
  free(text);
  free(images.v);
  return rc ? cli_fail() : CLI_EXIT_OK;
}
