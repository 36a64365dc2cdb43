/* cslim compress / decompress: W8A8S ↔ W8A8SC checkpoints (spec §3.16,
 * cslim/compress.h, docs/sparse.md). One tensor at a time from the mapped
 * input; each compressed weight is encoded twice (once to size the declared
 * tensors, once to write them) so memory stays at one weight. */
#include "cslim/compress.h"

#include "core/strutil.h"
#include "cslim/safetensors.h"
#include "cslim/scheme.h"
#include "cslim/staging.h"
#include "export/exporter.h"
#include "io/json_util.h"
#include "quant/qcheckpoint.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* row-parallel Linears are split by input columns, the others by output rows */
static int row_parallel(const char *lin) {
  return cslim_ends_with(lin, ".o_proj") || cslim_ends_with(lin, ".down_proj") || cslim_ends_with(lin, ".attn.proj") ||
         cslim_ends_with(lin, ".linear_fc2");
}

/* "<lin>.<suffix>" → lin (NULL when the name has no such suffix) */
static const char *lin_of(const char *name, const char *suffix, char *buf, size_t cap) {
  if (!cslim_ends_with(name, suffix)) return NULL;
  size_t l = strlen(name) - strlen(suffix);
  if (l + 1 > cap) return NULL;
  memcpy(buf, name, l);
  buf[l] = '\0';
  return buf;
}

static int label_is(const cslim_qdesc *d, const char *name, cslim_qtype want) {
  cslim_qtype t;
  return cslim_qdesc_label(d, name, &t) == 0 && t == want;
}

/* the W8A8S weight of Linear lin, or NULL */
static const cslim_tensor *sparse_weight(const cslim_st *st, const cslim_qdesc *d, const char *lin) {
  char n[512];
  snprintf(n, sizeof n, "%s.weight", lin);
  const cslim_tensor *t = cslim_st_find(st, n);
  return t && t->dtype == CSLIM_I8 && t->ndim == 2 && label_is(d, n, CSLIM_QT_W8A8S) ? t : NULL;
}


/* the source description, edited in place (order and indentation kept): compress marks each compressed
 * weight W8A8SC and adds its index / info after it; decompress undoes that. */
static int json_indent(const char *path) {
  char *txt = NULL;
  size_t len = 0;
  int n = 2;
  if (cslim_read_file(path, &txt, &len) == CSLIM_OK) {
    const char *nl = strchr(txt, '\n');
    if (nl) {
      int c = 0;
      while (nl[1 + c] == ' ') c++;
      if (c > 0) n = c;
    }
  }
  free(txt);
  return n;
}

static cJSON *insert_after(cJSON *obj, cJSON *cur, const char *key, const char *val) {
  cJSON *it = cJSON_CreateString(val);
  if (!it || !(it->string = strdup(key))) {
    cJSON_Delete(it);
    return NULL;
  }
  it->prev = cur;
  it->next = cur->next;
  if (cur->next) cur->next->prev = it;
  else obj->child->prev = it;
  cur->next = it;
  return it;
}

