/* cslim forward: the float32 forward pass on input_ids from a safetensors
 * file; writes logits (and hidden states) to another. */
#include "cli/args.h"
#include "cli/commands.h"
#include "cslim/cslim.h"
#include "cslim/model.h"
#include "cslim/vision.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The tensors to write, in order. */
typedef struct out_tensor {
  char name[64];
  cslim_dtype dt;
  int ndim;
  int64_t shape[3];
  const void *data;
} out_tensor;

typedef struct out_list {
  out_tensor t[96];
  int n;
} out_list;

static void out_add(out_list *o, const char *name, cslim_dtype dt, int ndim, int64_t a, int64_t b, int64_t c,
                    const void *data) {
  if (o->n == (int)(sizeof o->t / sizeof o->t[0])) return;
  out_tensor *t = &o->t[o->n++];
  snprintf(t->name, sizeof t->name, "%s", name);
  t->dt = dt;
  t->ndim = ndim;
  t->shape[0] = a;
  t->shape[1] = b;
  t->shape[2] = c;
  t->data = data;
}

static cslim_status write_outputs(const char *path, const out_list *o) {
  cslim_staging *sg;
  cslim_status rc = cslim_staging_open_file(path, &sg);
  if (rc) return rc;
  cslim_st_writer *w;
  rc = cslim_st_writer_create(cslim_staging_path(sg), "out", 0, &w);
  for (int i = 0; i < o->n && !rc; i++) rc = cslim_st_writer_declare(w, o->t[i].name, o->t[i].dt, o->t[i].ndim, o->t[i].shape);
  if (!rc) rc = cslim_st_writer_begin(w);
  for (int i = 0; i < o->n && !rc; i++) rc = cslim_st_writer_put(w, o->t[i].name, o->t[i].data);
  if (!rc) rc = cslim_st_writer_finish(w);
  cslim_st_writer_free(w);
  if (rc) {
    cslim_staging_abort(sg);
    return rc;
  }
  return cslim_staging_commit_file(sg, "out.safetensors");
}

/* Element i of an int64 or int32 tensor (the caller checked the dtype). */
static int64_t int_at(const cslim_tensor *t, int64_t i) {
  if (t->dtype == CSLIM_I64) {
    int64_t v;
    memcpy(&v, (const char *)t->data + 8 * i, 8);
    return v;
  }
  int32_t v;
  memcpy(&v, (const char *)t->data + 4 * i, 4);
  return v;
}

/* pixel_values [N, D] float and image_grid_thw [n, 3] int, when the inputs
 * file has them (both or neither). */
static cslim_status read_images(cslim_st *st, const char *path, cslim_vision_input *in) {
  const cslim_tensor *pv = cslim_st_find(st, "pixel_values"), *g = cslim_st_find(st, "image_grid_thw");
  if (!pv && !g) return CSLIM_OK;
  if (!pv || !g)
    return cslim_error(CSLIM_ERR_FORMAT, "%s: 'pixel_values' and 'image_grid_thw' come together", path);
  if (pv->ndim != 2 || !cslim_dtype_is_float(pv->dtype))
    return cslim_error(CSLIM_ERR_FORMAT, "%s: pixel_values must be a float [patches, dim] tensor", path);
  if ((g->dtype != CSLIM_I64 && g->dtype != CSLIM_I32) || g->ndim != 2 || g->shape[1] != 3)
    return cslim_error(CSLIM_ERR_FORMAT, "%s: image_grid_thw must be an int64 [images, 3] tensor", path);
  int n = (int)g->shape[0];
  int (*grid)[3] = malloc((size_t)(n ? n : 1) * sizeof *grid);
  float *rows = malloc((size_t)pv->numel * sizeof(float));
  cslim_status rc = grid && rows ? CSLIM_OK : cslim_error(CSLIM_ERR_NOMEM, "out of memory");
  for (int i = 0; i < n && !rc; i++)
    for (int k = 0; k < 3; k++) {
      int64_t v = int_at(g, 3 * i + k);
      if (v <= 0 || v > 65536) rc = cslim_error(CSLIM_ERR_FORMAT, "%s: image_grid_thw[%d] is out of range", path, i);
      grid[i][k] = (int)v;
    }
  if (!rc) {
    cslim_convert_to_f32(pv->dtype, pv->data, rows, (size_t)pv->numel);
    rc = cslim_vision_input_add_rows(in, rows, (int)pv->shape[0], (int)pv->shape[1], (const int(*)[3])grid, n);
    if (rc) cslim_error_context("%s", path);
  }
  free(grid);
  free(rows);
  return rc;
}

