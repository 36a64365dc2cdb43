/* safetensors writer: declared layout, streamed data, msModelSlim sharding.
 * See cslim/safetensors.h for the contract. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* sync_file_range */
#endif
#include "cslim/safetensors.h"

#include "core/strmap.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct wtensor {
  char *name;
  cslim_dtype dtype;
  int ndim;
  int64_t shape[CSLIM_MAX_DIMS];
  uint64_t nbytes;
  int shard;
  uint64_t offset; /* absolute, in the shard file */
  atomic_int written;      /* claimed by a whole-tensor put */
  _Atomic uint64_t filled; /* bytes written (whole or in ranges) */
} wtensor;

typedef struct wshard {
  char *fname;
  int fd;
  uint64_t data_bytes;
} wshard;

struct cslim_st_writer {
  char *dir;
  char *base;
  uint64_t max_shard;
  int force_index;
  unsigned mode;
  char **meta_k, **meta_v;
  int n_meta;
  wtensor *t;
  size_t n, cap;
  cslim_strmap by_name;
  wshard *shards;
  int nshards;
  int begun, finished;
  _Atomic uint64_t bytes_written;
};

/* ---- a growable string for the JSON we emit ------------------------------------ */

typedef struct sbuf {
  char *p;
  size_t n, cap;
  int oom;
} sbuf;

static void sb_add(sbuf *b, const char *s, size_t len) {
  if (b->oom) return;
  if (b->n + len + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->n + len + 1) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
      b->oom = 1;
      return;
    }
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->n, s, len);
  b->n += len;
  b->p[b->n] = '\0';
}
static void sb_puts(sbuf *b, const char *s) { sb_add(b, s, strlen(s)); }
static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...) {
  char tmp[256];
  va_list ap;
  va_start(ap, fmt);
  int k = vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  if (k > 0) sb_add(b, tmp, (size_t)k < sizeof tmp ? (size_t)k : sizeof tmp - 1);
}
/* A JSON string literal (RFC 8259 escaping; UTF-8 passes through). */
static void sb_json_str(sbuf *b, const char *s) {
  sb_add(b, "\"", 1);
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') {
      char e[2] = {'\\', (char)c};
      sb_add(b, e, 2);
    } else if (c < 0x20) {
      sb_printf(b, "\\u%04x", c);
    } else {
      sb_add(b, (const char *)&c, 1);
    }
  }
  sb_add(b, "\"", 1);
}

/* ---- create / declare ------------------------------------------------------------- */

cslim_status cslim_st_writer_create(const char *dir, const char *basename,
                                    uint64_t max_shard_bytes, cslim_st_writer **out) {
  *out = NULL;
  if (!basename || !basename[0] || strchr(basename, '/'))
    return cslim_error(CSLIM_ERR_INVALID, "safetensors writer: bad base name '%s'",
                       basename ? basename : "");
  cslim_st_writer *w = calloc(1, sizeof *w);
  if (!w) return cslim_error(CSLIM_ERR_NOMEM, "out of memory");
  w->dir = strdup(dir);
  w->base = strdup(basename);
  w->max_shard = max_shard_bytes;
  w->mode = 0644;
  if (!w->dir || !w->base || cslim_strmap_init(&w->by_name, 256) != 0) {
    cslim_st_writer_free(w);
    return cslim_error(CSLIM_ERR_NOMEM, "out of memory");
  }
  *out = w;
  return CSLIM_OK;
}

void cslim_st_writer_force_index(cslim_st_writer *w, int on) { w->force_index = on; }
void cslim_st_writer_set_mode(cslim_st_writer *w, unsigned mode) { w->mode = mode; }

cslim_status cslim_st_writer_set_metadata(cslim_st_writer *w, const char *key, const char *value) {
  if (w->begun) return cslim_error(CSLIM_ERR_INVALID, "safetensors writer: metadata after begin");
  char **k = realloc(w->meta_k, (size_t)(w->n_meta + 1) * sizeof *k);
  if (k) w->meta_k = k;
  char **v = realloc(w->meta_v, (size_t)(w->n_meta + 1) * sizeof *v);
  if (v) w->meta_v = v;
  if (!k || !v) return cslim_error(CSLIM_ERR_NOMEM, "out of memory");
  w->meta_k[w->n_meta] = strdup(key);
  w->meta_v[w->n_meta] = strdup(value);
  w->n_meta++;
  return CSLIM_OK;
}