static cslim_status write_desc(const cslim_qdesc *src, const cslim_st *st, const char *dir, int compress) {
  cJSON *d = NULL;
  cslim_status rc = cslim_json_load_file(cslim_qdesc_path(src), &d);
  if (rc) return rc;
  char lin[512], nm[600];
  for (cJSON *e = d->child, *next; e && !rc; e = next) {
    next = e->next;
    if (!e->string || !cJSON_IsString(e)) continue;
    if (!strcmp(e->string, "model_quant_type")) {
      cJSON_SetValuestring(e, compress ? "W8A8SC" : "W8A8S");
    } else if (compress && lin_of(e->string, ".weight", lin, sizeof lin) && sparse_weight(st, src, lin)) {
      cJSON_SetValuestring(e, "W8A8SC");
      snprintf(nm, sizeof nm, "%s.index", lin);
      cJSON *ix = insert_after(d, e, nm, "W8A8SC");
      snprintf(nm, sizeof nm, "%s.info", lin);
      if (!ix || !insert_after(d, ix, nm, "W8A8SC")) rc = cslim_error(CSLIM_ERR_NOMEM, "out of memory");
    } else if (!compress && !strcmp(e->valuestring, "W8A8SC")) {
      if (cslim_ends_with(e->string, ".index") || cslim_ends_with(e->string, ".info")) cJSON_Delete(cJSON_DetachItemViaPointer(d, e));
      else cJSON_SetValuestring(e, "W8A8S");
    }
  }
  char *txt = rc ? NULL : cslim_json_dump(d, json_indent(cslim_qdesc_path(src)));
  cJSON_Delete(d);
  if (rc) return rc;
  if (!txt) return cslim_error(CSLIM_ERR_NOMEM, "out of memory");
  char path[4352];
  snprintf(path, sizeof path, "%s/quant_model_description.json", dir);
  rc = cslim_write_text(path, txt);
  free(txt);
  return rc;
}

/* ---- compress ---------------------------------------------------------------------------------------- */

typedef struct rank_slice {
  int n, k;        /* the slice */
  int8_t *codes;   /* [n][k] */
  int8_t *nz;
  size_t nz_len;
} rank_slice;

static cslim_status make_slice(const cslim_tensor *w, int row_split, int tp, int r, rank_slice *s) {
  const int N = (int)w->shape[0], K = (int)w->shape[1];
  s->n = row_split ? N : N / tp;
  s->k = row_split ? K / tp : K;
  s->nz_len = cslim_nz_size(s->n, s->k);
  s->codes = malloc((size_t)s->n * (size_t)s->k);
  s->nz = malloc(s->nz_len);
  if (!s->codes || !s->nz) {
    free(s->codes), free(s->nz);
    return cslim_error(CSLIM_ERR_NOMEM, "out of memory");
  }
  const int8_t *src = w->data;
  for (int i = 0; i < s->n; i++) {
    size_t row = row_split ? (size_t)i : (size_t)r * (size_t)s->n + (size_t)i;
    size_t col = row_split ? (size_t)r * (size_t)s->k : 0;
    memcpy(s->codes + (size_t)i * s->k, src + row * (size_t)K + col, (size_t)s->k);
  }
  cslim_nd2nz(s->codes, s->n, s->k, s->nz);
  return CSLIM_OK;
}

static void free_slice(rank_slice *s) {
  free(s->codes), free(s->nz);
  memset(s, 0, sizeof *s);
}

/* quant_bias of rank r for a row split: its columns' offset correction, plus the bias part on rank 0 */
static cslim_status row_quant_bias(cslim_st *st, const cslim_qdesc *d, const char *lin, const cslim_tensor *qb,
                                   const cslim_tensor *w, int tp, int r, int32_t *out) {
  char n[512];
  snprintf(n, sizeof n, "%s.input_offset", lin);
  const cslim_tensor *io = cslim_st_find(st, n);
  float off = io ? cslim_tensor_f32_at(io, 0) : 0.0f;
  if (off != nearbyintf(off)) return cslim_error(CSLIM_ERR_FORMAT, "%s: input_offset %g is not an integer", lin, off);
  const int N = (int)w->shape[0], K = (int)w->shape[1], kr = K / tp;
  const int8_t *W = w->data;
  const int32_t *q = qb->data;
  (void)d;
  for (int i = 0; i < N; i++) {
    int64_t all = 0, mine = 0;
    for (int j = 0; j < K; j++) {
      all += W[(size_t)i * K + j];
      if (j / kr == r) mine += W[(size_t)i * K + j];
    }
    int64_t v = -(int64_t)off * mine + (r == 0 ? (int64_t)q[i] + (int64_t)off * all : 0);
    if (v < INT32_MIN || v > INT32_MAX) return cslim_error(CSLIM_ERR_UNSUPPORTED, "%s.quant_bias: rank %d's share overflows int32", lin, r);
    out[i] = (int32_t)v;
  }
  return CSLIM_OK;
}

