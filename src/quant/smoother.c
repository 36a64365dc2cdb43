/* Outlier suppression by per-channel smoothing (spec §3.9–§3.13): channel
 * statistics, the SmoothQuant / iter-smooth scale, flex smooth's α/β search
 * and the fake quantizers the searches score candidates with. Folding the
 * scales into a layer is in transform.c. */
#include "quant/smoother.h"

#include "cslim/quant.h"
#include "model/model_internal.h"
#include "model/repro.h"
#include "quant/gpu_calib.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

int cslim_anti_method_parse(const char *s, cslim_anti_method *out) {
  static const struct {
    const char *n;
    cslim_anti_method m;
  } k[] = {{"m1", CSLIM_ANTI_M1}, {"m2", CSLIM_ANTI_M2}, {"m4", CSLIM_ANTI_M4}, {"m6", CSLIM_ANTI_M6}};
  for (size_t i = 0; i < sizeof k / sizeof k[0]; i++)
    if (!strcmp(s, k[i].n)) {
      *out = k[i].m;
      return 0;
    }
  return -1;
}

const char *cslim_anti_method_name(cslim_anti_method m) {
  static const char *n[] = {"none", "m1", "m2", "m4", "m6"};
  return (unsigned)m < 5 ? n[m] : "?";
}

/* ---- channel statistics ---------------------------------------------------------------------- */

cslim_status cslim_chstats_init(cslim_chstats *s, int n) {
  memset(s, 0, sizeof *s);
  s->n = n;
  s->mn = malloc((size_t)n * sizeof(float));
  s->mx = malloc((size_t)n * sizeof(float));
  if (!s->mn || !s->mx) {
    cslim_chstats_free(s);
    return cslim_error(CSLIM_ERR_NOMEM, "out of memory");
  }
  for (int i = 0; i < n; i++) {
    s->mn[i] = INFINITY;
    s->mx[i] = -INFINITY;
  }
  return CSLIM_OK;
}

void cslim_chstats_update(cslim_chstats *s, const float *x, int rows) {
  const int n = s->n;
#pragma omp parallel for schedule(static) if ((size_t)rows * (size_t)n > 65536)
  for (int c0 = 0; c0 < n; c0 += 64) {
    int c1 = c0 + 64 < n ? c0 + 64 : n;
    for (int r = 0; r < rows; r++) {
      const float *xr = x + (size_t)r * (size_t)n;
      for (int c = c0; c < c1; c++) {
        s->mn[c] = xr[c] < s->mn[c] ? xr[c] : s->mn[c];
        s->mx[c] = xr[c] > s->mx[c] ? xr[c] : s->mx[c];
      }
    }
  }
  s->rows += rows;
}

void cslim_chstats_free(cslim_chstats *s) {
  free(s->mn);
  free(s->mx);
  s->mn = s->mx = NULL;
}

/* ---- scales ------------------------------------------------------------------------------------- */

void cslim_smooth_scale(const float *a, const float *w, int n, double alpha, double smin, float *s) {
  for (int c = 0; c < n; c++) {
    double ac = a[c], wc = w[c] > 1e-5f ? w[c] : 1e-5;
    if (!(ac > 0.0) || !isfinite(ac)) {
      s[c] = 1.0f;
      continue;
    }
    double v = pow(ac, alpha) / pow(wc, 1.0 - alpha);
    s[c] = (float)(v > smin ? v : smin);
  }
}

void smooth_absmax(const cslim_chstats *st, const float *shift, float *a) {
  for (int c = 0; c < st->n; c++) {
    float z = shift ? shift[c] : 0.0f;
    float lo = fabsf(st->mn[c] - z), hi = fabsf(st->mx[c] - z);
    a[c] = lo > hi ? lo : hi;
  }
}

static void col_max_rows(const float *w, int o0, int o1, int in, int absolute, float *p) {
  for (int o = o0; o < o1; o++) {
    const float *r = w + (size_t)o * (size_t)in;
    for (int c = 0; c < in; c++) {
      float v = absolute ? fabsf(r[c]) : r[c];
      p[c] = v > p[c] ? v : p[c];
    }
  }
}

#define COL_MAX_CHUNK 64 /* rows converted at a time by one thread */

/* Column maxima of an [out][in] matrix of dtype dt at base: row blocks, each (when several) into its own partial
 * row on whichever thread, then merged in order — a maximum is exact, so the result depends on nothing else.
 * float32 rows of our own (direct) are read in place; any other (a checkpoint's bytes, maybe unaligned) is converted
 * COL_MAX_CHUNK rows at a time into the block's buffer. Fails only for want of memory for converted rows. */
