/* safetensors reader: memory-mapped, zero-copy, validated.
 *
 * Parsers never trust lengths: the header length, every shape and every data
 * offset is checked against the file before a view is handed out
 * (fuzz/fuzz_safetensors.c exercises this). */
#include "cslim/safetensors.h"

#include "core/strutil.h"
#include "core/strmap.h"
#include "io/json_util.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct st_file {
  char *path;
  const unsigned char *base; /* whole file image */
  size_t size;
  int mapped; /* base came from mmap (else borrowed memory) */
  uint64_t data_start;
  int n_meta;
  char **meta_keys;
  char **meta_vals;
} st_file;

struct cslim_st {
  st_file *files;
  size_t nfiles;
  cslim_tensor *tensors;
  size_t ntensors, cap;
  char *index_path;
  cslim_strmap by_name;
  _Atomic uint64_t bytes_read; /* distinct: each tensor counted the first time it is read */
  _Atomic unsigned char *was_read; /* [ntensors], allocated after the headers are parsed */
};

static long g_page_size;

/* ---- small helpers --------------------------------------------------------- */

int64_t cslim_shape_numel(int ndim, const int64_t *shape) {
  int64_t n = 1;
  for (int i = 0; i < ndim; i++) n *= shape[i];
  return n;
}

char *cslim_shape_str(int ndim, const int64_t *shape, char *buf, size_t cap) {
  size_t o = 0;
  o += (size_t)snprintf(buf + o, cap - o, "[");
  for (int i = 0; i < ndim && o < cap; i++)
    o += (size_t)snprintf(buf + o, cap - o, i ? ", %lld" : "%lld", (long long)shape[i]);
  if (o < cap) snprintf(buf + o, cap - o, "]");
  return buf;
}

static char *path_join(const char *dir, const char *name) {
  size_t a = strlen(dir), b = strlen(name);
  char *p = malloc(a + b + 2);
  if (!p) return NULL;
  memcpy(p, dir, a);
  size_t o = a;
  if (a && dir[a - 1] != '/') p[o++] = '/';
  memcpy(p + o, name, b + 1);
  return p;
}

static char *dir_of(const char *path) {
  const char *slash = strrchr(path, '/');
  if (!slash) return strdup(".");
  if (slash == path) return strdup("/");
  return strndup(path, (size_t)(slash - path));
}

static cslim_status st_alloc(cslim_st **out) {
  cslim_st *st = calloc(1, sizeof *st);
  if (!st || cslim_strmap_init(&st->by_name, 64) != 0) {
    free(st);
    return cslim_error(CSLIM_ERR_NOMEM, "out of memory");
  }
  *out = st;
  return CSLIM_OK;
}

static cslim_tensor *push_tensor(cslim_st *st) {
  if (st->ntensors == st->cap) {
    size_t cap = st->cap ? st->cap * 2 : 64;
    cslim_tensor *t = realloc(st->tensors, cap * sizeof *t);
    if (!t) return NULL;
    st->tensors = t;
    st->cap = cap;
  }
  cslim_tensor *t = &st->tensors[st->ntensors++];
  memset(t, 0, sizeof *t);
  return t;
}

/* ---- header parsing ---------------------------------------------------------- */

static int cmp_by_offset(const void *a, const void *b) {
  const cslim_tensor *x = *(const cslim_tensor *const *)a, *y = *(const cslim_tensor *const *)b;
  if (x->offset != y->offset) return x->offset < y->offset ? -1 : 1;
  return x->nbytes < y->nbytes ? -1 : x->nbytes > y->nbytes;
}

static cslim_status parse_metadata(st_file *f, const cJSON *meta) {
  if (!cJSON_IsObject(meta))
    return cslim_error(CSLIM_ERR_FORMAT, "__metadata__ must be an object of strings");
  int n = cJSON_GetArraySize(meta);
  f->meta_keys = calloc((size_t)n + 1, sizeof(char *));
  f->meta_vals = calloc((size_t)n + 1, sizeof(char *));
  if (!f->meta_keys || !f->meta_vals) return cslim_error(CSLIM_ERR_NOMEM, "out of memory");
  for (const cJSON *m = meta->child; m; m = m->next) {
    if (!cJSON_IsString(m))
      return cslim_error(CSLIM_ERR_FORMAT, "__metadata__ value '%s' is not a string", m->string);
    f->meta_keys[f->n_meta] = strdup(m->string);
    f->meta_vals[f->n_meta] = strdup(m->valuestring);
    f->n_meta++;
  }
  return CSLIM_OK;
}