cslim_status cslim_st_writer_declare(cslim_st_writer *w, const char *name, cslim_dtype dtype,
                                     int ndim, const int64_t *shape) {
  if (w->begun)
    return cslim_error(CSLIM_ERR_INVALID, "safetensors writer: '%s' declared after begin", name);
  if (!name[0] || strcmp(name, "__metadata__") == 0)
    return cslim_error(CSLIM_ERR_INVALID, "safetensors writer: invalid tensor name '%s'", name);
  if ((unsigned)dtype >= CSLIM_DTYPE_COUNT)
    return cslim_error(CSLIM_ERR_INVALID, "safetensors writer: '%s': bad dtype", name);
  if (ndim < 0 || ndim > CSLIM_MAX_DIMS)
    return cslim_error(CSLIM_ERR_INVALID, "safetensors writer: '%s': %d dimensions", name, ndim);
  if (w->n == w->cap) {
    size_t cap = w->cap ? 2 * w->cap : 256;
    wtensor *t = realloc(w->t, cap * sizeof *t);
    if (!t) return cslim_error(CSLIM_ERR_NOMEM, "out of memory");
    w->t = t;
    w->cap = cap;
    /* the name map borrows names, which do not move: safe */
  }
  wtensor *t = &w->t[w->n];
  memset(t, 0, sizeof *t);
  t->name = strdup(name);
  if (!t->name) return cslim_error(CSLIM_ERR_NOMEM, "out of memory");
  uint64_t numel = 1;
  for (int i = 0; i < ndim; i++) {
    if (shape[i] < 0) {
      free(t->name);
      return cslim_error(CSLIM_ERR_INVALID, "safetensors writer: '%s': negative dimension", name);
    }
    t->shape[i] = shape[i];
    numel *= (uint64_t)shape[i];
  }
  t->dtype = dtype;
  t->ndim = ndim;
  t->nbytes = numel * cslim_dtype_size(dtype);
  int r = cslim_strmap_put(&w->by_name, t->name, (int64_t)w->n, NULL);
  if (r <= 0) {
    free(t->name);
    return r < 0 ? cslim_error(CSLIM_ERR_NOMEM, "out of memory")
                 : cslim_error(CSLIM_ERR_INVALID, "safetensors writer: tensor '%s' declared twice",
                               name);
  }
  w->n++;
  return CSLIM_OK;
}

/* ---- layout ------------------------------------------------------------------------ */

static int cmp_name(const void *a, const void *b, void *ctx) {
  const wtensor *t = ctx;
  return strcmp(t[*(const size_t *)a].name, t[*(const size_t *)b].name);
}

/* qsort_r is a GNU extension; a small merge sort keeps us portable and stable. */
static void stable_sort(size_t *v, size_t n, int (*cmp)(const void *, const void *, void *),
                        void *ctx, size_t *tmp) {
  if (n < 2) return;
  size_t h = n / 2;
  stable_sort(v, h, cmp, ctx, tmp);
  stable_sort(v + h, n - h, cmp, ctx, tmp);
  size_t i = 0, j = h, k = 0;
  while (i < h && j < n) tmp[k++] = cmp(&v[j], &v[i], ctx) < 0 ? v[j++] : v[i++];
  while (i < h) tmp[k++] = v[i++];
  while (j < n) tmp[k++] = v[j++];
  memcpy(v, tmp, n * sizeof *v);
}

static int cmp_esize_desc(const void *a, const void *b, void *ctx) {
  const wtensor *t = ctx;
  size_t x = cslim_dtype_size(t[*(const size_t *)a].dtype);
  size_t y = cslim_dtype_size(t[*(const size_t *)b].dtype);
  return x > y ? -1 : x < y;
}

static cslim_status write_all(int fd, const void *buf, size_t len, uint64_t off, const char *what) {
  const char *p = buf;
#ifdef SYNC_FILE_RANGE_WRITE
  const size_t len0 = len;
  const uint64_t off0 = off;
#endif
  while (len) {
    ssize_t k = pwrite(fd, p, len, (off_t)off);
    if (k < 0) {
      if (errno == EINTR) continue;
      return cslim_error(CSLIM_ERR_IO, "%s: write failed: %s", what, strerror(errno));
    }
    p += k;
    len -= (size_t)k;
    off += (uint64_t)k;
  }
#ifdef SYNC_FILE_RANGE_WRITE
  /* start the write-back of large tensors now, so that the final fsync finds little left */
  if (len0 >= ((size_t)1 << 20)) (void)sync_file_range(fd, (off_t)off0, (off_t)len0, SYNC_FILE_RANGE_WRITE);
#endif
  return CSLIM_OK;
}

