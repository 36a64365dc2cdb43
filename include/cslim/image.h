/* Images: decoding (PNG, JPEG), the resampler and the Qwen2-VL / Qwen3-VL
 * image processor that turns a picture into `pixel_values` rows.
 *
 * Decoding follows what transformers' load_image() does with a file: the
 * EXIF orientation is applied and the picture converted to RGB (grayscale
 * replicated, palette expanded, alpha dropped; 16-bit samples keep their
 * high byte). The resampler is the antialiased bicubic (a = -0.5) of
 * PyTorch's uint8 path — the fixed-point Pillow-SIMD port that torchvision's
 * resize runs for the reference processor — and gives the same bytes. */
#ifndef CSLIM_IMAGE_H
#define CSLIM_IMAGE_H

#include "cslim/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Decompression-bomb guard, as PIL's (2 x 89,478,485 pixels), and the
 * largest side either format may declare. */
#define CSLIM_IMAGE_MAX_PIXELS 178956970LL
#define CSLIM_IMAGE_MAX_SIDE 65535

typedef struct cslim_image {
  int width, height;
  uint8_t *rgb; /* [height][width][3] */
} cslim_image;

/* Decode a PNG or JPEG file (chosen by its signature, not its name). */
cslim_status cslim_image_load(const char *path, cslim_image *out);
/* Decode from memory; `name` labels errors. */
cslim_status cslim_image_decode(const void *data, size_t len, const char *name, cslim_image *out);
void cslim_image_free(cslim_image *img);

/* Resize with antialiased bicubic (torch uint8 / Pillow-SIMD fixed point):
 * horizontal pass then vertical, uint8 in between; a pass whose size does not
 * change is skipped. */
cslim_status cslim_image_resize(const cslim_image *in, int width, int height, cslim_image *out);

/* ---- the Qwen2-VL / Qwen3-VL image processor ------------------------------------------- */

typedef struct cslim_image_processor {
  int patch_size;           /* 16 */
  int temporal_patch_size;  /* 2 */
  int merge_size;           /* 2 */
  int64_t min_pixels, max_pixels; /* size.shortest_edge / size.longest_edge */
  int do_resize, do_rescale, do_normalize;
  double rescale_factor;    /* 1/255 */
  float mean[3], std[3];
} cslim_image_processor;

/* Read DIR/preprocessor_config.json (absent: Qwen2-VL's defaults, with the
 * patch geometry from vision_config when `vision` is given). Errors name
 * the file and key. */
struct cslim_vision_config;
cslim_status cslim_image_processor_load(const char *model_dir, const struct cslim_vision_config *vision,
                                        cslim_image_processor *out);

/* smart_resize: the size (multiples of patch_size * merge_size, pixels within
 * [min_pixels, max_pixels], aspect kept) an image of height x width becomes.
 * Aspect ratios beyond 200 are an error. */
cslim_status cslim_smart_resize(const cslim_image_processor *p, int height, int width, int *out_h,
                                int *out_w);

/* Resize, rescale and normalise an image, duplicate it to temporal_patch_size
 * frames and flatten it into patch rows in merge-block order:
 * rows [grid_t * grid_h * grid_w] x [3 * temporal * patch * patch].
 * `label` names the image in errors. */
cslim_status cslim_image_to_patches(const cslim_image_processor *p, const cslim_image *img, const char *label,
                                    float **rows, int grid_thw[3]);
/* Width of one patch row: 3 * temporal_patch_size * patch_size^2. */
int cslim_image_patch_dim(const cslim_image_processor *p);
/* <|image_pad|> tokens for an image of this grid: t*h*w / merge^2. */
int cslim_image_tokens(const cslim_image_processor *p, const int grid_thw[3]);

#ifdef __cplusplus
}
#endif
#endif