static cslim_status parse_tensor_entry(cslim_tensor *t, const cJSON *e, uint64_t data_size) {
  const char *name = e->string;
  if (!cJSON_IsObject(e))
    return cslim_error(CSLIM_ERR_FORMAT, "tensor '%s': entry is not an object", name);
  const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
  const cJSON *shape = cJSON_GetObjectItemCaseSensitive(e, "shape");
  const cJSON *offs = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
  if (!cJSON_IsString(dt))
    return cslim_error(CSLIM_ERR_FORMAT, "tensor '%s': missing or non-string \"dtype\"", name);
  if (cslim_dtype_parse(dt->valuestring, &t->dtype) != 0)
    return cslim_error(CSLIM_ERR_UNSUPPORTED, "tensor '%s': unknown dtype '%s' (supported: %s)",
                       name, dt->valuestring, cslim_dtype_list());
  if (!cJSON_IsArray(shape))
    return cslim_error(CSLIM_ERR_FORMAT, "tensor '%s': missing or non-array \"shape\"", name);
  int nd = cJSON_GetArraySize(shape);
  if (nd > CSLIM_MAX_DIMS)
    return cslim_error(CSLIM_ERR_UNSUPPORTED, "tensor '%s': %d dimensions (at most %d supported)",
                       name, nd, CSLIM_MAX_DIMS);
  t->ndim = nd;
  int64_t numel = 1;
  int i = 0;
  for (const cJSON *d = shape->child; d; d = d->next, i++) {
    int64_t v;
    if (cslim_json_as_u53(d, &v) != 0)
      return cslim_error(CSLIM_ERR_FORMAT,
                         "tensor '%s': shape entry %d is not a non-negative integer", name, i);
    t->shape[i] = v;
    if (v != 0 && numel > INT64_C(0x3fffffffffffffff) / v)
      return cslim_error(CSLIM_ERR_FORMAT, "tensor '%s': shape overflows", name);
    numel *= v;
  }
  t->numel = numel;
  uint64_t es = cslim_dtype_size(t->dtype);
  if ((uint64_t)numel > UINT64_MAX / 16)
    return cslim_error(CSLIM_ERR_FORMAT, "tensor '%s': shape overflows", name);
  t->nbytes = (uint64_t)numel * es;
  if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2)
    return cslim_error(CSLIM_ERR_FORMAT,
                       "tensor '%s': \"data_offsets\" must be an array [begin, end]", name);
  int64_t b, en;
  if (cslim_json_as_u53(offs->child, &b) != 0 || cslim_json_as_u53(offs->child->next, &en) != 0)
    return cslim_error(CSLIM_ERR_FORMAT,
                       "tensor '%s': data_offsets must be non-negative integers", name);
  if (b > en)
    return cslim_error(CSLIM_ERR_FORMAT, "tensor '%s': data_offsets [%lld, %lld] are reversed",
                       name, (long long)b, (long long)en);
  if ((uint64_t)en > data_size)
    return cslim_error(CSLIM_ERR_FORMAT,
                       "tensor '%s': data_offsets [%lld, %lld] run past the end of the data "
                       "(%llu bytes; file truncated?)",
                       name, (long long)b, (long long)en, (unsigned long long)data_size);
  if ((uint64_t)(en - b) != t->nbytes) {
    char sb[128];
    return cslim_error(CSLIM_ERR_FORMAT,
                       "tensor '%s': shape %s of %s needs %llu bytes but data_offsets span %llu",
                       name, cslim_shape_str(nd, t->shape, sb, sizeof sb),
                       cslim_dtype_name(t->dtype), (unsigned long long)t->nbytes,
                       (unsigned long long)(en - b));
  }
  t->offset = (uint64_t)b; /* relative for now; made absolute by the caller */
  return CSLIM_OK;
}

