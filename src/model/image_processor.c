/* The Qwen2-VL / Qwen3-VL image processor: smart_resize, bicubic resize,
 * rescale + normalise (fused as the torchvision backend does), temporal
 * duplication and the merge-block patch order of `pixel_values`. */
#include "cslim/config.h"
#include "cslim/image.h"
#include "io/json_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Qwen2VLImageProcessor's class defaults */
static void processor_defaults(cslim_image_processor *p) {
  memset(p, 0, sizeof *p);
  p->patch_size = 14;
  p->temporal_patch_size = 2;
  p->merge_size = 2;
  p->min_pixels = 56 * 56;
  p->max_pixels = 28 * 28 * 1280;
  p->do_resize = p->do_rescale = p->do_normalize = 1;
  p->rescale_factor = 1.0 / 255.0;
  /* OPENAI_CLIP_MEAN / STD */
  const float mean[3] = {0.48145466f, 0.4578275f, 0.40821073f}, std[3] = {0.26862954f, 0.26130258f, 0.27577711f};
  memcpy(p->mean, mean, sizeof mean);
  memcpy(p->std, std, sizeof std);
}

static cslim_status get_int(const cJSON *o, const char *key, const char *file, int64_t lo, int64_t hi,
                            int64_t *v) {
  const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);
  if (!it || cJSON_IsNull(it)) return CSLIM_OK;
  if (cslim_json_as_int(it, lo, hi, v) != 0)
    return cslim_error(CSLIM_ERR_FORMAT, "%s: '%s' must be an integer in [%lld, %lld]", file, key, (long long)lo,
                       (long long)hi);
  return CSLIM_OK;
}

static cslim_status get_bool(const cJSON *o, const char *key, const char *file, int *v) {
  const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);
  if (!it || cJSON_IsNull(it)) return CSLIM_OK;
  if (!cJSON_IsBool(it)) return cslim_error(CSLIM_ERR_FORMAT, "%s: '%s' must be true or false", file, key);
  *v = cJSON_IsTrue(it);
  return CSLIM_OK;
}

static cslim_status get_triple(const cJSON *o, const char *key, const char *file, float v[3]) {
  const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);
  if (!it || cJSON_IsNull(it)) return CSLIM_OK;
  if (cJSON_IsNumber(it)) {
    v[0] = v[1] = v[2] = (float)it->valuedouble;
    return CSLIM_OK;
  }
  if (!cJSON_IsArray(it) || cJSON_GetArraySize(it) != 3)
    return cslim_error(CSLIM_ERR_FORMAT, "%s: '%s' must be a list of 3 numbers", file, key);
  for (int c = 0; c < 3; c++) {
    const cJSON *e = cJSON_GetArrayItem(it, c);
    if (!cJSON_IsNumber(e)) return cslim_error(CSLIM_ERR_FORMAT, "%s: '%s' must be a list of 3 numbers", file, key);
    v[c] = (float)e->valuedouble;
  }
  return CSLIM_OK;
}