static char *join(const char *dir, const char *name) {
  size_t a = strlen(dir), b = strlen(name);
  char *p = malloc(a + b + 2);
  if (p) snprintf(p, a + b + 2, "%s/%s", dir, name);
  return p;
}

static cslim_status build_shard(cslim_st_writer *w, int s, size_t *members, size_t cnt,
                                size_t *tmp) {
  wshard *sh = &w->shards[s];
  /* Data order: decreasing element size, then declaration order. */
  stable_sort(members, cnt, cmp_esize_desc, w->t, tmp);
  uint64_t off = 0;
  for (size_t i = 0; i < cnt; i++) {
    w->t[members[i]].offset = off; /* relative; made absolute below */
    off += w->t[members[i]].nbytes;
  }
  sh->data_bytes = off;
  /* Header: __metadata__ first, then tensors by name. */
  size_t *byname = malloc(cnt * sizeof *byname + 1);
  if (!byname) return cslim_error(CSLIM_ERR_NOMEM, "out of memory");
  memcpy(byname, members, cnt * sizeof *byname);
  stable_sort(byname, cnt, cmp_name, w->t, tmp);
  sbuf hb = {0};
  sb_puts(&hb, "{");
  int first = 1;
  if (w->n_meta) {
    sb_puts(&hb, "\"__metadata__\":{");
    for (int i = 0; i < w->n_meta; i++) {
      if (i) sb_puts(&hb, ",");
      sb_json_str(&hb, w->meta_k[i]);
      sb_puts(&hb, ":");
      sb_json_str(&hb, w->meta_v[i]);
    }
    sb_puts(&hb, "}");
    first = 0;
  }
  for (size_t i = 0; i < cnt; i++) {
    const wtensor *t = &w->t[byname[i]];
    if (!first) sb_puts(&hb, ",");
    first = 0;
    sb_json_str(&hb, t->name);
    sb_printf(&hb, ":{\"dtype\":\"%s\",\"shape\":[", cslim_dtype_name(t->dtype));
    for (int d = 0; d < t->ndim; d++) sb_printf(&hb, d ? ",%lld" : "%lld", (long long)t->shape[d]);
    sb_printf(&hb, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)t->offset,
              (unsigned long long)(t->offset + t->nbytes));
  }
  sb_puts(&hb, "}");
  free(byname);
  while ((8 + hb.n) % 8) sb_puts(&hb, " ");
  if (hb.oom) {
    free(hb.p);
    return cslim_error(CSLIM_ERR_NOMEM, "out of memory");
  }
  uint64_t hlen = hb.n;
  for (size_t i = 0; i < cnt; i++) w->t[members[i]].offset += 8 + hlen;

  char *path = join(w->dir, sh->fname);
  if (!path) {
    free(hb.p);
    return cslim_error(CSLIM_ERR_NOMEM, "out of memory");
  }
  sh->fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, w->mode);
  cslim_status rc = CSLIM_OK;
  if (sh->fd < 0) {
    rc = cslim_error(CSLIM_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
  } else {
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)(hlen >> (8 * i));
    rc = write_all(sh->fd, len8, 8, 0, path);
    if (!rc) rc = write_all(sh->fd, hb.p, hb.n, 8, path);
    if (!rc && ftruncate(sh->fd, (off_t)(8 + hlen + sh->data_bytes)) != 0)
      rc = cslim_error(CSLIM_ERR_IO, "%s: cannot size the file: %s", path, strerror(errno));
  }
  free(path);
  free(hb.p);
  return rc;
}

cslim_status cslim_st_writer_begin(cslim_st_writer *w) {
  if (w->begun) return cslim_error(CSLIM_ERR_INVALID, "safetensors writer: begin called twice");
  w->begun = 1;
  /* Assign shards in declaration order (spec §5.1 sharding rule). */
  int ns = 0;
  uint64_t cur = 0;
  int cur_count = 0;
  for (size_t i = 0; i < w->n; i++) {
    uint64_t b = w->t[i].nbytes;
    if (cur_count > 0 && w->max_shard && cur + b >= w->max_shard) {
      ns++;
      cur = 0;
      cur_count = 0;
    }
    w->t[i].shard = ns;
    cur += b;
    cur_count++;
  }
  w->nshards = ns + 1;
  w->shards = calloc((size_t)w->nshards, sizeof *w->shards);
  size_t *members = malloc((w->n + 1) * sizeof *members);
  size_t *tmp = malloc((w->n + 1) * sizeof *tmp);
  if (!w->shards || !members || !tmp) {
    free(members);
    free(tmp);
    return cslim_error(CSLIM_ERR_NOMEM, "out of memory");
  }
  int indexed = w->nshards > 1 || w->force_index;
  for (int s = 0; s < w->nshards; s++) {
    char name[4096];
    if (indexed)
      snprintf(name, sizeof name, "%s-%05d-of-%05d.safetensors", w->base, s + 1, w->nshards);
    else
      snprintf(name, sizeof name, "%s.safetensors", w->base);
    w->shards[s].fname = strdup(name);
    w->shards[s].fd = -1;
  }
  cslim_status rc = CSLIM_OK;
  size_t lo = 0;
  for (int s = 0; s < w->nshards && !rc; s++) {
    size_t cnt = 0;
    while (lo + cnt < w->n && w->t[lo + cnt].shard == s) {
      members[cnt] = lo + cnt;
      cnt++;
    }
    rc = build_shard(w, s, members, cnt, tmp);
    lo += cnt;
  }
  free(members);
  free(tmp);
  return rc;
}