/* Parse one file image and append its tensors. Errors are not prefixed with
 * the file name (the caller does that). */
static cslim_status parse_file(cslim_st *st, int fidx) {
  st_file *f = &st->files[fidx];
  const unsigned char *buf = f->base;
  size_t len = f->size;
  if (len < 8)
    return cslim_error(CSLIM_ERR_FORMAT,
                       "truncated: %zu bytes, smaller than the 8-byte header length", len);
  uint64_t n = 0;
  for (int i = 7; i >= 0; i--) n = (n << 8) | buf[i];
  if (n > len - 8)
    return cslim_error(CSLIM_ERR_FORMAT,
                       "header length %llu runs past the end of the file (%zu bytes; truncated?)",
                       (unsigned long long)n, len);
  if (n > CSLIM_ST_MAX_HEADER)
    return cslim_error(CSLIM_ERR_FORMAT, "header length %llu exceeds the %u-byte limit",
                       (unsigned long long)n, CSLIM_ST_MAX_HEADER);
  if (n < 2 || buf[8] != '{')
    return cslim_error(CSLIM_ERR_FORMAT, "header is not a JSON object (not a safetensors file?)");
  f->data_start = 8 + n;
  uint64_t data_size = len - f->data_start;

  cJSON *root = NULL;
  cslim_status rc = cslim_json_parse((const char *)buf + 8, (size_t)n, "header", &root);
  if (rc) return rc;
  if (!cJSON_IsObject(root)) {
    cJSON_Delete(root);
    return cslim_error(CSLIM_ERR_FORMAT, "header is not a JSON object");
  }
  size_t first = st->ntensors;
  for (const cJSON *e = root->child; e && !rc; e = e->next) {
    if (strcmp(e->string, "__metadata__") == 0) {
      if (f->meta_keys) {
        rc = cslim_error(CSLIM_ERR_FORMAT, "duplicate \"__metadata__\"");
        break;
      }
      rc = parse_metadata(f, e);
      continue;
    }
    if (e->string[0] == '\0') {
      rc = cslim_error(CSLIM_ERR_FORMAT, "tensor with an empty name");
      break;
    }
    cslim_tensor *t = push_tensor(st);
    if (!t) {
      rc = cslim_error(CSLIM_ERR_NOMEM, "out of memory");
      break;
    }
    char *name = strdup(e->string);
    if (!name) {
      st->ntensors--;
      rc = cslim_error(CSLIM_ERR_NOMEM, "out of memory");
      break;
    }
    t->name = name;
    t->file = fidx;
    rc = parse_tensor_entry(t, e, data_size);
    if (rc) break;
    t->data = buf + f->data_start + t->offset;
    t->offset += f->data_start;
  }
  cJSON_Delete(root);
  if (rc) return rc;

  /* Overlap check: sort this file's tensors by offset. */
  size_t cnt = st->ntensors - first;
  if (cnt > 1) {
    const cslim_tensor **v = malloc(cnt * sizeof *v);
    if (!v) return cslim_error(CSLIM_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < cnt; i++) v[i] = &st->tensors[first + i];
    qsort(v, cnt, sizeof *v, cmp_by_offset);
    const cslim_tensor *prev = NULL;
    for (size_t i = 0; i < cnt && !rc; i++) {
      if (v[i]->nbytes == 0) continue;
      if (prev && v[i]->offset < prev->offset + prev->nbytes)
        rc = cslim_error(CSLIM_ERR_FORMAT, "tensors '%s' and '%s' overlap in the data region",
                         prev->name, v[i]->name);
      prev = v[i];
    }
    free(v);
  }
  return rc;
}

/* Register this file's tensors in the name map; a name seen before is an
 * error naming both places. */