cslim_status cslim_image_processor_load(const char *model_dir, const cslim_vision_config *vision,
                                        cslim_image_processor *p) {
  processor_defaults(p);
  if (vision) {
    p->patch_size = vision->patch_size;
    p->temporal_patch_size = vision->temporal_patch_size;
    p->merge_size = vision->spatial_merge_size;
  }
  char file[4096];
  snprintf(file, sizeof file, "%s/preprocessor_config.json", model_dir);
  FILE *f = fopen(file, "rb");
  if (!f) {
    CSLIM_DEBUG("%s: not found; using the processor defaults", file);
    return CSLIM_OK;
  }
  fclose(f);
  cJSON *root;
  cslim_status rc = cslim_json_load_file(file, &root);
  if (rc) return rc;
  if (!cJSON_IsObject(root)) {
    cJSON_Delete(root);
    return cslim_error(CSLIM_ERR_FORMAT, "%s: not a JSON object", file);
  }
  int64_t ps = p->patch_size, tps = p->temporal_patch_size, ms = p->merge_size;
  int64_t minp = p->min_pixels, maxp = p->max_pixels;
  const int64_t big = (int64_t)1 << 40;
  if (!rc) rc = get_int(root, "patch_size", file, 1, 1024, &ps);
  if (!rc) rc = get_int(root, "temporal_patch_size", file, 1, 64, &tps);
  if (!rc) rc = get_int(root, "merge_size", file, 1, 64, &ms);
  /* older files: min_pixels / max_pixels; current: size.shortest_edge / longest_edge */
  if (!rc) rc = get_int(root, "min_pixels", file, 0, big, &minp);
  if (!rc) rc = get_int(root, "max_pixels", file, 1, big, &maxp);
  const cJSON *size = cJSON_GetObjectItemCaseSensitive(root, "size");
  if (!rc && cJSON_IsObject(size)) {
    rc = get_int(size, "shortest_edge", file, 0, big, &minp);
    if (!rc) rc = get_int(size, "longest_edge", file, 1, big, &maxp);
  }
  if (!rc) rc = get_bool(root, "do_resize", file, &p->do_resize);
  if (!rc) rc = get_bool(root, "do_rescale", file, &p->do_rescale);
  if (!rc) rc = get_bool(root, "do_normalize", file, &p->do_normalize);
  const cJSON *rf = cJSON_GetObjectItemCaseSensitive(root, "rescale_factor");
  if (!rc && rf && !cJSON_IsNull(rf)) {
    if (!cJSON_IsNumber(rf) || !(rf->valuedouble > 0))
      rc = cslim_error(CSLIM_ERR_FORMAT, "%s: 'rescale_factor' must be a positive number", file);
    else
      p->rescale_factor = rf->valuedouble;
  }
  if (!rc) rc = get_triple(root, "image_mean", file, p->mean);
  if (!rc) rc = get_triple(root, "image_std", file, p->std);
  for (int c = 0; c < 3 && !rc; c++)
    if (!(p->std[c] != 0.0f)) rc = cslim_error(CSLIM_ERR_FORMAT, "%s: 'image_std' must not be zero", file);
  if (!rc && minp > maxp)
    rc = cslim_error(CSLIM_ERR_FORMAT, "%s: minimum pixels %lld exceed the maximum %lld", file, (long long)minp,
                     (long long)maxp);
  if (!rc && vision && (ps != vision->patch_size || tps != vision->temporal_patch_size ||
                        ms != vision->spatial_merge_size))
    rc = cslim_error(CSLIM_ERR_FORMAT,
                     "%s: patch geometry %lld/%lld/%lld disagrees with config.json's vision_config %d/%d/%d", file,
                     (long long)ps, (long long)tps, (long long)ms, vision->patch_size, vision->temporal_patch_size,
                     vision->spatial_merge_size);
  cJSON_Delete(root);
  if (rc) return rc;
  p->patch_size = (int)ps;
  p->temporal_patch_size = (int)tps;
  p->merge_size = (int)ms;
  p->min_pixels = minp;
  p->max_pixels = maxp;
  return CSLIM_OK;
}

cslim_status cslim_smart_resize(const cslim_image_processor *p, int height, int width, int *out_h, int *out_w) {
  if (height <= 0 || width <= 0) return cslim_error(CSLIM_ERR_INVALID, "image size %dx%d", width, height);
  const double factor = (double)p->patch_size * p->merge_size;
  const double H = height, W = width;
  double ratio = (H > W ? H : W) / (H < W ? H : W);
  if (ratio > 200)
    return cslim_error(CSLIM_ERR_UNSUPPORTED, "image %dx%d: aspect ratio %.1f is beyond the limit of 200", width,
                       height, ratio);
  /* Python's round(): nearbyint in the default mode rounds halves to even */
  double h = nearbyint(H / factor) * factor, w = nearbyint(W / factor) * factor;
  if (h * w > (double)p->max_pixels) {
    double beta = sqrt(H * W / (double)p->max_pixels);
    h = fmax(factor, floor(H / beta / factor) * factor);
    w = fmax(factor, floor(W / beta / factor) * factor);
  } else if (h * w < (double)p->min_pixels) {
    double beta = sqrt((double)p->min_pixels / (H * W));
    h = ceil(H * beta / factor) * factor;
    w = ceil(W * beta / factor) * factor;
  }
  if (h < factor || w < factor || h > CSLIM_IMAGE_MAX_SIDE || w > CSLIM_IMAGE_MAX_SIDE)
    return cslim_error(CSLIM_ERR_UNSUPPORTED, "image %dx%d resizes to %.0fx%.0f, outside the processor's limits",
                       width, height, w, h);
  *out_h = (int)h;
  *out_w = (int)w;
  return CSLIM_OK;
}