static int col_max_blocked(const char *base, cslim_dtype dt, int direct, int out, int in, int absolute, float *acc) {
  const size_t es = cslim_dtype_size(dt);
  const int B = out >= 256 ? omp_get_max_threads() : 1;
  float *part = B > 1 ? malloc((size_t)B * (size_t)in * sizeof(float)) : NULL;
  float *tmp = direct ? NULL : malloc((size_t)B * COL_MAX_CHUNK * (size_t)in * sizeof(float));
  if ((B > 1 && !part) || (!direct && !tmp)) {
    free(part), free(tmp);
    if (!direct) return -1;
    col_max_rows((const float *)base, 0, out, in, absolute, acc); /* no memory for the partial rows: one scan */
    return 0;
  }
#pragma omp parallel for schedule(static) if (B > 1)
  for (int b = 0; b < B; b++) {
    float *p = B > 1 ? part + (size_t)b * (size_t)in : acc, *r = direct ? NULL : tmp + (size_t)b * COL_MAX_CHUNK * in;
    if (B > 1)
      for (int c = 0; c < in; c++) p[c] = -INFINITY;
    const int o0 = (int)((int64_t)out * b / B), o1 = (int)((int64_t)out * (b + 1) / B);
    if (direct) {
      col_max_rows((const float *)base, o0, o1, in, absolute, p);
      continue;
    }
    for (int o = o0; o < o1; o += COL_MAX_CHUNK) {
      const int nr = o1 - o < COL_MAX_CHUNK ? o1 - o : COL_MAX_CHUNK;
      cslim_convert_to_f32(dt, base + (size_t)o * (size_t)in * es, r, (size_t)nr * (size_t)in);
      col_max_rows(r, 0, nr, in, absolute, p);
    }
  }
  for (int b = 0; B > 1 && b < B; b++)
    for (int c = 0; c < in; c++) acc[c] = part[(size_t)b * in + c] > acc[c] ? part[(size_t)b * in + c] : acc[c];
  free(part), free(tmp);
  return 0;
}

void smooth_col_max(const float *w, int out, int in, int absolute, float *acc) {
  col_max_blocked((const char *)w, CSLIM_F32, 1, out, in, absolute, acc); /* in place: cannot fail */
}

void smooth_col_absmax(const float *w, int out, int in, float *acc) { smooth_col_max(w, out, in, 1, acc); }

cslim_status smooth_linear_col_max(cslim_model *m, const cslim_linear *l, int absolute, float *acc) {
  if (l->w) {
    smooth_col_max(l->w, l->out, l->in, absolute, acc);
    return CSLIM_OK;
  }
  const cslim_tensor *t = l->src;
  if (!t || cslim_model_linear_type(m, l->name) != CSLIM_QT_FLOAT)
    return cslim_error(CSLIM_ERR_INVALID, "%s: no float weight in the checkpoint to take column maxima of", l->name);
  cslim_st_note_read(m->st, t);
  const size_t es = cslim_dtype_size(t->dtype);
  const int in = l->in, out = l->out, T = omp_get_max_threads();
  if (l->layout == CSLIM_W_COLS_T) {
    /* [E, in, C]: w[o][c] = T[e][c][row0 + o], so column c is a run of `out` values */
    const size_t C = (size_t)t->shape[2];
    const char *base = (const char *)t->data + ((size_t)l->expert * (size_t)in * C + (size_t)l->row0) * es;
    float *tmp = malloc((size_t)T * (size_t)out * sizeof(float));
    if (!tmp) return cslim_error(CSLIM_ERR_NOMEM, "out of memory for the column maxima of %s", l->name);
#pragma omp parallel num_threads(T)
    {
      float *r = tmp + (size_t)omp_get_thread_num() * (size_t)out;
#pragma omp for schedule(static)
      for (int c = 0; c < in; c++) {
        cslim_convert_to_f32(t->dtype, base + (size_t)c * C * es, r, (size_t)out);
        col_max_rows(r, 0, out, 1, absolute, acc + c); /* an [out][1] matrix: its one column */
      }
    }
    free(tmp);
    return CSLIM_OK;
  }
  /* [out, in], or rows row0 .. row0 + out of expert e of [E, R, in] */
  const char *base = (const char *)t->data;
  if (l->layout == CSLIM_W_ROWS)
    base += ((size_t)l->expert * (size_t)t->shape[1] + (size_t)l->row0) * (size_t)in * es;
  if (col_max_blocked(base, t->dtype, 0, out, in, absolute, acc))
    return cslim_error(CSLIM_ERR_NOMEM, "out of memory for the column maxima of %s", l->name);
  return CSLIM_OK;
}