static cslim_status index_names(cslim_st *st, size_t first) {
  for (size_t i = first; i < st->ntensors; i++) {
    int64_t prev = -1;
    int r = cslim_strmap_put(&st->by_name, st->tensors[i].name, (int64_t)i, &prev);
    if (r < 0) return cslim_error(CSLIM_ERR_NOMEM, "out of memory");
    if (r == 0) {
      const cslim_tensor *p = &st->tensors[prev];
      if (p->file == st->tensors[i].file)
        return cslim_error(CSLIM_ERR_FORMAT, "%s: duplicate tensor name '%s'",
                           st->files[p->file].path, p->name);
      return cslim_error(CSLIM_ERR_FORMAT, "tensor '%s' appears in both %s and %s", p->name,
                         st->files[p->file].path, st->files[st->tensors[i].file].path);
    }
  }
  return CSLIM_OK;
}

static st_file *push_file(cslim_st *st, const char *path) {
  st_file *f = realloc(st->files, (st->nfiles + 1) * sizeof *f);
  if (!f) return NULL;
  st->files = f;
  f = &st->files[st->nfiles];
  memset(f, 0, sizeof *f);
  f->path = strdup(path);
  if (!f->path) return NULL;
  st->nfiles++;
  return f;
}

static cslim_status map_file(st_file *f) {
  int fd = open(f->path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return cslim_error(CSLIM_ERR_IO, "%s: cannot open: %s", f->path, strerror(errno));
  struct stat sb;
  if (fstat(fd, &sb) != 0) {
    int e = errno;
    close(fd);
    return cslim_error(CSLIM_ERR_IO, "%s: cannot stat: %s", f->path, strerror(e));
  }
  if (!S_ISREG(sb.st_mode)) {
    close(fd);
    return cslim_error(CSLIM_ERR_IO, "%s: not a regular file", f->path);
  }
  f->size = (size_t)sb.st_size;
  if (f->size == 0) {
    close(fd);
    f->base = (const unsigned char *)"";
    return CSLIM_OK; /* parse_file reports it as truncated */
  }
  void *p = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, fd, 0);
  int e = errno;
  close(fd);
  if (p == MAP_FAILED) return cslim_error(CSLIM_ERR_IO, "%s: cannot map: %s", f->path, strerror(e));
  f->base = p;
  f->mapped = 1;
  return CSLIM_OK;
}

static cslim_status add_file(cslim_st *st, const char *path) {
  st_file *f = push_file(st, path);
  if (!f) return cslim_error(CSLIM_ERR_NOMEM, "out of memory");
  cslim_status rc = map_file(f);
  if (rc) return rc;
  size_t first = st->ntensors;
  rc = parse_file(st, (int)(st->nfiles - 1));
  if (rc) return cslim_error_context("%s", path);
  return index_names(st, first);
}

/* ---- index (sharded checkpoints) ------------------------------------------------ */