typedef enum { T_COPY, T_SC, T_ROWS, T_ROW_QB } tkind;

static tkind classify(const cslim_st *st, const cslim_qdesc *d, const cslim_tensor *t, char *lin, size_t cap,
                      const cslim_tensor **w) {
  *w = NULL;
  if (lin_of(t->name, ".weight", lin, cap) && (*w = sparse_weight(st, d, lin))) return T_SC;
  const char *l = lin_of(t->name, ".deq_scale", lin, cap);
  if (!l) l = lin_of(t->name, ".quant_bias", lin, cap);
  if (l && (*w = sparse_weight(st, d, l)) && t->ndim == 1 && t->shape[0] == (*w)->shape[0]) {
    if (!row_parallel(l)) return T_ROWS;
    return cslim_ends_with(t->name, ".quant_bias") ? T_ROW_QB : T_COPY;
  }
  return T_COPY;
}

static cslim_status compress_rank(cslim_st *st, const cslim_qdesc *d, const char *src_dir, const char *dir, int tp,
                                  int r, cslim_compress_report *rep) {
  if (mkdir(dir, 0755)) return cslim_error(CSLIM_ERR_IO, "%s: cannot create the directory", dir);
  cslim_st_writer *wr = NULL;
  cslim_status rc = cslim_st_writer_create(dir, "quant_model_weight_w8a8sc", 0, &wr);
  char lin[512], nm[600];
  const size_t nt = cslim_st_count(st);
  /* declare */
  for (size_t i = 0; i < nt && !rc; i++) {
    const cslim_tensor *t = cslim_st_at(st, i), *w;
    tkind k = classify(st, d, t, lin, sizeof lin, &w);
    if (k == T_SC) {
      rank_slice s;
      if ((rc = make_slice(w, row_parallel(lin), tp, r, &s))) break;
      int64_t len = (int64_t)cslim_sc_encoded_size(s.nz, s.nz_len), ilen = (int64_t)(s.nz_len / 512 * 4), five = 5;
      free_slice(&s);
      if (len <= 0) {
        rc = cslim_error(CSLIM_ERR_INVALID, "%s: cannot encode", t->name);
        break;
      }
      rc = cslim_st_writer_declare(wr, t->name, CSLIM_I8, 1, &len);
      snprintf(nm, sizeof nm, "%s.index", lin);
      if (!rc) rc = cslim_st_writer_declare(wr, nm, CSLIM_I8, 1, &ilen);
      snprintf(nm, sizeof nm, "%s.info", lin);
      if (!rc) rc = cslim_st_writer_declare(wr, nm, CSLIM_I64, 1, &five);
      continue;
    }
    int64_t shape[CSLIM_MAX_DIMS];
    memcpy(shape, t->shape, sizeof shape);
    if (k == T_ROWS) shape[0] /= tp;
    rc = cslim_st_writer_declare(wr, t->name, t->dtype, t->ndim, shape);
  }
  if (!rc) rc = cslim_st_writer_begin(wr);
  /* write */
  for (size_t i = 0; i < nt && !rc; i++) {
    const cslim_tensor *t = cslim_st_at(st, i), *w;
    tkind k = classify(st, d, t, lin, sizeof lin, &w);
    if (k == T_SC) {
      rank_slice s;
      cslim_sc_stream cs;
      if ((rc = make_slice(w, row_parallel(lin), tp, r, &s))) break;
      rc = cslim_sc_encode(s.nz, s.nz_len, &cs);
      if (!rc) {
        int64_t info[5] = {1, 1, s.k, s.n, 1};
        rc = cslim_st_writer_put(wr, t->name, cs.data);
        snprintf(nm, sizeof nm, "%s.index", lin);
        if (!rc) rc = cslim_st_writer_put(wr, nm, cs.index);
        snprintf(nm, sizeof nm, "%s.info", lin);
        if (!rc) rc = cslim_st_writer_put(wr, nm, info);
        rep->n_weights += r == 0;
        rep->codes_bytes += (uint64_t)s.n * (uint64_t)s.k;
        rep->stream_bytes += cs.len + cs.index_len + sizeof info;
        cslim_sc_stream_free(&cs);
      }
      free_slice(&s);
    } else if (k == T_ROWS) {
      size_t part = t->nbytes / (size_t)tp;
      rc = cslim_st_writer_put(wr, t->name, (const char *)t->data + (size_t)r * part);
    } else if (k == T_ROW_QB) {
      int32_t *qb = malloc((size_t)t->numel * sizeof(int32_t));
      if (!qb) rc = cslim_error(CSLIM_ERR_NOMEM, "out of memory");
      if (!rc && t->dtype != CSLIM_I32) rc = cslim_error(CSLIM_ERR_FORMAT, "%s: quant_bias must be int32", t->name);
      if (!rc) rc = row_quant_bias(st, d, lin_of(t->name, ".quant_bias", lin, sizeof lin), t, w, tp, r, qb);
      if (!rc) rc = cslim_st_writer_put(wr, t->name, qb);
      free(qb);
    } else {
      rc = cslim_st_writer_put(wr, t->name, t->data);
    }
    if (rc) cslim_error_context("%s", t->name);
  }
  if (!rc) rc = cslim_st_writer_finish(wr);
  if (!rc) rep->bytes_written += cslim_st_writer_bytes_written(wr);
  cslim_st_writer_free(wr);
  if (!rc) rc = write_desc(d, st, dir, 1);
  if (!rc) rc = cslim_copy_model_files(src_dir, dir, 1);
  return rc;
}