/* input_ids as int32: [B, T] or [T] of I64/I32. */
static cslim_status read_ids(cslim_st *st, const char *path, int32_t **ids, int *B, int *T) {
  cslim_status rc = CSLIM_OK;
  const cslim_tensor *t = cslim_st_find(st, "input_ids");
  if (!t) {
    rc = cslim_error(CSLIM_ERR_FORMAT, "%s: no 'input_ids' tensor", path);
  } else if ((t->dtype != CSLIM_I64 && t->dtype != CSLIM_I32) || t->ndim < 1 || t->ndim > 2 || t->numel == 0) {
    rc = cslim_error(CSLIM_ERR_FORMAT, "%s: input_ids must be a non-empty int64/int32 [B, T] tensor", path);
  } else {
    *B = t->ndim == 2 ? (int)t->shape[0] : 1;
    *T = (int)t->shape[t->ndim - 1];
    *ids = malloc((size_t)t->numel * sizeof(int32_t));
    for (int64_t i = 0; i < t->numel; i++) (*ids)[i] = (int32_t)int_at(t, i);
  }
  return rc;
}

int cmd_forward(int argc, char **argv) {
  const char *model_path = NULL, *inputs = NULL, *output = NULL, *prompt = NULL, *system = NULL;
  int hidden = 0, tf32 = 0;
  cli_list images = {0};
  double t0 = cslim_now();
  cli_opt opts[] = {
      {"model_path", CLI_STR, &model_path, "DIR", "model directory", 1, 0},
      {"inputs", CLI_STR, &inputs, "IN",
       "safetensors file with input_ids int64 [B, T] (and, for Qwen3-VL, pixel_values + image_grid_thw)", 0, 0},
      {"image", CLI_LIST, &images, "FILE", "Qwen3-VL: build the input from images (PNG/JPEG) and --prompt", 0, 0},
      {"prompt", CLI_STR, &prompt, "S", "with --image: the user's text after the images", 0, 0},
      {"system", CLI_STR, &system, "S", "with --image: a system turn", 0, 0},
      {"output", CLI_STR, &output, "OUT", "safetensors file to write (logits float32 [B, T, V])", 1, 0},
      {"hidden", CLI_BOOL, &hidden, NULL,
       "also write hidden.0 .. hidden.L [B, T, H] (embeddings, each layer's output, the final-normed output) and, "
       "with images, visual.last_hidden_state / pooler_output / deepstack_features.j",
       0, 0},
      {"tf32_conv", CLI_BOOL, &tf32, NULL,
       "round the patch-embedding inputs to TF32, as PyTorch's default cuDNN convolution on a GPU does", 0, 0},
      CLI_END,
  };
  cli_command cmd = {"forward", "Run the float32 forward pass and write logits.",
                     "cslim forward --model_path DIR (--inputs IN.safetensors | --image FILE... --prompt S) "
                     "--output OUT.safetensors [--hidden]",
                     "Layers are streamed from the checkpoint one at a time. With --image the chat\n"
                     "prompt (a user turn: the images, then --prompt) is built like transformers'\n"
                     "processor and written too (input_ids, pixel_values, image_grid_thw). The\n"
                     "output is written atomically (a temporary file beside OUT, renamed when\n"
                     "complete)."};
  int r = cli_parse(&cmd, opts, argc, argv, NULL, NULL);
  if (r) return r < 0 ? CLI_EXIT_OK : r;
  if (!inputs == !images.n) {
    free(images.v);
    return cli_usage_error(&cmd, "give either --inputs or --image (with --prompt)");
  }
  if (images.n && !prompt) {
    free(images.v);
    return cli_usage_error(&cmd, "--image needs --prompt");
  }

  int32_t *ids = NULL;
  int B = 0, T = 0;
  cslim_vision_input vin = {0};
  cslim_status rc = CSLIM_OK;
  if (inputs) {
    cslim_st *st;
    rc = cslim_st_open(inputs, &st);
    if (!rc) {
      rc = read_ids(st, inputs, &ids, &B, &T);
      if (!rc) rc = read_images(st, inputs, &vin);
      cslim_st_close(st);
    }
  } else {
    cslim_tokenizer *tok = NULL;
    cslim_prompter pr;
    cslim_ids pids = {0};
    rc = cslim_prompter_load(model_path, NULL, &pr);
    if (rc) cslim_error_context("--image");
    if (!rc) rc = cslim_tokenizer_load(model_path, &tok);
    cslim_vision_prompt vp = {images.v, images.n, prompt, system, 1, 1};
    if (!rc) rc = cslim_vision_prompt_build(tok, &pr, &vp, &pids, &vin);
    B = 1;
    T = (int)pids.n;
    ids = pids.v;
    cslim_tokenizer_free(tok);
  }
  free(images.v);
  if (rc) {
    free(ids);
    cslim_vision_input_free(&vin);
    return cli_fail();
  }
  cslim_model *m;
  if (cslim_model_open(model_path, &m)) {
    free(ids);
    cslim_vision_input_free(&vin);
    return cli_fail();
  }
  cslim_vision_set_tf32_conv(m, tf32);
  const cslim_config *c = cslim_model_config(m);
  const int L = c->text.num_layers, H = c->text.hidden_size, V = c->text.vocab_size;
  int *lens = malloc((size_t)B * sizeof(int));
  for (int b = 0; b < B; b++) lens[b] = T;
  cslim_acts *a = NULL;
  cslim_vision_output vo = {0};
  int64_t *ids64 = NULL, *grid64 = NULL;
  float **hid = NULL, *logits = NULL;
  out_list *o = calloc(1, sizeof *o);
  if (!o) rc = cslim_error(CSLIM_ERR_NOMEM, "out of memory");
  if (!rc && vin.n_images) {
    rc = cslim_vision_forward(m, &vin, NULL, hidden, &vo);
    if (!rc) rc = cslim_acts_embed_vision(m, ids, lens, B, &vin, &vo, &a);
  } else if (!rc) {
    rc = cslim_acts_embed(m, ids, lens, B, &a);
  }
  size_t n = (size_t)B * (size_t)T * (size_t)H;
  if (!rc && hidden) {
    hid = calloc((size_t)L + 1, sizeof(float *));
    for (int i = 0; hid && i <= L && !rc; i++)
      if (!(hid[i] = malloc(n * sizeof(float)))) rc = cslim_error(CSLIM_ERR_NOMEM, "out of memory");
    if (!hid) rc = cslim_error(CSLIM_ERR_NOMEM, "out of memory");
  }
  if (!rc) rc = cslim_model_forward(m, a, hid, NULL);
  if (!rc) {
    logits = malloc((size_t)B * (size_t)T * (size_t)V * sizeof(float));
    rc = logits ? cslim_model_logits(m, hid ? hid[L] : a->h, B * T, logits)
                : cslim_error(CSLIM_ERR_NOMEM, "out of memory for logits");
  }
  if (!rc) {
    out_add(o, "logits", CSLIM_F32, 3, B, T, V, logits);
    for (int i = 0; hid && i <= L; i++) {
      char name[32];
      snprintf(name, sizeof name, "hidden.%d", i);
      out_add(o, name, CSLIM_F32, 3, B, T, H, hid[i]);
    }
    if (vin.n_images && hidden) {
      out_add(o, "visual.last_hidden_state", CSLIM_F32, 2, vo.n_patches, vo.vision_hidden, 0, vo.last_hidden);
      out_add(o, "visual.pooler_output", CSLIM_F32, 2, vo.n_tokens, vo.hidden, 0, vo.embeds);
      for (int k = 0; k < a->n_deepstack; k++) {
        char name[48];
        snprintf(name, sizeof name, "visual.deepstack_features.%d", k);
        out_add(o, name, CSLIM_F32, 2, vo.n_tokens, vo.hidden, 0, a->deepstack[k]);
      }
    }
    if (!inputs) { /* what --image built */
      ids64 = malloc((size_t)T * sizeof(int64_t));
      grid64 = malloc((size_t)vin.n_images * 3 * sizeof(int64_t));
      if (!ids64 || !grid64) rc = cslim_error(CSLIM_ERR_NOMEM, "out of memory");
      for (int i = 0; !rc && i < T; i++) ids64[i] = ids[i];
      for (int i = 0; !rc && i < vin.n_images * 3; i++) grid64[i] = vin.grid[i / 3][i % 3];
      out_add(o, "input_ids", CSLIM_I64, 2, 1, T, 0, ids64);
      out_add(o, "pixel_values", CSLIM_F32, 2, vin.n_patches, vin.patch_dim, 0, vin.pixel_values);
      out_add(o, "image_grid_thw", CSLIM_I64, 2, vin.n_images, 3, 0, grid64);
    }
  }
  if (!rc) rc = write_outputs(output, o);
  int ret = rc ? cli_fail() : CLI_EXIT_OK;
  if (!rc)
    CSLIM_INFO("wrote %s: logits [%d, %d, %d]%s; peak RSS %.0f MB", output, B, T, V,
               hidden ? " and hidden states" : "", (double)cslim_peak_rss() / 1e6);
  if (!rc) CSLIM_INFO("%.2f s, %.1f MB of weights read", cslim_now() - t0,
                      (double)cslim_st_bytes_read(cslim_model_checkpoint(m)) / 1e6);
  for (int i = 0; hid && i <= L; i++) free(hid[i]);
  free(hid);
  free(logits);
  free(lens);
  free(ids);
  free(ids64);
  free(grid64);
  free(o);
  cslim_acts_free(a);
  cslim_vision_output_free(&vo);
  cslim_vision_input_free(&vin);
  cslim_model_close(m);
  return ret;
}