static cslim_status open_index(cslim_st *st, const char *index_path) {
  cJSON *root = NULL;
  cslim_status rc = cslim_json_load_file(index_path, &root);
  if (rc) return rc;
  st->index_path = strdup(index_path);
  const cJSON *wm = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
  if (!cJSON_IsObject(root) || !cJSON_IsObject(wm)) {
    cJSON_Delete(root);
    return cslim_error(CSLIM_ERR_FORMAT, "%s: no \"weight_map\" object", index_path);
  }
  char *dir = dir_of(index_path);
  /* Distinct file names, in sorted order for a deterministic file list. */
  int n = cJSON_GetArraySize(wm);
  const char **names = malloc(((size_t)n + 1) * sizeof *names);
  int nn = 0;
  cslim_strmap seen;
  cslim_strmap seen_keys;
  if (!dir || !names || cslim_strmap_init(&seen, 16) || cslim_strmap_init(&seen_keys, (size_t)n)) {
    rc = cslim_error(CSLIM_ERR_NOMEM, "out of memory");
    goto done;
  }
  for (const cJSON *e = wm->child; e; e = e->next) {
    if (!cJSON_IsString(e)) {
      rc = cslim_error(CSLIM_ERR_FORMAT, "%s: weight_map entry '%s' is not a file name",
                       index_path, e->string);
      goto done;
    }
    const char *fn = e->valuestring;
    if (!fn[0] || strchr(fn, '/') || strcmp(fn, "..") == 0 || strcmp(fn, ".") == 0) {
      rc = cslim_error(CSLIM_ERR_FORMAT,
                       "%s: weight_map entry '%s' names '%s', which is not a plain file name",
                       index_path, e->string, fn);
      goto done;
    }
    if (cslim_strmap_put(&seen_keys, e->string, 0, NULL) == 0) {
      rc = cslim_error(CSLIM_ERR_FORMAT, "%s: tensor '%s' is listed twice in weight_map",
                       index_path, e->string);
      goto done;
    }
    if (cslim_strmap_put(&seen, fn, nn, NULL) == 1) names[nn++] = fn;
  }
  for (int i = 1; i < nn; i++) /* insertion sort: few files */
    for (int j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
      const char *t = names[j];
      names[j] = names[j - 1];
      names[j - 1] = t;
    }
  for (int i = 0; i < nn && !rc; i++) {
    char *p = path_join(dir, names[i]);
    if (!p) {
      rc = cslim_error(CSLIM_ERR_NOMEM, "out of memory");
      break;
    }
    if (access(p, F_OK) != 0) {
      rc = cslim_error(CSLIM_ERR_IO, "%s: names shard '%s', which does not exist", index_path,
                       names[i]);
    } else {
      rc = add_file(st, p);
    }
    free(p);
  }
  if (rc) goto done;
  /* Every tensor named in the index must be in the file the index names. */
  for (const cJSON *e = wm->child; e; e = e->next) {
    int64_t ti = cslim_strmap_get(&st->by_name, e->string);
    const char *want = e->valuestring;
    if (ti < 0) {
      rc = cslim_error(CSLIM_ERR_FORMAT, "%s: tensor '%s' is named in the index but missing from %s",
                       index_path, e->string, want);
      goto done;
    }
    const char *have = st->files[st->tensors[ti].file].path;
    const char *base = strrchr(have, '/');
    base = base ? base + 1 : have;
    if (strcmp(base, want) != 0) {
      rc = cslim_error(CSLIM_ERR_FORMAT,
                       "%s: tensor '%s' is mapped to %s but stored in %s", index_path,
                       e->string, want, base);
      goto done;
    }
  }
  if ((size_t)n != st->ntensors)
    CSLIM_WARN("%s: %zu tensor(s) in the shards are not listed in the index", index_path,
               st->ntensors - (size_t)n);
done:
  cslim_strmap_free(&seen);
  cslim_strmap_free(&seen_keys);
  free(names);
  free(dir);
  cJSON_Delete(root);
  return rc;
}

/* ---- directory scan ---------------------------------------------------------------- */

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static cslim_status open_dir(cslim_st *st, const char *dir) {
  char *p = path_join(dir, "model.safetensors.index.json");
  if (!p) return cslim_error(CSLIM_ERR_NOMEM, "out of memory");
  if (access(p, F_OK) == 0) {
    cslim_status rc = open_index(st, p);
    free(p);
    return rc;
  }
  free(p);
  DIR *d = opendir(dir);
  if (!d) return cslim_error(CSLIM_ERR_IO, "%s: cannot open directory: %s", dir, strerror(errno));
  char **idx = NULL, **files = NULL;
  size_t nidx = 0, nfiles = 0;
  struct dirent *de;
  cslim_status rc = CSLIM_OK;
  while ((de = readdir(d))) {
    if (de->d_name[0] == '.') continue;
    char ***arr = NULL;
    size_t *cnt = NULL;
    if (cslim_ends_with(de->d_name, ".safetensors.index.json")) {
      arr = &idx;
      cnt = &nidx;
    } else if (cslim_ends_with(de->d_name, ".safetensors")) {
      arr = &files;
      cnt = &nfiles;
    } else {
      continue;
    }
    char **g = realloc(*arr, (*cnt + 1) * sizeof **arr);
    if (!g) {
      rc = cslim_error(CSLIM_ERR_NOMEM, "out of memory");
      break;
    }
    *arr = g;
    (*arr)[(*cnt)++] = strdup(de->d_name);
  }
  closedir(d);
  if (!rc) {
    if (nidx > 1) {
      rc = cslim_error(CSLIM_ERR_FORMAT,
                       "%s: %zu *.safetensors.index.json files; pass the one to use", dir, nidx);
    } else if (nidx == 1) {
      char *ip = path_join(dir, idx[0]);
      rc = ip ? open_index(st, ip) : cslim_error(CSLIM_ERR_NOMEM, "out of memory");
      free(ip);
    } else if (nfiles == 0) {
      rc = cslim_error(CSLIM_ERR_IO, "%s: no .safetensors files in this directory", dir);
    } else {
      qsort(files, nfiles, sizeof *files, cmp_str);
      int has_model = 0;
      for (size_t i = 0; i < nfiles; i++) has_model |= strcmp(files[i], "model.safetensors") == 0;
      for (size_t i = 0; i < nfiles && !rc; i++) {
        if (has_model && strcmp(files[i], "model.safetensors") != 0) continue;
        char *fp = path_join(dir, files[i]);
        rc = fp ? add_file(st, fp) : cslim_error(CSLIM_ERR_NOMEM, "out of memory");
        free(fp);
      }
    }
  }
  for (size_t i = 0; i < nidx; i++) free(idx[i]);
  for (size_t i = 0; i < nfiles; i++) free(files[i]);
  free(idx);
  free(files);
  return rc;
}

