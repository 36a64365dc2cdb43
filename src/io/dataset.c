/* Calibration datasets: loading (json, jsonl, image folders, folder + mapping)
 * and tokenization into right-padded batches. */
#include "cslim/dataset.h"

#include "io/json_util.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

static int ends_with_ci(const char *s, const char *suf) {
  size_t a = strlen(s), b = strlen(suf);
  return a >= b && strcasecmp(s + a - b, suf) == 0;
}

static int is_image_name(const char *n) {
  return ends_with_ci(n, ".jpg") || ends_with_ci(n, ".jpeg") || ends_with_ci(n, ".png");
}

static cslim_status add_sample(cslim_dataset *ds, size_t *cap, const char *text, const char *image) {
  if (ds->n == *cap) {
    size_t c = *cap ? 2 * *cap : 64;
    cslim_sample *s = realloc(ds->samples, c * sizeof *s);
    if (!s) return cslim_error(CSLIM_ERR_NOMEM, "out of memory");
    ds->samples = s;
    *cap = c;
  }
  cslim_sample *s = &ds->samples[ds->n];
  s->text = strdup(text);
  s->image = image ? strdup(image) : NULL;
  if (!s->text || (image && !s->image)) return cslim_error(CSLIM_ERR_NOMEM, "out of memory");
  ds->n++;
  if (image) ds->n_images++;
  return CSLIM_OK;
}

/* The text of one record: a string, or an object's "inputs_pretokenized" / "text". */
static const char *record_text(const cJSON *e) {
  if (cJSON_IsString(e)) return e->valuestring;
  const cJSON *t = cJSON_GetObjectItemCaseSensitive(e, "inputs_pretokenized");
  if (!cJSON_IsString(t)) t = cJSON_GetObjectItemCaseSensitive(e, "text");
  return cJSON_IsString(t) ? t->valuestring : NULL;
}

static char *join_path(const char *dir, const char *name) {
  if (name[0] == '/') return strdup(name);
  size_t n = strlen(dir) + strlen(name) + 2;
  char *p = malloc(n);
  if (p) snprintf(p, n, "%s/%s", dir, name);
  return p;
}

/* One mapping record {image?, text}: image paths are relative to `dir`. */
static cslim_status add_record(cslim_dataset *ds, size_t *cap, const cJSON *e, const char *file,
                               const char *where, const char *dir, int allow_image) {
  const char *text = record_text(e);
  const cJSON *img = cJSON_GetObjectItemCaseSensitive(e, "image");
  if (!text)
    return cslim_error(CSLIM_ERR_FORMAT, "%s:%s: no text (expected a string or an object with "
                       "\"inputs_pretokenized\" or \"text\")", file, where);
  if (img && !allow_image)
    return cslim_error(CSLIM_ERR_FORMAT, "%s:%s: \"image\" entries need an image folder dataset", file,
                       where);
  if (img && !cJSON_IsString(img))
    return cslim_error(CSLIM_ERR_FORMAT, "%s:%s: \"image\" must be a path", file, where);
  if (!img) return add_sample(ds, cap, text, NULL);
  char *p = join_path(dir, img->valuestring);
  if (!p) return cslim_error(CSLIM_ERR_NOMEM, "out of memory");
  cslim_status rc;
  struct stat sb;
  if (stat(p, &sb) != 0 || !S_ISREG(sb.st_mode))
    rc = cslim_error(CSLIM_ERR_IO, "%s:%s: image %s does not exist", file, where, p);
  else
    rc = add_sample(ds, cap, text, p);
  free(p);
  return rc;
}

static cslim_status load_json(cslim_dataset *ds, size_t *cap, const char *file, const char *dir,
                              int allow_image, size_t max) {
  cJSON *root = NULL;
  cslim_status rc = cslim_json_load_file(file, &root);
  if (rc) return rc;
  if (!cJSON_IsArray(root)) {
    cJSON_Delete(root);
    return cslim_error(CSLIM_ERR_FORMAT, "%s: expected a JSON array of samples", file);
  }
  int i = 0;
  for (const cJSON *e = root->child; e && !rc && (!max || ds->n < max); e = e->next, i++) {
    char where[32];
    snprintf(where, sizeof where, "[%d]", i);
    rc = add_record(ds, cap, e, file, where, dir, allow_image);
  }
  cJSON_Delete(root);
  return rc;
}

