/* Calibration datasets in the formats users bring (msModelSlim's):
 *   FILE.json   a JSON array of strings (or of {"inputs_pretokenized"|"text": S})
 *   FILE.jsonl  one object per line with "inputs_pretokenized" (or "text")
 *   DIR/        images (.jpg .jpeg .png), each paired with a default text
 *               ("Describe this image in detail."), or, when DIR holds one
 *               .json/.jsonl file, that file's {"image": PATH, "text": S}
 *               entries (PATH relative to DIR; "image" may be omitted).
 * Errors name the file and the line (or array index). */
#ifndef CSLIM_DATASET_H
#define CSLIM_DATASET_H

#include "cslim/chat.h"
#include "cslim/common.h"
#include "cslim/tokenizer.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CSLIM_DEFAULT_IMAGE_TEXT "Describe this image in detail."

typedef struct cslim_sample {
  char *text;  /* the prompt text */
  char *image; /* image path, or NULL for a text-only sample */
} cslim_sample;

typedef struct cslim_dataset {
  cslim_sample *samples;
  size_t n;
  int n_images;  /* samples that carry an image */
  char *source;  /* the path loaded */
} cslim_dataset;

typedef struct cslim_dataset_opts {
  size_t max_samples;       /* 0 = all */
  const char *default_text; /* for bare image folders; NULL = CSLIM_DEFAULT_IMAGE_TEXT */
} cslim_dataset_opts;

cslim_status cslim_dataset_load(const char *path, const cslim_dataset_opts *opts, cslim_dataset **out);
void cslim_dataset_free(cslim_dataset *ds);

/* A batch of token ids, right-padded: ids[b * seq + t], lengths[b] real tokens. */
typedef struct cslim_batch {
  int batch, seq;
  int32_t *ids;
  int32_t *lengths;
  size_t first_sample; /* index of the batch's first sample in the dataset */
} cslim_batch;

/* Number of <|image_pad|> tokens for an image (filled in by the image
 * processor); returns a status. */
typedef cslim_status (*cslim_image_tokens_fn)(void *ctx, const char *image_path, int *n_tokens);

typedef struct cslim_batch_opts {
  size_t max_tokens;     /* per sample; longer text samples are truncated; 0 = no limit */
  int batch_size;        /* >= 1 */
  int32_t pad_id;        /* right padding */
  int chat;              /* wrap each sample in the chat template (user turn + generation prompt) */
  cslim_chat_style style;
  cslim_image_tokens_fn image_tokens; /* required when the dataset has images */
  void *image_ctx;
} cslim_batch_opts;

/* Tokenize every sample (each separately, as msModelSlim does) and group them
 * into batches of batch_size in dataset order. Image samples are always
 * rendered with the chat template (image before text). */
cslim_status cslim_dataset_tokenize(const cslim_dataset *ds, cslim_tokenizer *tok,
                                    const cslim_batch_opts *opts, cslim_batch **batches,
                                    size_t *n_batches);
void cslim_batches_free(cslim_batch *b, size_t n);

#ifdef __cplusplus
}
#endif
#endif
