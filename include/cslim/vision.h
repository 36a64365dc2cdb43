/* Qwen3-VL's vision tower and the multimodal text input.
 *
 * Images become patch rows (cslim/image.h), the vision tower turns them into
 * one embedding per merged 2x2 block plus the deepstack features, and
 * cslim_acts_embed_vision() builds the text model's input: the image
 * embeddings at the <|image_pad|> positions, interleaved-MRoPE positions
 * (transformers' get_rope_index) and the deepstack features that the first
 * decoder layers add at those positions (cslim_layer_forward).
 *
 * The tower is streamed like the text model: one block's weights are
 * converted to float32 when it runs and freed after. */
#ifndef CSLIM_VISION_H
#define CSLIM_VISION_H

#include "cslim/chat.h"
#include "cslim/image.h"
#include "cslim/model.h"
#include "cslim/tokenizer.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Patch rows of one or more images, in order. */
typedef struct cslim_vision_input {
  int n_images;
  int (*grid)[3];        /* [n_images]: t, h, w in patches */
  int n_patches;         /* sum of t*h*w */
  int patch_dim;         /* 3 * temporal * patch^2 */
  float *pixel_values;   /* [n_patches, patch_dim] */
} cslim_vision_input;

/* Append an image, run through the processor. */
cslim_status cslim_vision_input_add_image(cslim_vision_input *in, const cslim_image_processor *p,
                                          const cslim_image *img, const char *label);
/* Append patch rows produced elsewhere (e.g. a reference file): grid[n][3]. */
cslim_status cslim_vision_input_add_rows(cslim_vision_input *in, const float *rows, int n_rows, int patch_dim,
                                         const int (*grid)[3], int n_images);
void cslim_vision_input_free(cslim_vision_input *in);

typedef struct cslim_vision_output {
  int n_tokens;          /* merged tokens (t*h*w / merge^2 per image) */
  int hidden;            /* out_hidden_size = the text model's hidden size */
  float *embeds;         /* [n_tokens, hidden] (pooler_output) */
  int n_deepstack;
  float **deepstack;     /* n_deepstack x [n_tokens, hidden] */
  int n_patches, vision_hidden;
  float *last_hidden;    /* [n_patches, vision_hidden] (blocks' output before the merger), when asked for */
} cslim_vision_output;

/* Run the vision tower (hooks see the input of every vision Linear, kinds
 * CSLIM_IN_VIS_*, layer = block index, -1 for the main merger and
 * 1000 + k for deepstack merger k). */
cslim_status cslim_vision_forward(cslim_model *m, const cslim_vision_input *in, const cslim_hooks *hooks,
                                  int keep_last_hidden, cslim_vision_output *out);
void cslim_vision_output_free(cslim_vision_output *o);

/* Round the patch-embedding inputs to TF32 (10-bit mantissa, to nearest
 * even) before the Conv3d, as PyTorch on an Ampere-or-newer GPU does by
 * default (torch.backends.cudnn.allow_tf32 = True, unlike matmuls): this
 * reproduces vision outputs computed that way — the fixtures' references —
 * to ~3e-6 instead of ~1.5e-4. Off by default: exact float32. */
void cslim_vision_set_tf32_conv(cslim_model *m, int on);

/* Position ids (rows T, H, W, each `stride` apart) of one sequence with
 * images, as transformers' get_rope_index: text advances all three axes by
 * one; each run of <|image_pad|> tokens is the next image of `grid` (from
 * *next_image on) laid out on its merged (t, h, w) grid, after which the
 * position jumps by max(t, h, w). rope_delta = max position + 1 - n. */
cslim_status cslim_mrope_positions(const cslim_config *c, const int32_t *ids, int n, const int (*grid)[3],
                                   int n_images, int *next_image, int32_t *pos, size_t stride, int *rope_delta);

/* Embed sequences whose <|image_pad|> tokens take the rows of `vis` (in
 * order), with MRoPE positions and the deepstack features (moved out of
 * `vis`). The number of <|image_pad|> tokens must equal vis->n_tokens. */
cslim_status cslim_acts_embed_vision(cslim_model *m, const int32_t *ids, const int *lens, int n_seqs,
                                     const cslim_vision_input *in, cslim_vision_output *vis, cslim_acts **out);

/* What turns images and text into a Qwen3-VL prompt: the model's image
 * processor and chat style. `cfg` is the model's config, or NULL to read
 * DIR/config.json; a model without a vision tower is an error. */
typedef struct cslim_prompter {
  cslim_image_processor proc;
  cslim_chat_style style;
} cslim_prompter;
cslim_status cslim_prompter_load(const char *model_dir, const cslim_config *cfg, cslim_prompter *out);

/* A user turn of images then text, as transformers' processor and the chat
 * template make it: each image loaded and run through the processor
 * (appended to *in), the template rendered with each image's <|image_pad|>
 * count (and a system turn when not NULL), and tokenized (appended to
 * *ids). Errors name the image file. */
typedef struct cslim_vision_prompt {
  const char *const *images;
  int n_images;
  const char *text;
  const char *system;
  int add_generation_prompt;
  int enable_thinking;
} cslim_vision_prompt;
cslim_status cslim_vision_prompt_build(cslim_tokenizer *tok, const cslim_prompter *pr, const cslim_vision_prompt *vp,
                                       cslim_ids *ids, cslim_vision_input *in);

#ifdef __cplusplus
}
#endif
#endif