cslim_status cslim_compress(const cslim_compress_params *p, cslim_compress_report *rep) {
  memset(rep, 0, sizeof *rep);
  double t0 = cslim_now();
  if (p->tp < 1 || p->tp > 64) return cslim_error(CSLIM_ERR_INVALID, "--tp %d is not in 1 .. 64", p->tp);
  cslim_st *st = NULL;
  cslim_qdesc *d = NULL;
  cslim_staging *sg = NULL;
  cslim_status rc = cslim_st_open(p->model_path, &st);
  if (!rc) rc = cslim_qdesc_load(p->model_path, &d);
  if (!rc && !d) rc = cslim_error(CSLIM_ERR_INVALID, "%s: no quant_model_description*.json: not a quantized checkpoint",
                                  p->model_path);
  int n_sparse = 0;
  char lin[512];
  for (size_t i = 0; !rc && i < cslim_st_count(st); i++) {
    const cslim_tensor *t = cslim_st_at(st, i), *w;
    if (classify(st, d, t, lin, sizeof lin, &w) != T_SC) continue;
    n_sparse++;
    int rs = row_parallel(lin);
    int64_t dim = rs ? w->shape[1] : w->shape[0];
    if (dim % p->tp)
      rc = cslim_error(CSLIM_ERR_INVALID, "%s: %s %lld does not split into %d tensor-parallel ranks", t->name,
                       rs ? "input width" : "output rows", (long long)dim, p->tp);
  }
  if (!rc && !n_sparse)
    rc = cslim_error(CSLIM_ERR_INVALID, "%s: no W8A8S weights to compress (quantize with --quant_type w8a8s, "
                     "or quant-vl --w_bit 4 --a_bit 8 --is_lowbit True)", p->model_path);
  if (!rc) rc = cslim_staging_open(p->save_path, p->overwrite, &sg);
  for (int r = 0; !rc && r < p->tp; r++) {
    char dir[4352];
    snprintf(dir, sizeof dir, "%s/part%d-of-%d", cslim_staging_path(sg), r, p->tp);
    rc = compress_rank(st, d, p->model_path, dir, p->tp, r, rep);
    if (rc) cslim_error_context("rank %d", r);
  }
  if (!rc) {
    snprintf(rep->out_dir, sizeof rep->out_dir, "%s", cslim_staging_target(sg));
    rc = cslim_staging_commit(sg);
    sg = NULL;
  }
  if (sg) cslim_staging_abort(sg);
  rep->tp = p->tp;
  if (st) rep->bytes_read = cslim_st_total_bytes(st);
  cslim_qdesc_free(d);
  cslim_st_close(st);
  rep->seconds = cslim_now() - t0;
  return rc;
}

