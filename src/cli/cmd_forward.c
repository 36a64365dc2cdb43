/* cslim forward: the float32 forward pass on input_ids from a safetensors
 * file; writes logits (and hidden states) to another. */
#include "cli/args.h"
#include "cli/commands.h"
#include "cslim/cslim.h"
#include "cslim/model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct fwd_out {
  int B, T, L, H, V;
  float **hidden; /* L+1 or NULL */
  float *logits;
} fwd_out;

static cslim_status write_outputs(const char *path, const fwd_out *o) {
  cslim_staging *sg;
  cslim_status rc = cslim_staging_open_file(path, &sg);
  if (rc) return rc;
  cslim_st_writer *w;
  rc = cslim_st_writer_create(cslim_staging_path(sg), "out", 0, &w);
  int64_t ls[3] = {o->B, o->T, o->V}, hs[3] = {o->B, o->T, o->H};
  if (!rc) rc = cslim_st_writer_declare(w, "logits", CSLIM_F32, 3, ls);
  for (int i = 0; o->hidden && i <= o->L && !rc; i++) {
    char name[32];
    snprintf(name, sizeof name, "hidden.%d", i);
    rc = cslim_st_writer_declare(w, name, CSLIM_F32, 3, hs);
  }
  if (!rc) rc = cslim_st_writer_begin(w);
  if (!rc) rc = cslim_st_writer_put(w, "logits", o->logits);
  for (int i = 0; o->hidden && i <= o->L && !rc; i++) {
    char name[32];
    snprintf(name, sizeof name, "hidden.%d", i);
    rc = cslim_st_writer_put(w, name, o->hidden[i]);
  }
  if (!rc) rc = cslim_st_writer_finish(w);
  cslim_st_writer_free(w);
  if (rc) {
    cslim_staging_abort(sg);
    return rc;
  }
  return cslim_staging_commit_file(sg, "out.safetensors");
}

/* input_ids as int32: [B, T] or [T] of I64/I32. */
static cslim_status read_ids(const char *path, int32_t **ids, int *B, int *T) {
  cslim_st *st;
  cslim_status rc = cslim_st_open(path, &st);
  if (rc) return rc;
  const cslim_tensor *t = cslim_st_find(st, "input_ids");
  if (!t) {
    rc = cslim_error(CSLIM_ERR_FORMAT, "%s: no 'input_ids' tensor", path);
  } else if ((t->dtype != CSLIM_I64 && t->dtype != CSLIM_I32) || t->ndim < 1 || t->ndim > 2 || t->numel == 0) {
    rc = cslim_error(CSLIM_ERR_FORMAT, "%s: input_ids must be a non-empty int64/int32 [B, T] tensor", path);
  } else {
    *B = t->ndim == 2 ? (int)t->shape[0] : 1;
    *T = (int)t->shape[t->ndim - 1];
    *ids = malloc((size_t)t->numel * sizeof(int32_t));
    for (int64_t i = 0; i < t->numel; i++) {
      int64_t v;
      if (t->dtype == CSLIM_I64)
        memcpy(&v, (const char *)t->data + 8 * i, 8);
      else {
        int32_t v32;
        memcpy(&v32, (const char *)t->data + 4 * i, 4);
        v = v32;
      }
      (*ids)[i] = (int32_t)v;
    }
  }
  cslim_st_close(st);
  return rc;
}

int cmd_forward(int argc, char **argv) {
  const char *model_path = NULL, *inputs = NULL, *output = NULL;
  int hidden = 0;
  double t0 = cslim_now();
  cli_opt opts[] = {
      {"model_path", CLI_STR, &model_path, "DIR", "model directory", 1, 0},
      {"inputs", CLI_STR, &inputs, "IN", "safetensors file with input_ids int64 [B, T]", 1, 0},
      {"output", CLI_STR, &output, "OUT", "safetensors file to write (logits float32 [B, T, V])", 1, 0},
      {"hidden", CLI_BOOL, &hidden, NULL,
       "also write hidden.0 .. hidden.L [B, T, H] (embeddings, each layer's input, the final-normed output)", 0,
       0},
      CLI_END,
  };
  cli_command cmd = {"forward", "Run the float32 forward pass and write logits.",
                     "cslim forward --model_path DIR --inputs IN.safetensors --output OUT.safetensors [--hidden]",
                     "Layers are streamed from the checkpoint one at a time. The output is written\n"
                     "atomically (a temporary file beside OUT, renamed when complete)."};
  int r = cli_parse(&cmd, opts, argc, argv, NULL, NULL);
  if (r) return r < 0 ? CLI_EXIT_OK : r;

  int32_t *ids = NULL;
  int B = 0, T = 0;
  if (read_ids(inputs, &ids, &B, &T)) return cli_fail();
  cslim_model *m;
  if (cslim_model_open(model_path, &m)) {
    free(ids);
    return cli_fail();
  }
  const cslim_config *c = cslim_model_config(m);
  fwd_out o = {B, T, c->text.num_layers, c->text.hidden_size, c->text.vocab_size, NULL, NULL};
  int *lens = malloc((size_t)B * sizeof(int));
  for (int b = 0; b < B; b++) lens[b] = T;
  cslim_acts *a = NULL;
  cslim_status rc = cslim_acts_embed(m, ids, lens, B, &a);
  size_t n = (size_t)B * (size_t)T * (size_t)o.H;
  if (!rc && hidden) {
    o.hidden = calloc((size_t)o.L + 1, sizeof(float *));
    for (int i = 0; i <= o.L && !rc; i++)
      if (!(o.hidden[i] = malloc(n * sizeof(float)))) rc = cslim_error(CSLIM_ERR_NOMEM, "out of memory");
  }
  if (!rc) rc = cslim_model_forward(m, a, o.hidden, NULL);
  if (!rc) {
    o.logits = malloc((size_t)B * (size_t)T * (size_t)o.V * sizeof(float));
    rc = o.logits ? cslim_model_logits(m, o.hidden ? o.hidden[o.L] : a->h, B * T, o.logits)
                  : cslim_error(CSLIM_ERR_NOMEM, "out of memory for logits");
  }
  if (!rc) rc = write_outputs(output, &o);
  int ret = rc ? cli_fail() : CLI_EXIT_OK;
  if (!rc)
    CSLIM_INFO("wrote %s: logits [%d, %d, %d]%s; peak RSS %.0f MB", output, B, T, o.V,
               hidden ? " and hidden states" : "", (double)cslim_peak_rss() / 1e6);
  if (!rc) CSLIM_INFO("%.2f s, %.1f MB of weights read", cslim_now() - t0,
                      (double)cslim_st_bytes_read(cslim_model_checkpoint(m)) / 1e6);
  if (o.hidden)
    for (int i = 0; i <= o.L; i++) free(o.hidden[i]);
  free(o.hidden);
  free(o.logits);
  free(lens);
  free(ids);
  cslim_acts_free(a);
  cslim_model_close(m);
  return ret;
}
