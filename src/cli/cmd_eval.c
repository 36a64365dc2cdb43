/* cslim eval ppl: perplexity over consecutive windows of a text file. */
#include "cli/args.h"
#include "cli/commands.h"
#include "cslim/cslim.h"
#include "cslim/eval.h"
#include "io/json_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cmd_eval(int argc, char **argv) {
  const char *model_path = NULL, *text = NULL;
  int seq = 256, windows = 0, json = 0, per = 64;
  cli_opt opts[] = {
      {"model_path", CLI_STR, &model_path, "DIR", "model directory", 1, 0},
      {"text", CLI_STR, &text, "FILE", "UTF-8 text to score", 1, 0},
      {"seq", CLI_INT, &seq, "N", "window length in tokens (default 256)", 0, 0},
      {"windows", CLI_INT, &windows, "N", "score at most N windows (default: all)", 0, 0},
      {"windows_per_pass", CLI_INT, &per, "N", "windows run through the layers together (default 64)", 0, 0},
      {"json", CLI_BOOL, &json, NULL, "print a JSON object before the last line", 0, 0},
      CLI_END,
  };
  cli_command cmd = {"eval", "Evaluate a model: perplexity over consecutive windows.",
                     "cslim eval ppl --model_path DIR --text FILE [--seq 256] [--windows N] [--json]",
                     "The text is tokenized without special tokens and cut into consecutive,\n"
                     "non-overlapping windows of --seq tokens; each window scores its seq-1 next-token\n"
                     "predictions. The last line is always 'ppl: <value>'."};
  const char *pos[1];
  int npos = 1;
  int r = cli_parse(&cmd, opts, argc, argv, pos, &npos);
  if (r) return r < 0 ? CLI_EXIT_OK : r;
  if (npos != 1 || strcmp(pos[0], "ppl") != 0)
    return cli_usage_error(&cmd, "expected the evaluation to run: 'cslim eval ppl ...'");
  if (seq < 2) return cli_usage_error(&cmd, "--seq must be at least 2");

  char *buf;
  size_t len;
  if (cslim_read_file(text, &buf, &len)) return cli_fail();
  cslim_tokenizer *tok;
  if (cslim_tokenizer_load(model_path, &tok)) {
    free(buf);
    return cli_fail();
  }
  cslim_ids ids = {0};
  cslim_status rc = cslim_tokenizer_encode(tok, buf, len, &ids);
  if (rc) cslim_error_context("%s", text);
  free(buf);
  cslim_tokenizer_free(tok);
  cslim_model *m = NULL;
  if (!rc) rc = cslim_model_open(model_path, &m);
  cslim_ppl_result res;
  cslim_ppl_opts po = {seq, windows, per};
  if (!rc) rc = cslim_eval_perplexity(m, ids.v, ids.n, &po, &res);
  cslim_ids_free(&ids);
  cslim_model_close(m);
  if (rc) return cli_fail();
  if (json)
    printf("{\"ppl\": %.6f, \"nll\": %.6f, \"tokens\": %lld, \"windows\": %d, \"seq\": %d, \"text_tokens\": %lld, "
           "\"seconds\": %.3f}\n",
           res.ppl, res.nll, (long long)res.tokens, res.windows, seq, (long long)res.text_tokens, res.seconds);
  else
    printf("windows: %d x %d tokens (%lld predictions) in %.2f s\n", res.windows, seq, (long long)res.tokens,
           res.seconds);
  CSLIM_INFO("peak RSS %.0f MB", (double)cslim_peak_rss() / 1e6);
  printf("ppl: %.4f\n", res.ppl);
  return CLI_EXIT_OK;
}
