/* cslim-synth: write a random-weight checkpoint with real Qwen3 shapes.
 *   synth_model --preset qwen3-0.6b|qwen3-8b|qwen3-30b-a3b|qwen3-vl-8b|qwen3-vl-30b-a3b --out DIR
 *               [--layers N] [--vocab V] [--shard_gb G] [--seed S] [--tokenizer FILE]
 *               [--hidden H] [--intermediate I] [--tie 0|1]   (shape overrides, e.g. hidden 640 = 20·32) */
#include "synth.h"

#include "cslim/cslim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
  const char *preset = NULL, *out = NULL, *tok = NULL;
  int layers = -1, vocab = -1, hidden = -1, inter = -1, tie = -1;
  double shard = 4.0;
  unsigned long long seed = 1;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--preset")) preset = argv[i + 1];
    else if (!strcmp(argv[i], "--out")) out = argv[i + 1];
    else if (!strcmp(argv[i], "--layers")) layers = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--vocab")) vocab = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--shard_gb")) shard = atof(argv[i + 1]);
    else if (!strcmp(argv[i], "--seed")) seed = strtoull(argv[i + 1], NULL, 10);
    else if (!strcmp(argv[i], "--tokenizer")) tok = argv[i + 1];
    else if (!strcmp(argv[i], "--hidden")) hidden = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--intermediate")) inter = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--tie")) tie = atoi(argv[i + 1]);
  }
  const synth_spec *p = preset ? synth_preset(preset) : NULL;
  if (!p || !out) {
    fprintf(stderr, "usage: synth_model --preset qwen3-0.6b|qwen3-8b|qwen3-30b-a3b|qwen3-vl-8b|qwen3-vl-30b-a3b --out DIR [--layers N] "
                    "[--vocab V] [--shard_gb G] [--seed S] [--tokenizer FILE] [--hidden H] [--intermediate I] [--tie 0|1]\n");
    return 2;
  }
  synth_spec s = *p;
  if (layers > 0) s.layers = layers;
  if (vocab > 0) s.vocab = vocab;
  if (hidden > 0) s.hidden = hidden;
  if (inter > 0) s.intermediate = inter;
  if (tie >= 0) s.tie = tie;
  cslim_set_threads(0);
  if (synth_write(&s, out, shard, seed, tok)) {
    fprintf(stderr, "synth_model: %s\n", cslim_errmsg());
    return 1;
  }
  printf("wrote %s (%s, %d layers)\n", out, s.name, s.layers);
  return 0;
}