/* ---- decompress ------------------------------------------------------------------------------------ */

typedef struct part {
  cslim_st *st;
  cslim_qdesc *d;
} part;

static cslim_status open_parts(const char *dir, part **out, int *tp) {
  *out = NULL;
  *tp = 0;
  DIR *dh = opendir(dir);
  if (!dh) return cslim_error(CSLIM_ERR_IO, "%s: cannot open the directory", dir);
  struct dirent *de;
  int n = 0, count = 0;
  while ((de = readdir(dh)) != NULL) {
    int r, t;
    char tail;
    if (sscanf(de->d_name, "part%d-of-%d%c", &r, &t, &tail) != 2 || t < 1 || r < 0 || r >= t) continue;
    if (n && t != n) {
      closedir(dh);
      return cslim_error(CSLIM_ERR_FORMAT, "%s: parts of different tensor-parallel degrees (%d and %d)", dir, n, t);
    }
    n = t;
    count++;
  }
  closedir(dh);
  if (!n) return cslim_error(CSLIM_ERR_FORMAT, "%s: no part<r>-of-<N> directories (the output of cslim compress)", dir);
  if (count != n) return cslim_error(CSLIM_ERR_FORMAT, "%s: %d of %d rank directories present", dir, count, n);
  part *ps = calloc((size_t)n, sizeof *ps);
  if (!ps) return cslim_error(CSLIM_ERR_NOMEM, "out of memory");
  cslim_status rc = CSLIM_OK;
  for (int r = 0; r < n && !rc; r++) {
    char p[4352];
    snprintf(p, sizeof p, "%s/part%d-of-%d", dir, r, n);
    rc = cslim_st_open(p, &ps[r].st);
    if (!rc) rc = cslim_qdesc_load(p, &ps[r].d);
    if (!rc && !ps[r].d) rc = cslim_error(CSLIM_ERR_FORMAT, "%s: no quant_model_description.json", p);
  }
  *out = ps;
  *tp = n;
  return rc;
}

static void close_parts(part *ps, int n) {
  for (int r = 0; ps && r < n; r++) {
    cslim_st_close(ps[r].st);
    cslim_qdesc_free(ps[r].d);
  }
  free(ps);
}

/* the slice dims of rank r's W8A8SC weight of lin */
static cslim_status rank_dims(const part *ps, int r, const char *lin, int *n, int *k) {
  char nm[600];
  snprintf(nm, sizeof nm, "%s.info", lin);
  const cslim_tensor *t = cslim_st_find(ps[r].st, nm);
  if (!t || t->dtype != CSLIM_I64 || t->numel != 5)
    return cslim_error(CSLIM_ERR_FORMAT, "rank %d: %s missing or not int64 [5]", r, nm);
  int64_t info[5];
  memcpy(info, t->data, sizeof info);
  if (info[2] <= 0 || info[3] <= 0 || info[2] > (1 << 24) || info[3] > (1 << 24))
    return cslim_error(CSLIM_ERR_FORMAT, "rank %d: %s has dims %lld x %lld", r, nm, (long long)info[3],
                       (long long)info[2]);
  *k = (int)info[2];
  *n = (int)info[3];
  return CSLIM_OK;
}