void smooth_flex_scale(const float *a, const float *w, int n, double alpha, double beta, float *s) {
  for (int c = 0; c < n; c++) {
    if (!(a[c] > 0)) {
      s[c] = 1.0f;
      continue;
    }
    double v = pow(a[c], alpha) * pow(w[c] > 1e-5f ? w[c] : 1e-5, -beta);
    s[c] = (float)(v > 1e-5 ? v : 1e-5);
  }
}

/* ---- fake quantization --------------------------------------------------------------------------- */

void fq_rows_sym(float *x, int rows, int n) {
#pragma omp parallel for schedule(static) if (rows > 8)
  for (int r = 0; r < rows; r++) {
    float *v = x + (size_t)r * (size_t)n, m = 0.0f;
    for (int c = 0; c < n; c++) m = fabsf(v[c]) > m ? fabsf(v[c]) : m;
    float s = m / 127.0f;
    if (!(s > 0.0f)) continue;
    float inv = 1.0f / s;
    for (int c = 0; c < n; c++) {
      float q = nearbyintf(v[c] * inv);
      q = q > 127.0f ? 127.0f : q < -127.0f ? -127.0f : q;
      v[c] = q * s;
    }
  }
}

void fq_tensor_asym(float *x, size_t n) {
  float mn = INFINITY, mx = -INFINITY;
#pragma omp parallel for reduction(min : mn) reduction(max : mx) if (n > 65536)
  for (size_t i = 0; i < n; i++) {
    mn = x[i] < mn ? x[i] : mn;
    mx = x[i] > mx ? x[i] : mx;
  }
  float s, o;
  cslim_qparams_asym(mn, mx, 8, &s, &o);
  const float inv = 1.0f / s;
#pragma omp parallel for schedule(static) if (n > 65536)
  for (size_t i = 0; i < n; i++) {
    float q = nearbyintf(x[i] * inv + o);
    q = q > 127.0f ? 127.0f : q < -128.0f ? -128.0f : q;
    x[i] = (q - o) * s;
  }
}

/* ---- flex smooth (m6) ---------------------------------------------------------------------------- */

/* Each candidate's error is scored the same way on any machine, and on the GPU
 * (gpu_layer.h's flex_eval) bit for bit: the ordered product (model/repro.h),
 * per row Σ (y - y_ref)² in double lanes, the rows added in order. */
typedef struct flex_ws {
  const float *X, *a, *w;
  const float *const *W; /* the targets' weights, W[p] [outs[p]][n], one after the other */
  const int *outs;
  int parts, rows, n, out, gpu;
  float *xs, *ws, *y, *s, *yref;
  double *row_err, ref_sq;
} flex_ws;

static double sum_rows(const double *r, int rows) {
  double e = 0.0;
  for (int i = 0; i < rows; i++) e += r[i];
  return e;
}

static cslim_status flex_eval(flex_ws *f, double alpha, double beta, double *err) {
  const int n = f->n;
  smooth_flex_scale(f->a, f->w, n, alpha, beta, f->s); /* the scales the fold will use */
  if (f->gpu) {
    cslim_status rc = cslim_gpu_calib_flex_eval(f->s, f->row_err);
    if (rc) return rc;
  } else {
#pragma omp parallel for schedule(static)
    for (int r = 0; r < f->rows; r++)
      for (int c = 0; c < n; c++) f->xs[(size_t)r * n + c] = f->X[(size_t)r * n + c] / f->s[c];
    for (int p = 0, o0 = 0; p < f->parts; o0 += f->outs[p++]) {
      const float *W = f->W[p];
      float *ws = f->ws + (size_t)o0 * n;
#pragma omp parallel for schedule(static)
      for (int o = 0; o < f->outs[p]; o++)
        for (int c = 0; c < n; c++) ws[(size_t)o * n + c] = W[(size_t)o * n + c] * f->s[c];
    }
    fq_rows_sym(f->xs, f->rows, n);
    fq_rows_sym(f->ws, f->out, n);
    cslim_status rc = cslim_gemm_ordered(1, f->rows, f->out, n, 1.0f, f->xs, n, f->ws, n, f->y, f->out,
                                         omp_get_max_threads());
    if (rc) return rc;
#pragma omp parallel for schedule(static)
    for (int r = 0; r < f->rows; r++)
      f->row_err[r] = cslim_sum_squares(f->y + (size_t)r * f->out, f->yref + (size_t)r * f->out, f->out);
  }
  const double e = sum_rows(f->row_err, f->rows);
  *err = f->ref_sq > 0 ? sqrt(e / f->ref_sq) : 0.0;
  return CSLIM_OK;
}