/* ---- public -------------------------------------------------------------------------- */

static cslim_status alloc_read_flags(cslim_st *st) {
  st->was_read = calloc(st->ntensors ? st->ntensors : 1, sizeof *st->was_read);
  return st->was_read ? CSLIM_OK : cslim_error(CSLIM_ERR_NOMEM, "out of memory");
}

cslim_status cslim_st_open(const char *path, cslim_st **out) {
  *out = NULL;
  if (!g_page_size) g_page_size = sysconf(_SC_PAGESIZE);
  struct stat sb;
  if (stat(path, &sb) != 0)
    return cslim_error(CSLIM_ERR_IO, "%s: %s", path, strerror(errno));
  cslim_st *st = NULL;
  cslim_status rc = st_alloc(&st);
  if (rc) return rc;
  if (S_ISDIR(sb.st_mode))
    rc = open_dir(st, path);
  else if (cslim_ends_with(path, ".json"))
    rc = open_index(st, path);
  else
    rc = add_file(st, path);
  if (!rc) rc = alloc_read_flags(st);
  if (rc) {
    cslim_st_close(st);
    return rc;
  }
  *out = st;
  return CSLIM_OK;
}

cslim_status cslim_st_open_memory(const void *buf, size_t len, const char *name, cslim_st **out) {
  *out = NULL;
  cslim_st *st = NULL;
  cslim_status rc = st_alloc(&st);
  if (rc) return rc;
  st_file *f = push_file(st, name ? name : "<memory>");
  if (!f) {
    cslim_st_close(st);
    return cslim_error(CSLIM_ERR_NOMEM, "out of memory");
  }
  f->base = buf;
  f->size = len;
  rc = parse_file(st, 0);
  if (rc) rc = cslim_error_context("%s", f->path);
  if (!rc) rc = index_names(st, 0);
  if (!rc) rc = alloc_read_flags(st);
  if (rc) {
    cslim_st_close(st);
    return rc;
  }
  *out = st;
  return CSLIM_OK;
}

void cslim_st_close(cslim_st *st) {
  if (!st) return;
  for (size_t i = 0; i < st->ntensors; i++) free((char *)st->tensors[i].name);
  for (size_t i = 0; i < st->nfiles; i++) {
    st_file *f = &st->files[i];
    if (f->mapped) munmap((void *)f->base, f->size);
    for (int k = 0; k < f->n_meta; k++) {
      free(f->meta_keys[k]);
      free(f->meta_vals[k]);
    }
    free(f->meta_keys);
    free(f->meta_vals);
    free(f->path);
  }
  free(st->files);
  free(st->tensors);
  free((void *)st->was_read);
  free(st->index_path);
  cslim_strmap_free(&st->by_name);
  free(st);
}