/* full [N][K] codes of lin from every rank */
static cslim_status gather_weight(const part *ps, int tp, const char *lin, int N, int K, int8_t *full) {
  int rs = row_parallel(lin);
  cslim_status rc = CSLIM_OK;
  for (int r = 0; r < tp && !rc; r++) {
    int n, k;
    if ((rc = rank_dims(ps, r, lin, &n, &k))) break;
    char wn[600], in[600];
    snprintf(wn, sizeof wn, "%s.weight", lin);
    snprintf(in, sizeof in, "%s.index", lin);
    const cslim_tensor *w = cslim_st_find(ps[r].st, wn), *ix = cslim_st_find(ps[r].st, in);
    if (!w || !ix) {
      rc = cslim_error(CSLIM_ERR_FORMAT, "rank %d: %s or %s missing", r, wn, in);
      break;
    }
    size_t nzl = cslim_nz_size(n, k);
    int8_t *nz = malloc(nzl), *codes = malloc((size_t)n * (size_t)k);
    if (!nz || !codes) rc = cslim_error(CSLIM_ERR_NOMEM, "out of memory");
    if (!rc) rc = cslim_sc_decode(w->data, w->nbytes, ix->data, ix->nbytes, nz, nzl);
    if (!rc) {
      cslim_nz2nd(nz, n, k, codes);
      for (int i = 0; i < n; i++) {
        size_t row = rs ? (size_t)i : (size_t)r * (size_t)n + (size_t)i, col = rs ? (size_t)r * (size_t)k : 0;
        memcpy(full + row * (size_t)K + col, codes + (size_t)i * k, (size_t)k);
      }
    }
    free(nz), free(codes);
    if (rc) cslim_error_context("rank %d: %s", r, wn);
  }
  return rc;
}

/* N, K of the whole weight, checked against every rank */
static cslim_status whole_dims(const part *ps, int tp, const char *lin, int *N, int *K) {
  int rs = row_parallel(lin), n0, k0;
  cslim_status rc = rank_dims(ps, 0, lin, &n0, &k0);
  for (int r = 1; r < tp && !rc; r++) {
    int n, k;
    if ((rc = rank_dims(ps, r, lin, &n, &k))) break;
    if (n != n0 || k != k0) rc = cslim_error(CSLIM_ERR_FORMAT, "%s: rank %d holds %d x %d, rank 0 %d x %d", lin, r, n, k, n0, k0);
  }
  *N = rs ? n0 : n0 * tp;
  *K = rs ? k0 * tp : k0;
  return rc;
}