/* ---- data ------------------------------------------------------------------------------ */

static wtensor *claim(cslim_st_writer *w, const char *name, cslim_status *rc) {
  if (!w->begun || w->finished) {
    *rc = cslim_error(CSLIM_ERR_INVALID, "safetensors writer: put('%s') outside begin..finish",
                      name);
    return NULL;
  }
  int64_t i = cslim_strmap_get(&w->by_name, name);
  if (i < 0) {
    *rc = cslim_error(CSLIM_ERR_INVALID, "safetensors writer: tensor '%s' was not declared", name);
    return NULL;
  }
  wtensor *t = &w->t[i];
  if (atomic_exchange(&t->written, 1)) {
    *rc = cslim_error(CSLIM_ERR_INVALID, "safetensors writer: tensor '%s' written twice", name);
    return NULL;
  }
  *rc = CSLIM_OK;
  return t;
}

cslim_status cslim_st_writer_put(cslim_st_writer *w, const char *name, const void *data) {
  cslim_status rc;
  wtensor *t = claim(w, name, &rc);
  if (!t) return rc;
  wshard *sh = &w->shards[t->shard];
  rc = write_all(sh->fd, data, (size_t)t->nbytes, t->offset, sh->fname);
  if (!rc) {
    atomic_fetch_add(&w->bytes_written, t->nbytes);
    atomic_store(&t->filled, t->nbytes);
  }
  return rc;
}

cslim_status cslim_st_writer_put_range(cslim_st_writer *w, const char *name, uint64_t offset, const void *data,
                                       uint64_t len) {
  if (!w->begun || w->finished)
    return cslim_error(CSLIM_ERR_INVALID, "safetensors writer: put('%s') outside begin..finish", name);
  int64_t i = cslim_strmap_get(&w->by_name, name);
  if (i < 0) return cslim_error(CSLIM_ERR_INVALID, "safetensors writer: tensor '%s' was not declared", name);
  wtensor *t = &w->t[i];
  if (atomic_load(&t->written) || offset > t->nbytes || len > t->nbytes - offset)
    return cslim_error(CSLIM_ERR_INVALID, "safetensors writer: range [%llu, +%llu) of '%s' is outside it or "
                       "already written", (unsigned long long)offset, (unsigned long long)len, name);
  if (atomic_fetch_add(&t->filled, len) + len > t->nbytes)
    return cslim_error(CSLIM_ERR_INVALID, "safetensors writer: tensor '%s' written twice", name);
  wshard *sh = &w->shards[t->shard];
  cslim_status rc = write_all(sh->fd, data, (size_t)len, t->offset + offset, sh->fname);
  if (!rc) atomic_fetch_add(&w->bytes_written, len);
  return rc;
}

cslim_status cslim_st_writer_put_f32(cslim_st_writer *w, const char *name, const float *data) {
  cslim_status rc;
  wtensor *t = claim(w, name, &rc);
  if (!t) return rc;
  wshard *sh = &w->shards[t->shard];
  size_t es = cslim_dtype_size(t->dtype);
  size_t numel = (size_t)(t->nbytes / es);
  const size_t chunk = 1u << 18;
  unsigned char *buf = malloc(chunk * es);
  if (!buf) return cslim_error(CSLIM_ERR_NOMEM, "out of memory");
  for (size_t i = 0; i < numel && !rc; i += chunk) {
    size_t len = numel - i < chunk ? numel - i : chunk;
    cslim_convert_from_f32(t->dtype, data + i, buf, len);
    rc = write_all(sh->fd, buf, len * es, t->offset + i * es, sh->fname);
  }
  free(buf);
  if (!rc) {
    atomic_fetch_add(&w->bytes_written, t->nbytes);
    atomic_store(&t->filled, t->nbytes);
  }
  return rc;
}