static void flex_free(flex_ws *f) {
  if (f->gpu) cslim_gpu_calib_flex_end();
  free(f->xs), free(f->ws), free(f->y), free(f->yref), free(f->s), free(f->row_err);
}

cslim_status cslim_flex_search(const float *X, int rows, int n, const float *W, int out, const float *a,
                               const float *w, double *alpha, double *beta, double *err) {
  return cslim_flex_search_parts(X, rows, n, &W, &out, 1, a, w, alpha, beta, err);
}

cslim_status cslim_flex_search_parts(const float *X, int rows, int n, const float *const *W, const int *outs, int parts,
                                     const float *a, const float *w, double *alpha, double *beta, double *err) {
  int out = 0;
  for (int p = 0; p < parts; p++) out += outs[p];
  flex_ws f = {X, a, w, W, outs, parts, rows, n, out, 0, NULL, NULL, NULL, NULL, NULL, NULL, 0};
  f.s = malloc((size_t)n * sizeof(float));
  f.row_err = malloc((size_t)(rows > 0 ? rows : 1) * sizeof(double));
  if (!f.s || !f.row_err) {
    flex_free(&f);
    return cslim_error(CSLIM_ERR_NOMEM, "out of memory for the flex smooth search (%d x %d)", rows, out);
  }
  /* on the GPU while the layer engine runs: X and W uploaded once, each candidate scored there */
  const double t0 = cslim_now();
  int g = cslim_gpu_calib_flex_begin(X, rows, n, W, outs, parts, f.row_err);
  if (g < 0) {
    flex_free(&f);
    return cslim_errcode();
  }
  f.gpu = g;
  if (!f.gpu) {
    f.xs = malloc((size_t)rows * (size_t)n * sizeof(float));
    f.ws = malloc((size_t)out * (size_t)n * sizeof(float));
    f.y = malloc((size_t)rows * (size_t)out * sizeof(float));
    f.yref = malloc((size_t)rows * (size_t)out * sizeof(float));
    cslim_status rc = f.xs && f.ws && f.y && f.yref
                          ? CSLIM_OK
                          : cslim_error(CSLIM_ERR_NOMEM, "out of memory for the flex smooth search (%d x %d)", rows, out);
    /* the reference X·Wᵀ, part by part into its columns (each element one ordered chain: the same as stacked) */
    for (int p = 0, o0 = 0; p < parts && !rc; o0 += outs[p++])
      rc = cslim_gemm_ordered(1, rows, outs[p], n, 1.0f, X, n, W[p], n, f.yref + o0, out, omp_get_max_threads());
    if (rc) {
      flex_free(&f);
      return rc;
    }
#pragma omp parallel for schedule(static)
    for (int r = 0; r < rows; r++) f.row_err[r] = cslim_sum_squares(f.yref + (size_t)r * out, NULL, out);
  }
  f.ref_sq = sum_rows(f.row_err, rows);
  const double t1 = cslim_now();
  /* phase 1: α in 0, 0.05, .., 1 with β = 1 - α (ties: the later α) */
  double best = INFINITY, ba = 0.5, bb = 0.5, e = 0.0;
  cslim_status rc = CSLIM_OK;
  for (int i = 0; i <= 20 && !rc; i++) {
    double al = i * 0.05;
    rc = flex_eval(&f, al, 1.0 - al, &e);
    if (!rc && e <= best) best = e, ba = al, bb = 1.0 - al;
  }
  /* phase 2: β with α fixed, only where it is no worse */
  double b2 = bb;
  for (int i = 0; i <= 20 && !rc; i++) {
    double be = i * 0.05;
    rc = flex_eval(&f, ba, be, &e);
    if (!rc && e <= best) best = e, b2 = be;
  }
  *alpha = ba;
  *beta = b2;
  *err = best;
  flex_free(&f);
  CSLIM_DEBUG("flex search [%d x %d] x [%d x %d]%s: set-up %.3f s, 42 candidates %.3f s", rows, n, out, n,
              g ? " on the GPU" : "", t1 - t0, cslim_now() - t1);
  return rc;
}