size_t cslim_st_count(const cslim_st *st) { return st->ntensors; }

const cslim_tensor *cslim_st_at(const cslim_st *st, size_t i) {
  return i < st->ntensors ? &st->tensors[i] : NULL;
}

const cslim_tensor *cslim_st_find(const cslim_st *st, const char *name) {
  int64_t i = cslim_strmap_get(&st->by_name, name);
  return i < 0 ? NULL : &st->tensors[i];
}

const cslim_tensor *cslim_st_findf(const cslim_st *st, const char *fmt, ...) {
  char name[1024];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(name, sizeof name, fmt, ap);
  va_end(ap);
  if (n < 0 || (size_t)n >= sizeof name) return NULL;
  return cslim_st_find(st, name);
}

size_t cslim_st_file_count(const cslim_st *st) { return st->nfiles; }
const char *cslim_st_file_path(const cslim_st *st, size_t i) {
  return i < st->nfiles ? st->files[i].path : NULL;
}
uint64_t cslim_st_file_size(const cslim_st *st, size_t i) {
  return i < st->nfiles ? st->files[i].size : 0;
}
const char *cslim_st_index_path(const cslim_st *st) { return st->index_path; }

const char *cslim_st_metadata(const cslim_st *st, const char *key) {
  for (size_t i = 0; i < st->nfiles; i++)
    for (int k = 0; k < st->files[i].n_meta; k++)
      if (strcmp(st->files[i].meta_keys[k], key) == 0) return st->files[i].meta_vals[k];
  return NULL;
}

uint64_t cslim_st_total_bytes(const cslim_st *st) {
  uint64_t s = 0;
  for (size_t i = 0; i < st->ntensors; i++) s += st->tensors[i].nbytes;
  return s;
}

void cslim_st_note_read(const cslim_st *st, const cslim_tensor *t) {
  cslim_st *s = (cslim_st *)st;
  if (!s->was_read || t < s->tensors || t >= s->tensors + s->ntensors) return; /* not one of this checkpoint's */
  if (!atomic_exchange(&s->was_read[t - s->tensors], 1)) atomic_fetch_add(&s->bytes_read, t->nbytes);
}

void cslim_st_read_f32(cslim_st *st, const cslim_tensor *t, float *dst) {
  cslim_convert_to_f32_mt(t->dtype, t->data, dst, (size_t)t->numel);
  cslim_st_note_read(st, t);
}

uint64_t cslim_st_bytes_read(const cslim_st *st) {
  return atomic_load(&((cslim_st *)st)->bytes_read);
}

/* Page-aligned span covering bytes [off, off+n) of a tensor (widened outward:
 * neighbours' pages are re-faulted from the page cache if needed; the mapping
 * is read-only so nothing is lost). */
static int byte_span(const cslim_st *st, const cslim_tensor *t, uint64_t off, uint64_t n, void **p, size_t *len) {
  const st_file *f = &st->files[t->file];
  if (!f->mapped || n == 0 || off >= t->nbytes) return 0;
  if (n > t->nbytes - off) n = t->nbytes - off;
  uintptr_t a = (uintptr_t)t->data + off, e = a + n;
  uintptr_t ps = (uintptr_t)(g_page_size ? g_page_size : 4096);
  a &= ~(ps - 1);
  e = (e + ps - 1) & ~(ps - 1);
  *p = (void *)a;
  *len = e - a;
  return 1;
}

void cslim_st_prefetch(const cslim_st *st, const cslim_tensor *t) {
  void *p;
  size_t len;
  if (byte_span(st, t, 0, t->nbytes, &p, &len)) madvise(p, len, MADV_WILLNEED);
}

void cslim_st_release(const cslim_st *st, const cslim_tensor *t) {
  cslim_st_release_range(st, t, 0, t->nbytes);
}

void cslim_st_release_range(const cslim_st *st, const cslim_tensor *t, uint64_t offset, uint64_t len) {
  void *p;
  size_t n;
  if (byte_span(st, t, offset, len, &p, &n)) madvise(p, n, MADV_DONTNEED);
}
