/* cslim tokenize: encode text with the model's tokenizer and print the ids. */
#include "cli/args.h"
#include "cli/commands.h"
#include "cslim/chat.h"
#include "cslim/cslim.h"
#include "cslim/tokenizer.h"
#include "io/json_util.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cmd_tokenize(int argc, char **argv) {
  const char *model_path = NULL, *text = NULL, *file = NULL, *system = NULL;
  int chat = 0, json = 0, show = 0, think = 1;
  cli_opt opts[] = {
      {"model_path", CLI_STR, &model_path, "DIR", "model directory (tokenizer.json) or a tokenizer.json", 1, 0},
      {"text", CLI_STR, &text, "S", "the text to encode", 0, 0},
      {"file", CLI_STR, &file, "F", "encode the contents of file F (UTF-8)", 0, 0},
      {"chat", CLI_BOOL, &chat, NULL, "wrap the text in the chat template as a user turn + generation prompt", 0, 0},
      {"system", CLI_STR, &system, "S", "with --chat: a system turn", 0, 0},
      {"enable_thinking", CLI_BOOL, &think, NULL,
       "with --chat on hybrid Qwen3 templates: False closes an empty <think> block (default True)", 0, 0},
      {"json", CLI_BOOL, &json, NULL, "print {\"ids\": [...], \"count\": N}", 0, 0},
      {"show", CLI_BOOL, &show, NULL, "print one line per token: id and its text", 0, 0},
      CLI_END,
  };
  cli_command cmd = {"tokenize", "Encode text with the model's tokenizer and print the ids.",
                     "cslim tokenize --model_path DIR (--text S | --file F) [--chat] [--json]",
                     "Special tokens written in the text (<|im_start|>, ...) are matched as single tokens,\n"
                     "as transformers does by default. Without --json the ids are printed on one line,\n"
                     "separated by spaces."};
  int r = cli_parse(&cmd, opts, argc, argv, NULL, NULL);
  if (r) return r < 0 ? CLI_EXIT_OK : r;
  if (!!text == !!file) return cli_usage_error(&cmd, "give exactly one of --text and --file");
  if (system && !chat) return cli_usage_error(&cmd, "--system needs --chat");

  char *buf = NULL;
  size_t len;
  if (file) {
    if (cslim_read_file(file, &buf, &len)) return cli_fail();
  } else {
    buf = strdup(text);
    len = strlen(buf);
  }
  cslim_tokenizer *tok;
  if (cslim_tokenizer_load(model_path, &tok)) {
    free(buf);
    return cli_fail();
  }
  if (chat) {
    cslim_chat_style style = CSLIM_CHAT_CHATML;
    if (cslim_chat_detect(model_path, &style)) {
      free(buf);
      cslim_tokenizer_free(tok);
      return cli_fail();
    }
    cslim_chat c = {system, buf, 0, NULL, 1, think};
    char *prompt;
    if (cslim_chat_render(style, &c, &prompt)) {
      free(buf);
      cslim_tokenizer_free(tok);
      return cli_fail();
    }
    free(buf);
    buf = prompt;
    len = strlen(buf);
  }
  cslim_ids ids = {0};
  int rc = CLI_EXIT_OK;
  if (cslim_tokenizer_encode(tok, buf, len, &ids)) {
    if (file) cslim_error_context("%s", file);
    rc = cli_fail();
  } else if (json) {
    cJSON *o = cJSON_CreateObject();
    cJSON *a = cJSON_AddArrayToObject(o, "ids");
    for (size_t i = 0; i < ids.n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber(ids.v[i]));
    cJSON_AddNumberToObject(o, "count", (double)ids.n);
    char *s = cJSON_PrintUnformatted(o);
    puts(s);
    free(s);
    cJSON_Delete(o);
  } else if (show) {
    for (size_t i = 0; i < ids.n; i++) {
      size_t bl;
      const char *b = cslim_tokenizer_token_bytes(tok, ids.v[i], &bl);
      printf("%d\t", ids.v[i]);
      for (size_t k = 0; k < bl; k++) {
        unsigned char c = (unsigned char)b[k];
        if (c == '\n') fputs("\\n", stdout);
        else if (c == '\t') fputs("\\t", stdout);
        else if (c == '\r') fputs("\\r", stdout);
        else if (c < 0x20) printf("\\x%02x", c);
        else putchar(c);
      }
      putchar('\n');
    }
  } else {
    for (size_t i = 0; i < ids.n; i++) printf(i ? " %d" : "%d", ids.v[i]);
    putchar('\n');
  }
  cslim_ids_free(&ids);
  cslim_tokenizer_free(tok);
  free(buf);
  return rc;
}