/* ---- finish ----------------------------------------------------------------------------- */

static cslim_status write_index(cslim_st_writer *w) {
  uint64_t total = 0;
  size_t *order = malloc((w->n + 1) * sizeof *order);
  size_t *tmp = malloc((w->n + 1) * sizeof *tmp);
  if (!order || !tmp) {
    free(order);
    free(tmp);
    return cslim_error(CSLIM_ERR_NOMEM, "out of memory");
  }
  for (size_t i = 0; i < w->n; i++) {
    order[i] = i;
    total += w->t[i].nbytes;
  }
  stable_sort(order, w->n, cmp_name, w->t, tmp);
  sbuf b = {0};
  sb_printf(&b, "{\n  \"metadata\": {\n    \"total_size\": %llu\n  },\n  \"weight_map\": {",
            (unsigned long long)total);
  for (size_t i = 0; i < w->n; i++) {
    const wtensor *t = &w->t[order[i]];
    sb_puts(&b, i ? ",\n    " : "\n    ");
    sb_json_str(&b, t->name);
    sb_puts(&b, ": ");
    sb_json_str(&b, w->shards[t->shard].fname);
  }
  sb_puts(&b, "\n  }\n}\n");
  free(order);
  free(tmp);
  if (b.oom) {
    free(b.p);
    return cslim_error(CSLIM_ERR_NOMEM, "out of memory");
  }
  char name[4096];
  snprintf(name, sizeof name, "%s.safetensors.index.json", w->base);
  char *path = join(w->dir, name);
  cslim_status rc = CSLIM_OK;
  int fd = path ? open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, w->mode) : -1;
  if (fd < 0) {
    rc = cslim_error(CSLIM_ERR_IO, "%s: cannot create: %s", path ? path : name, strerror(errno));
  } else {
    rc = write_all(fd, b.p, b.n, 0, path);
    if (!rc && fsync(fd) != 0)
      rc = cslim_error(CSLIM_ERR_IO, "%s: fsync failed: %s", path, strerror(errno));
    close(fd);
  }
  free(path);
  free(b.p);
  return rc;
}

cslim_status cslim_st_writer_finish(cslim_st_writer *w) {
  if (!w->begun || w->finished)
    return cslim_error(CSLIM_ERR_INVALID, "safetensors writer: finish without begin");
  size_t missing = 0;
  const char *first_missing = NULL;
  for (size_t i = 0; i < w->n; i++) {
    if (atomic_load(&w->t[i].filled) != w->t[i].nbytes) {
      if (!missing) first_missing = w->t[i].name;
      missing++;
    }
  }
  if (missing)
    return cslim_error(CSLIM_ERR_INVALID,
                       "safetensors writer: %zu declared tensor(s) never written, first '%s'",
                       missing, first_missing);
  for (int s = 0; s < w->nshards; s++) {
    wshard *sh = &w->shards[s];
    if (fsync(sh->fd) != 0)
      return cslim_error(CSLIM_ERR_IO, "%s: fsync failed: %s", sh->fname, strerror(errno));
    close(sh->fd);
    sh->fd = -1;
  }
  if (w->nshards > 1 || w->force_index) {
    cslim_status rc = write_index(w);
    if (rc) return rc;
  }
  w->finished = 1;
  return CSLIM_OK;
}

void cslim_st_writer_free(cslim_st_writer *w) {
  if (!w) return;
  for (int s = 0; s < w->nshards; s++) {
    if (w->shards[s].fd >= 0) {
      close(w->shards[s].fd);
      /* never leave a half-written shard behind */
      char *p = join(w->dir, w->shards[s].fname);
      if (p) unlink(p);
      free(p);
    }
    free(w->shards[s].fname);
  }
  free(w->shards);
  for (size_t i = 0; i < w->n; i++) free(w->t[i].name);
  free(w->t);
  for (int i = 0; i < w->n_meta; i++) {
    free(w->meta_k[i]);
    free(w->meta_v[i]);
  }
  free(w->meta_k);
  free(w->meta_v);
  cslim_strmap_free(&w->by_name);
  free(w->dir);
  free(w->base);
  free(w);
}

int cslim_st_writer_shard_count(const cslim_st_writer *w) { return w->nshards; }
const char *cslim_st_writer_shard_name(const cslim_st_writer *w, int i) {
  return i >= 0 && i < w->nshards ? w->shards[i].fname : NULL;
}
uint64_t cslim_st_writer_bytes_written(const cslim_st_writer *w) {
  return atomic_load(&((cslim_st_writer *)w)->bytes_written);
}