cslim_status cslim_decompress(const cslim_compress_params *p, cslim_compress_report *rep) {
  memset(rep, 0, sizeof *rep);
  double t0 = cslim_now();
  part *ps = NULL;
  int tp = 0;
  cslim_staging *sg = NULL;
  cslim_st_writer *wr = NULL;
  cslim_status rc = open_parts(p->model_path, &ps, &tp);
  if (!rc) rc = cslim_staging_open(p->save_path, p->overwrite, &sg);
  if (!rc) rc = cslim_st_writer_create(cslim_staging_path(sg), "quant_model_weight_w8a8s", 0, &wr);
  const cslim_st *s0 = ps ? ps[0].st : NULL;
  const cslim_qdesc *d0 = ps ? ps[0].d : NULL;
  char lin[512];
  /* declare, in rank 0's order */
  for (int pass = 0; pass < 2 && !rc; pass++) {
    for (size_t i = 0; !rc && i < cslim_st_count(s0); i++) {
      const cslim_tensor *t = cslim_st_at(s0, i);
      int sc = label_is(d0, t->name, CSLIM_QT_W8A8SC);
      if (sc && (cslim_ends_with(t->name, ".index") || cslim_ends_with(t->name, ".info"))) continue;
      if (sc && lin_of(t->name, ".weight", lin, sizeof lin)) {
        int N, K;
        if ((rc = whole_dims(ps, tp, lin, &N, &K))) break;
        if (pass == 0) {
          int64_t shape[2] = {N, K};
          rc = cslim_st_writer_declare(wr, t->name, CSLIM_I8, 2, shape);
        } else {
          int8_t *full = malloc((size_t)N * (size_t)K);
          rc = full ? gather_weight(ps, tp, lin, N, K, full) : cslim_error(CSLIM_ERR_NOMEM, "out of memory");
          if (!rc) rc = cslim_st_writer_put(wr, t->name, full);
          free(full);
          rep->n_weights++;
          rep->codes_bytes += (uint64_t)N * (uint64_t)K;
        }
        continue;
      }
      /* deq_scale / quant_bias of a compressed Linear: rows gathered (column split) or summed (row split) */
      const char *l = lin_of(t->name, ".deq_scale", lin, sizeof lin);
      if (!l) l = lin_of(t->name, ".quant_bias", lin, sizeof lin);
      char wn[600] = "";
      if (l) snprintf(wn, sizeof wn, "%s.weight", l);
      int of_sc = l && label_is(d0, wn, CSLIM_QT_W8A8SC) && t->ndim == 1;
      int gather = of_sc && !row_parallel(l), sum = of_sc && row_parallel(l) && cslim_ends_with(t->name, ".quant_bias");
      if (pass == 0) {
        int64_t shape[CSLIM_MAX_DIMS];
        memcpy(shape, t->shape, sizeof shape);
        if (gather) shape[0] *= tp;
        rc = cslim_st_writer_declare(wr, t->name, t->dtype, t->ndim, shape);
        continue;
      }
      if (!gather && !sum) {
        rc = cslim_st_writer_put(wr, t->name, t->data);
        continue;
      }
      char *buf = malloc(t->nbytes * (size_t)tp);
      if (!buf) {
        rc = cslim_error(CSLIM_ERR_NOMEM, "out of memory");
        break;
      }
      if (sum && t->dtype != CSLIM_I32) rc = cslim_error(CSLIM_ERR_FORMAT, "%s: quant_bias must be int32", t->name);
      int64_t *acc = sum ? calloc((size_t)t->numel, sizeof *acc) : NULL;
      if (sum && !acc) rc = cslim_error(CSLIM_ERR_NOMEM, "out of memory");
      for (int r = 0; r < tp && !rc; r++) {
        const cslim_tensor *tr = cslim_st_find(ps[r].st, t->name);
        if (!tr || tr->nbytes != t->nbytes || tr->dtype != t->dtype) {
          rc = cslim_error(CSLIM_ERR_FORMAT, "rank %d: %s missing or of another shape", r, t->name);
          break;
        }
        if (gather) memcpy(buf + (size_t)r * t->nbytes, tr->data, t->nbytes);
        else
          for (int64_t j = 0; j < t->numel; j++) acc[j] += ((const int32_t *)tr->data)[j];
      }
      if (!rc && sum) {
        int32_t *o = (int32_t *)buf;
        for (int64_t j = 0; j < t->numel && !rc; j++) {
          if (acc[j] < INT32_MIN || acc[j] > INT32_MAX) rc = cslim_error(CSLIM_ERR_FORMAT, "%s: sum overflows", t->name);
          o[j] = (int32_t)acc[j];
        }
      }
      if (!rc) rc = cslim_st_writer_put(wr, t->name, buf);
      free(buf);
      free(acc);
    }
    if (!rc && pass == 0) rc = cslim_st_writer_begin(wr);
  }
  if (!rc) rc = cslim_st_writer_finish(wr);
  if (!rc) rep->bytes_written = cslim_st_writer_bytes_written(wr);
  cslim_st_writer_free(wr);
  if (!rc) rc = write_desc(d0, s0, cslim_staging_path(sg), 0);
  if (!rc) {
    char p0[4352];
    snprintf(p0, sizeof p0, "%s/part0-of-%d", p->model_path, tp);
    rc = cslim_copy_model_files(p0, cslim_staging_path(sg), 1);
  }
  if (!rc) {
    snprintf(rep->out_dir, sizeof rep->out_dir, "%s", cslim_staging_target(sg));
    rc = cslim_staging_commit(sg);
    sg = NULL;
  }
  if (sg) cslim_staging_abort(sg);
  for (int r = 0; ps && r < tp; r++) rep->bytes_read += ps[r].st ? cslim_st_total_bytes(ps[r].st) : 0;
  close_parts(ps, tp);
  rep->tp = tp;
  rep->seconds = cslim_now() - t0;
  return rc;
}
