/* The text model's input for prompts with images: image embeddings at the
 * <|image_pad|> rows, interleaved-MRoPE position ids (get_rope_index) and
 * the deepstack features handed to the first decoder layers. */
#include "cslim/vision.h"
#include "model/model_internal.h"

#include <stdlib.h>
#include <string.h>

cslim_status cslim_mrope_positions(const cslim_config *c, const int32_t *ids, int n, const int (*grid)[3],
                                   int n_images, int *next_image, int32_t *pos, size_t stride, int *rope_delta) {
  const int M = c->vision.spatial_merge_size > 0 ? c->vision.spatial_merge_size : 1;
  int32_t st = 0, maxp = -1;
  for (int i = 0; i < n;) {
    if (ids[i] != c->image_token_id) {
      pos[i] = pos[stride + i] = pos[2 * stride + i] = st;
      if (st > maxp) maxp = st;
      st++;
      i++;
      continue;
    }
    int img = *next_image;
    if (img >= n_images)
      return cslim_error(CSLIM_ERR_INVALID, "<|image_pad|> at position %d has no image left (%d given)", i, n_images);
    const int t = grid[img][0], gh = grid[img][1] / M, gw = grid[img][2] / M;
    const int cnt = t * gh * gw;
    int run = 0;
    while (i + run < n && ids[i + run] == c->image_token_id) run++;
    if (run < cnt || (run > cnt && img + 1 >= n_images))
      return cslim_error(CSLIM_ERR_INVALID,
                         "image %d needs %d <|image_pad|> tokens (grid %dx%dx%d merged by %d) but the prompt has %d at "
                         "position %d",
                         img, cnt, t, grid[img][1], grid[img][2], M, run, i);
    for (int k = 0; k < cnt; k++) {
      int ti = k / (gh * gw), r = k / gw % gh, cc = k % gw;
      pos[i + k] = st + ti;
      pos[stride + i + k] = st + r;
      pos[2 * stride + i + k] = st + cc;
    }
    int span = t > gh ? t : gh;
    span = span > gw ? span : gw;
    if (st + span - 1 > maxp) maxp = st + span - 1;
    st += span;
    i += cnt;
    (*next_image)++;
  }
  if (rope_delta) *rope_delta = maxp + 1 - n;
  return CSLIM_OK;
}

cslim_status cslim_acts_embed_vision(cslim_model *m, const int32_t *ids, const int *lens, int n_seqs,
                                     const cslim_vision_input *in, cslim_vision_output *vis, cslim_acts **out) {
  *out = NULL;
  const cslim_config *c = &m->cfg;
  if (!c->has_vision || c->image_token_id < 0)
    return cslim_error(CSLIM_ERR_INVALID, "%s: %s takes no images", m->path, c->architecture);
  cslim_acts *a;
  cslim_status rc = cslim_acts_embed(m, ids, lens, n_seqs, &a);
  if (rc) return rc;
  const size_t H = (size_t)a->hidden;
  int n_vis = 0;
  for (int r = 0; r < a->total; r++) n_vis += ids[r] == c->image_token_id;
  if (n_vis != vis->n_tokens || (size_t)vis->hidden != H) {
    cslim_acts_free(a);
    return cslim_error(CSLIM_ERR_INVALID, "the prompt has %d <|image_pad|> tokens but the images give %d embeddings",
                       n_vis, vis->n_tokens);
  }
  a->visual = calloc((size_t)a->total, 1);
  if (!a->visual) {
    cslim_acts_free(a);
    return cslim_error(CSLIM_ERR_NOMEM, "out of memory");
  }
  int k = 0;
  for (int r = 0; r < a->total; r++)
    if (ids[r] == c->image_token_id) {
      a->visual[r] = 1;
      memcpy(a->h + (size_t)r * H, vis->embeds + (size_t)k * H, H * sizeof(float));
      k++;
    }
  int next = 0;
  for (int s = 0; s < n_seqs && !rc; s++) {
    int o = a->seq_start[s];
    rc = cslim_mrope_positions(c, ids + o, lens[s], (const int(*)[3])in->grid, in->n_images, &next, a->pos + o,
                               (size_t)a->total, NULL);
  }
  if (!rc && next != in->n_images)
    rc = cslim_error(CSLIM_ERR_INVALID, "%d images given but the prompt places %d", in->n_images, next);
  if (rc) {
    cslim_acts_free(a);
    return rc;
  }
  /* the deepstack features move to the activations */
  a->n_deepstack = vis->n_deepstack;
  a->deepstack = vis->deepstack;
  vis->deepstack = NULL;
  vis->n_deepstack = 0;
  *out = a;
  return CSLIM_OK;
}

cslim_status cslim_prompter_load(const char *model_dir, const cslim_config *cfg, cslim_prompter *out) {
  cslim_config own;
  cslim_status rc = CSLIM_OK;
  if (!cfg) {
    if ((rc = cslim_config_load(model_dir, &own))) return rc;
    cfg = &own;
  }
  if (!cfg->has_vision)
    return cslim_error(CSLIM_ERR_INVALID, "%s (%s) takes no images", model_dir, cfg->architecture);
  rc = cslim_image_processor_load(model_dir, &cfg->vision, &out->proc);
  if (!rc) rc = cslim_chat_detect(model_dir, &out->style);
  return rc;
}

cslim_status cslim_vision_prompt_build(cslim_tokenizer *tok, const cslim_prompter *pr, const cslim_vision_prompt *vp,
                                       cslim_ids *ids, cslim_vision_input *in) {
  const cslim_image_processor *p = &pr->proc;
  int *pads = calloc((size_t)(vp->n_images > 0 ? vp->n_images : 1), sizeof(int));
  if (!pads) return cslim_error(CSLIM_ERR_NOMEM, "out of memory");
  cslim_status rc = CSLIM_OK;
  for (int i = 0; i < vp->n_images && !rc; i++) {
    cslim_image img;
    if ((rc = cslim_image_load(vp->images[i], &img))) break;
    rc = cslim_vision_input_add_image(in, p, &img, vp->images[i]);
    cslim_image_free(&img);
    if (!rc) pads[i] = cslim_image_tokens(p, in->grid[in->n_images - 1]);
  }
  char *text = NULL;
  if (!rc) {
    cslim_chat c = {vp->system, vp->text ? vp->text : "", vp->n_images, pads, vp->add_generation_prompt,
                    vp->enable_thinking};
    rc = cslim_chat_render(pr->style, &c, &text);
  }
  if (!rc) rc = cslim_tokenizer_encode(tok, text, strlen(text), ids);
  free(text);
  free(pads);
  return rc;
}