static cslim_status load_jsonl(cslim_dataset *ds, size_t *cap, const char *file, const char *dir,
                               int allow_image, size_t max) {
  char *text;
  size_t len;
  cslim_status rc = cslim_read_file(file, &text, &len);
  if (rc) return rc;
  int line = 0;
  for (char *p = text; p < text + len && !rc && (!max || ds->n < max);) {
    char *nl = memchr(p, '\n', (size_t)(text + len - p));
    char *end = nl ? nl : text + len;
    line++;
    char *b = p;
    while (b < end && (*b == ' ' || *b == '\t' || *b == '\r')) b++;
    if (b < end) {
      cJSON *o = NULL;
      char where[32];
      snprintf(where, sizeof where, "%d", line);
      char src[4096];
      snprintf(src, sizeof src, "%s:%d", file, line);
      rc = cslim_json_parse(b, (size_t)(end - b), src, &o);
      if (!rc) {
        if (!cJSON_IsObject(o))
          rc = cslim_error(CSLIM_ERR_FORMAT, "%s:%d: expected a JSON object", file, line);
        else
          rc = add_record(ds, cap, o, file, where, dir, allow_image);
      }
      cJSON_Delete(o);
    }
    p = end + 1;
  }
  free(text);
  return rc;
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static cslim_status load_dir(cslim_dataset *ds, size_t *cap, const char *dir, const char *default_text,
                             size_t max) {
  DIR *d = opendir(dir);
  if (!d) return cslim_error(CSLIM_ERR_IO, "%s: cannot open directory", dir);
  char **imgs = NULL, **maps = NULL;
  size_t ni = 0, nm = 0;
  struct dirent *de;
  while ((de = readdir(d))) {
    if (de->d_name[0] == '.') continue;
    if (is_image_name(de->d_name)) {
      imgs = realloc(imgs, (ni + 1) * sizeof *imgs);
      imgs[ni++] = strdup(de->d_name);
    } else if (ends_with_ci(de->d_name, ".json") || ends_with_ci(de->d_name, ".jsonl")) {
      maps = realloc(maps, (nm + 1) * sizeof *maps);
      maps[nm++] = strdup(de->d_name);
    }
  }
  closedir(d);
  cslim_status rc = CSLIM_OK;
  if (nm > 1) {
    rc = cslim_error(CSLIM_ERR_FORMAT, "%s: %zu .json/.jsonl files; an image folder may hold at most one "
                     "{image, text} mapping", dir, nm);
  } else if (nm == 1) {
    char *mp = join_path(dir, maps[0]);
    rc = ends_with_ci(maps[0], ".jsonl") ? load_jsonl(ds, cap, mp, dir, 1, max)
                                         : load_json(ds, cap, mp, dir, 1, max);
    free(mp);
  } else if (ni == 0) {
    rc = cslim_error(CSLIM_ERR_FORMAT, "%s: no images (.jpg, .jpeg, .png) in this folder", dir);
  } else {
    qsort(imgs, ni, sizeof *imgs, cmp_str);
    for (size_t i = 0; i < ni && !rc && (!max || ds->n < max); i++) {
      char *p = join_path(dir, imgs[i]);
      rc = p ? add_sample(ds, cap, default_text, p) : cslim_error(CSLIM_ERR_NOMEM, "out of memory");
      free(p);
    }
  }
  for (size_t i = 0; i < ni; i++) free(imgs[i]);
  for (size_t i = 0; i < nm; i++) free(maps[i]);
  free(imgs);
  free(maps);
  return rc;
}

cslim_status cslim_dataset_load(const char *path, const cslim_dataset_opts *opts, cslim_dataset **out) {
  *out = NULL;
  cslim_dataset_opts o = {0};
  if (opts) o = *opts;
  const char *dt = o.default_text ? o.default_text : CSLIM_DEFAULT_IMAGE_TEXT;
  cslim_dataset *ds = calloc(1, sizeof *ds);
  if (!ds) return cslim_error(CSLIM_ERR_NOMEM, "out of memory");
  ds->source = strdup(path);
  size_t cap = 0;
  struct stat sb;
  cslim_status rc;
  if (stat(path, &sb) != 0) {
    rc = cslim_error(CSLIM_ERR_IO, "%s: calibration data not found", path);
  } else if (S_ISDIR(sb.st_mode)) {
    rc = load_dir(ds, &cap, path, dt, o.max_samples);
  } else {
    char *dir = strdup(path);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = 0; else strcpy(dir, ".");
    if (ends_with_ci(path, ".jsonl"))
      rc = load_jsonl(ds, &cap, path, dir, 0, o.max_samples);
    else if (ends_with_ci(path, ".json"))
      rc = load_json(ds, &cap, path, dir, 0, o.max_samples);
    else
      rc = cslim_error(CSLIM_ERR_INVALID, "%s: calibration data must be a .json or .jsonl file or an "
                       "image folder", path);
    free(dir);
  }
  if (!rc && ds->n == 0) rc = cslim_error(CSLIM_ERR_FORMAT, "%s: no samples", path);
  if (rc) {
    cslim_dataset_free(ds);
    return rc;
  }
  *out = ds;
  return CSLIM_OK;
}

void cslim_dataset_free(cslim_dataset *ds) {
  if (!ds) return;
  for (size_t i = 0; i < ds->n; i++) {
    free(ds->samples[i].text);
    free(ds->samples[i].image);
  }
  free(ds->samples);
  free(ds->source);
  free(ds);
}

/* ---- tokenization and batching ------------------------------------------------------ */

static cslim_status encode_sample(const cslim_sample *s, cslim_tokenizer *tok, const cslim_batch_opts *o,
                                  cslim_ids *ids) {
  cslim_status rc;
  if (!s->image && !o->chat) return cslim_tokenizer_encode(tok, s->text, strlen(s->text), ids);
  int n_img = 0;
  if (s->image) {
    if (!o->image_tokens)
      return cslim_error(CSLIM_ERR_INVALID, "%s: image samples need an image processor", s->image);
    if ((rc = o->image_tokens(o->image_ctx, s->image, &n_img))) return rc;
  }
  cslim_chat c = {0};
  c.user = s->text;
  c.n_images = s->image ? 1 : 0;
  c.image_tokens = &n_img;
  c.add_generation_prompt = 1;
  c.enable_thinking = 1;
  char *prompt;
  if ((rc = cslim_chat_render(o->style, &c, &prompt))) return rc;
  rc = cslim_tokenizer_encode(tok, prompt, strlen(prompt), ids);
  free(prompt);
  return rc;
}

cslim_status cslim_dataset_tokenize(const cslim_dataset *ds, cslim_tokenizer *tok,
                                    const cslim_batch_opts *o, cslim_batch **batches,
                                    size_t *n_batches) {
  *batches = NULL;
  *n_batches = 0;
  if (o->batch_size < 1) return cslim_error(CSLIM_ERR_INVALID, "batch size must be at least 1");
  size_t nb = (ds->n + (size_t)o->batch_size - 1) / (size_t)o->batch_size;
  cslim_batch *b = calloc(nb, sizeof *b);
  cslim_ids *ids = calloc((size_t)o->batch_size, sizeof *ids);
  if (!b || !ids) {
    free(b);
    free(ids);
    return cslim_error(CSLIM_ERR_NOMEM, "out of memory");
  }
  cslim_status rc = CSLIM_OK;
  for (size_t k = 0; k < nb && !rc; k++) {
    size_t first = k * (size_t)o->batch_size;
    int bs = (int)(ds->n - first < (size_t)o->batch_size ? ds->n - first : (size_t)o->batch_size);
    int seq = 0;
    for (int i = 0; i < bs && !rc; i++) {
      const cslim_sample *s = &ds->samples[first + (size_t)i];
      ids[i].n = 0;
      rc = encode_sample(s, tok, o, &ids[i]);
      if (rc) {
        cslim_error_context("%s: sample %zu", ds->source, first + (size_t)i + 1);
        break;
      }
      if (ids[i].n == 0) {
        rc = cslim_error(CSLIM_ERR_FORMAT, "%s: sample %zu is empty", ds->source, first + (size_t)i + 1);
        break;
      }
      if (o->max_tokens && ids[i].n > o->max_tokens) {
        if (s->image) {
          rc = cslim_error(CSLIM_ERR_INVALID,
                           "%s: sample %zu (%s) needs %zu tokens, more than the limit of %zu; raise "
                           "the limit or use smaller images",
                           ds->source, first + (size_t)i + 1, s->image, ids[i].n, o->max_tokens);
          break;
        }
        ids[i].n = o->max_tokens;
      }
      if ((int)ids[i].n > seq) seq = (int)ids[i].n;
    }
    if (rc) break;
    b[k].batch = bs;
    b[k].seq = seq;
    b[k].first_sample = first;
    b[k].ids = malloc((size_t)bs * (size_t)seq * sizeof(int32_t));
    b[k].lengths = malloc((size_t)bs * sizeof(int32_t));
    if (!b[k].ids || !b[k].lengths) {
      rc = cslim_error(CSLIM_ERR_NOMEM, "out of memory");
      break;
    }
    for (int i = 0; i < bs; i++) {
      b[k].lengths[i] = (int32_t)ids[i].n;
      for (int t = 0; t < seq; t++)
        b[k].ids[(size_t)i * (size_t)seq + (size_t)t] = t < (int)ids[i].n ? ids[i].v[t] : o->pad_id;
    }
  }
  for (int i = 0; i < o->batch_size; i++) cslim_ids_free(&ids[i]);
  free(ids);
  if (rc) {
    cslim_batches_free(b, nb);
    return rc;
  }
  *batches = b;
  *n_batches = nb;
  return CSLIM_OK;
}

void cslim_batches_free(cslim_batch *b, size_t n) {
  if (!b) return;
  for (size_t i = 0; i < n; i++) {
    free(b[i].ids);
    free(b[i].lengths);
  }
  free(b);
}