int cslim_image_patch_dim(const cslim_image_processor *p) {
  return 3 * p->temporal_patch_size * p->patch_size * p->patch_size;
}

int cslim_image_tokens(const cslim_image_processor *p, const int grid_thw[3]) {
  return grid_thw[0] * grid_thw[1] * grid_thw[2] / (p->merge_size * p->merge_size);
}

cslim_status cslim_image_to_patches(const cslim_image_processor *p, const cslim_image *img, const char *label,
                                    float **rows_out, int grid_thw[3]) {
  *rows_out = NULL;
  int h = img->height, w = img->width;
  cslim_status rc;
  if (p->do_resize) {
    if ((rc = cslim_smart_resize(p, img->height, img->width, &h, &w)))
      return cslim_error_context("%s", label);
  }
  const int P = p->patch_size, M = p->merge_size, TP = p->temporal_patch_size;
  if (h % (P * M) || w % (P * M))
    return cslim_error(CSLIM_ERR_INVALID, "%s: %dx%d is not a multiple of %d (set do_resize)", label, w, h, P * M);
  cslim_image resized = {0};
  const cslim_image *src = img;
  if (h != img->height || w != img->width) {
    if ((rc = cslim_image_resize(img, w, h, &resized))) return rc;
    src = &resized;
  }
  /* v = (float(u8) - mean') / std' with mean' = mean / rescale, std' = std / rescale
   * (float32), as the torchvision backend fuses rescale into normalise */
  float mean[3], std[3], scale = 1.0f;
  for (int c = 0; c < 3; c++) {
    mean[c] = 0.0f;
    std[c] = 1.0f;
    if (p->do_normalize) {
      float inv = (float)(1.0 / p->rescale_factor);
      mean[c] = p->do_rescale ? p->mean[c] * inv : p->mean[c];
      std[c] = p->do_rescale ? p->std[c] * inv : p->std[c];
    }
  }
  if (p->do_rescale && !p->do_normalize) scale = (float)p->rescale_factor;
  const int gh = h / P, gw = w / P, dim = cslim_image_patch_dim(p);
  const size_t n_rows = (size_t)gh * gw;
  float *rows = malloc(n_rows * (size_t)dim * sizeof(float));
  if (!rows) {
    cslim_image_free(&resized);
    return cslim_error(CSLIM_ERR_NOMEM, "%s: out of memory for %zu patches", label, n_rows);
  }
  const int do_norm = p->do_normalize;
  /* row = ((bh * gw/M + bw) * M + mh) * M + mw ; column = ((c * TP + kt) * P + ky) * P + kx */
#pragma omp parallel for schedule(static) if (n_rows > 256)
  for (size_t r = 0; r < n_rows; r++) {
    int mw = (int)(r % M), mh = (int)(r / M % M), bw = (int)(r / (M * M) % (gw / M)),
        bh = (int)(r / (M * M) / (gw / M));
    int y0 = (bh * M + mh) * P, x0 = (bw * M + mw) * P;
    float *o = rows + r * (size_t)dim;
    for (int c = 0; c < 3; c++)
      for (int ky = 0; ky < P; ky++) {
        float *d = o + ((size_t)c * TP * P + ky) * P;
        const uint8_t *s = src->rgb + (((size_t)(y0 + ky) * w) + x0) * 3 + c;
        for (int kx = 0; kx < P; kx++) {
          float v = (float)s[3 * kx];
          d[kx] = do_norm ? (v - mean[c]) / std[c] : v * scale;
        }
        for (int kt = 1; kt < TP; kt++) memcpy(d + (size_t)kt * P * P, d, (size_t)P * sizeof(float));
      }
  }
  cslim_image_free(&resized);
  grid_thw[0] = 1; /* one picture, duplicated to temporal_patch_size frames */
  grid_thw[1] = gh;
  grid_thw[2] = gw;
  *rows_out = rows;
  return CSLIM_OK;
}
