/* Transforms: Hadamard matrices of every order the family needs (Paley I /
 * II, Sylvester), the fast rotation against its dense matrix, the block and
 * shifted-block variants, seeding, the smoothing scale formulas and flex
 * smooth's search, and the transforms fed with statistics gathered elsewhere (the GPU
 * engine's route). Invariance of whole models is tested in cli_transform.sh. */
#include "testutil.h"

#include "cslim/transform.h"
#include "model/model_internal.h"
#include "quant/smoother.h"
#include "quant/xform.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- statistics from elsewhere (the GPU engine's route) ------------------------------------------------ */

typedef struct obs_ctx {
  cslim_model *m;
  cslim_acts *a;
  cslim_chstats *st;
  int n;
  float **sample; /* m2 / m6: the first cap rows of each group's input */
  int *sample_rows, cap;
} obs_ctx;

static cslim_status chstats_hook(void *ctx, const cslim_linear_group *g, float *x, int rows) {
  obs_ctx *c = ctx;
  const int k = (int)g->kind;
  if (g->expert >= 0) { /* an expert's down input: group 5 + 2e + 1 */
    const int gi = 5 + 2 * g->expert + 1;
    if (k == CSLIM_IN_DOWN && gi < c->n && c->st[gi].mn) cslim_chstats_update(&c->st[gi], x, rows);
    return CSLIM_OK;
  }
  if (k >= c->n || k > CSLIM_IN_DOWN || !c->st[k].mn) return CSLIM_OK;
  cslim_chstats_update(&c->st[k], x, rows);
  if (c->sample && c->sample[k] && c->sample_rows[k] < c->cap) {
    const int w = c->st[k].n, take = c->cap - c->sample_rows[k] < rows ? c->cap - c->sample_rows[k] : rows;
    memcpy(c->sample[k] + (size_t)c->sample_rows[k] * w, x, (size_t)take * w * sizeof(float));
    c->sample_rows[k] += take;
  }
  return CSLIM_OK;
}

/* an observer computing the same statistics (and samples) as the CPU pass, handed in from outside */
static cslim_status observe_on_cpu(void *ctx, cslim_layer *l, cslim_chstats *st, int n, float **sample,
                                   int *sample_rows, int cap) {
  obs_ctx *c = ctx;
  c->st = st;
  c->n = n;
  c->sample = sample, c->sample_rows = sample_rows, c->cap = cap;
  for (int g = 0; sample && g < c->n && g <= CSLIM_IN_DOWN; g++) sample_rows[g] = 0;
  cslim_hooks h = {c, chstats_hook, NULL};
  return cslim_layer_observe(c->m, l, c->a, &h);
}

/* everything a transform can change in a layer, as one array of floats: norms (and shifts), the
 * Linears' weights and biases, every expert converted now (through the transforms' hook, which
 * belongs to the one xform in use) */
static float *layer_snapshot(cslim_model *m, cslim_layer *l, size_t *n) {
  const int H = m->cfg.text.hidden_size;
  cslim_linear *lin[7] = {&l->q, &l->k, &l->v, &l->o, &l->gate, &l->up, &l->down};
  const int nl = l->is_moe ? 4 : 7, ne = l->is_moe ? 3 * l->n_experts : 0;
  size_t tot = 4 * (size_t)H;
  for (int i = 0; i < nl; i++) tot += (size_t)lin[i]->out * ((size_t)lin[i]->in + 1);
  for (int i = 0; i < ne; i++) tot += (size_t)l->experts[i].out * (size_t)l->experts[i].in;
  float *v = calloc(tot, sizeof(float)), *p = v;
  assert_non_null(v);
  memcpy(p, l->input_norm, (size_t)H * 4), p += H;
  memcpy(p, l->post_norm, (size_t)H * 4), p += H;
  if (l->input_norm_b) memcpy(p, l->input_norm_b, (size_t)H * 4);
  p += H;
  if (l->post_norm_b) memcpy(p, l->post_norm_b, (size_t)H * 4);
  p += H;
  for (int i = 0; i < nl; i++) {
    memcpy(p, lin[i]->w, (size_t)lin[i]->out * (size_t)lin[i]->in * 4), p += (size_t)lin[i]->out * (size_t)lin[i]->in;
    if (lin[i]->b) memcpy(p, lin[i]->b, (size_t)lin[i]->out * 4);
    p += lin[i]->out;
  }
  for (int i = 0; i < ne; i++) {
    cslim_linear *e = &l->experts[i];
    const int had = e->w != NULL;
    assert_int_equal(cslim_linear_materialize(m, e), CSLIM_OK);
    memcpy(p, e->w, (size_t)e->out * (size_t)e->in * 4), p += (size_t)e->out * (size_t)e->in;
    if (!had) cslim_linear_release(m, e);
  }
  *n = tot;
  return v;
}

/* cslim_xform_layer_observed with the statistics (and samples) of the CPU pass transforms layer
 * `li` exactly as cslim_xform_layer does, and the transforms changed it */
static void observed_matches(cslim_model *m, const cslim_quant_params *p, cslim_acts *a, int li) {
  size_t n0, na, nb;
  cslim_layer *l;
  assert_int_equal(cslim_layer_load(m, li, &l), CSLIM_OK);
  float *v0 = layer_snapshot(m, l, &n0); /* no transforms */
  cslim_layer_free(m, l);
  cslim_xform *x;
  assert_int_equal(cslim_xform_create(m, p, &x), CSLIM_OK);
  assert_int_equal(cslim_layer_load(m, li, &l), CSLIM_OK);
  assert_int_equal(cslim_xform_layer(x, l, a), CSLIM_OK);
  float *va = layer_snapshot(m, l, &na);
  cslim_xform_layer_done(x);
  cslim_layer_free(m, l);
  cslim_xform_free(x);
  assert_int_equal(cslim_xform_create(m, p, &x), CSLIM_OK);
  assert_int_equal(cslim_layer_load(m, li, &l), CSLIM_OK);
  obs_ctx oc = {m, a, NULL, 0, NULL, NULL, 0};
  assert_int_equal(cslim_xform_layer_observed(x, l, a, observe_on_cpu, &oc), CSLIM_OK);
  float *vb = layer_snapshot(m, l, &nb);
  cslim_xform_layer_done(x);
  cslim_layer_free(m, l);
  cslim_xform_free(x);
  assert_true(na == nb && na == n0);
  if (memcmp(va, vb, na * sizeof(float))) {
    size_t i = 0;
    while (va[i] == vb[i]) i++;
    fail_msg("layer %d: the observed route differs at float %zu of %zu", li, i, na);
  }
  assert_true(memcmp(v0, va, na * sizeof(float)) != 0); /* the smoothing changed the layer */
  if (p->anti_experts) { /* and the experts: the last 3E matrices */
    const int H = m->cfg.text.hidden_size, NI = m->cfg.text.moe_intermediate_size, E = m->cfg.text.num_experts;
    const size_t ex = (size_t)3 * E * H * NI;
    assert_true(memcmp(v0 + na - ex, va + na - ex, ex * sizeof(float)) != 0);
  }
  free(v0), free(va), free(vb);
}

/* the GPU engine's route: QuaRot + m4 (with its shift), m2 (a search over samples, its shift in the
 * biases), m6 with fewer sample rows than the set has, on tiny-qwen3; m4 with every expert's
 * up-down on tiny-qwen3-moe */
static void test_observed_statistics(void **s) {
  (void)s;
  cslim_model *m;
  assert_int_equal(cslim_model_open(tu_fixture("models/tiny-qwen3"), &m), CSLIM_OK);
  cslim_quant_params p;
  cslim_quant_params_default(&p);
  p.calib_data = "(statistics from the acts below)";
  int32_t ids[96];
  for (int i = 0; i < 96; i++) ids[i] = (i * 37 + 11) % 4000;
  int lens[2] = {60, 36};
  cslim_acts *a;
  assert_int_equal(cslim_acts_embed(m, ids, lens, 2, &a), CSLIM_OK);
  p.anti_method = CSLIM_ANTI_M4;
  p.rot = 1;
  cslim_xform *xr;
  assert_int_equal(cslim_xform_create(m, &p, &xr), CSLIM_OK);
  assert_int_equal(cslim_xform_acts(xr, a), CSLIM_OK); /* the rows as the rotated model sees them */
  cslim_xform_free(xr);
  observed_matches(m, &p, a, 1);
  p.anti_method = CSLIM_ANTI_M2;
  observed_matches(m, &p, a, 0);
  p.anti_method = CSLIM_ANTI_M6;
  p.anti_tokens = 50; /* fewer than the 96 rows: the samples are the first 50 */
  observed_matches(m, &p, a, 2);
  cslim_acts_free(a);
  cslim_model_close(m);

  assert_int_equal(cslim_model_open(tu_fixture("models/tiny-qwen3-moe"), &m), CSLIM_OK);
  cslim_quant_params_default(&p);
  p.calib_data = "(statistics from the acts below)";
  p.anti_method = CSLIM_ANTI_M4;
  p.anti_experts = 1; /* v1 iter_smooth: every expert's up -> down, statistics from the MoE block */
  assert_int_equal(cslim_acts_embed(m, ids, lens, 2, &a), CSLIM_OK);
  observed_matches(m, &p, a, 1);
  cslim_acts_free(a);
  cslim_model_close(m);
}

/* H·Hᵀ = n·I, entries ±1 */
static void check_hadamard(int n) {
  int8_t *h = malloc((size_t)n * n);
  assert_int_equal(cslim_hadamard_matrix(n, h), CSLIM_OK);
  for (int i = 0; i < n * n; i++) assert_true(h[i] == 1 || h[i] == -1);
  for (int i = 0; i < n; i++)
    for (int j = 0; j < n; j++) {
      int dot = 0;
      for (int k = 0; k < n; k++) dot += h[i * n + k] * h[j * n + k];
      if (dot != (i == j ? n : 0)) fail_msg("order %d: rows %d and %d have dot %d", n, i, j, dot);
    }
  free(h);
}

static void test_hadamard_orders(void **s) {
  (void)s;
  /* Paley I (12, 20, 44, 60), Paley II (28, 36), Sylvester (2..64), doublings (24, 40, 56, 80) */
  static const int orders[] = {1, 2, 4, 8, 12, 16, 20, 24, 28, 32, 36, 40, 44, 56, 60, 64, 80, 108, 140};
  for (size_t i = 0; i < sizeof orders / sizeof orders[0]; i++) check_hadamard(orders[i]);
  int8_t h[52 * 52];
  assert_int_equal(cslim_hadamard_matrix(52, h), CSLIM_ERR_UNSUPPORTED); /* needs GF(25): not built here */
  assert_errmsg_contains("order 52");
  assert_int_equal(cslim_hadamard_matrix(6, h), CSLIM_ERR_UNSUPPORTED);
  /* every hidden size and head dim of the family */
  static const int sizes[] = {1024, 2048, 2560, 3072, 3584, 4096, 5120, 8192, 128, 1152};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) assert_true(cslim_hadamard_supported(sizes[i]));
  assert_true(cslim_hadamard_supported(52 * 16)); /* 13·64 = 104·8: Paley I with q = 103 */
  assert_false(cslim_hadamard_supported(92));     /* 23·4: no base order 23, 46 or 92 here */
  assert_false(cslim_hadamard_supported(0));
}

/* the dense R of a rotation is orthogonal, and rows rotated fast = x·R */
static void check_rotation(int n, int block, cslim_rot_mode mode) {
  cslim_rotation *r;
  assert_int_equal(cslim_rotation_new(n, block, mode, 1234, &r), CSLIM_OK);
  float *R = malloc((size_t)n * n * sizeof(float));
  assert_int_equal(cslim_rotation_matrix(r, R), CSLIM_OK);
  double worst = 0;
  for (int i = 0; i < n; i += (n > 512 ? 7 : 1))
    for (int j = 0; j < n; j++) {
      double d = 0;
      for (int k = 0; k < n; k++) d += (double)R[(size_t)i * n + k] * R[(size_t)j * n + k];
      d -= i == j;
      worst = fabs(d) > worst ? fabs(d) : worst;
    }
  if (worst > 2e-5) fail_msg("size %d block %d mode %d: R·Rᵀ - I up to %g", n, block, (int)mode, worst);
  /* a block-diagonal R has zeros off its blocks (shifted: it mixes neighbours) */
  if (block > 0 && block < n && mode == CSLIM_ROT_HADAMARD) assert_true(R[block] == 0.0f);
  uint64_t st = 7;
  const int rows = 3;
  float *x = malloc((size_t)rows * n * sizeof(float)), *y = malloc((size_t)rows * n * sizeof(float));
  for (int i = 0; i < rows * n; i++) x[i] = tu_randf(&st);
  for (int i = 0; i < rows; i++)
    for (int j = 0; j < n; j++) {
      double acc = 0;
      for (int k = 0; k < n; k++) acc += (double)x[(size_t)i * n + k] * R[(size_t)k * n + j];
      y[(size_t)i * n + j] = (float)acc;
    }
  cslim_rotation_apply_rows(r, x, rows);
  assert_true(tu_rel_err(x, y, (size_t)rows * n) < 1e-6);
  /* W ← Rᵀ·W on a [n][5] matrix */
  float *w = malloc((size_t)n * 5 * sizeof(float)), *wr = malloc((size_t)n * 5 * sizeof(float));
  for (int i = 0; i < n * 5; i++) w[i] = tu_randf(&st);
  for (int i = 0; i < n; i++)
    for (int c = 0; c < 5; c++) {
      double acc = 0;
      for (int k = 0; k < n; k++) acc += (double)R[(size_t)k * n + i] * w[(size_t)k * 5 + c];
      wr[(size_t)i * 5 + c] = (float)acc;
    }
  assert_int_equal(cslim_rotation_apply_left(r, w, 5), CSLIM_OK);
  assert_true(tu_rel_err(w, wr, (size_t)n * 5) < 1e-6);
  free(x), free(y), free(w), free(wr), free(R);
  cslim_rotation_free(r);
}

static void test_rotations(void **s) {
  (void)s;
  check_rotation(256, -1, CSLIM_ROT_HADAMARD);         /* 2^8 */
  check_rotation(2560, -1, CSLIM_ROT_HADAMARD);        /* 20·2^7 (Qwen3-4B) */
  check_rotation(384, -1, CSLIM_ROT_HADAMARD);         /* 12·2^5 */
  check_rotation(448, -1, CSLIM_ROT_HADAMARD);         /* 28·2^4 */
  check_rotation(640, -1, CSLIM_ROT_HADAMARD);         /* 40·2^4 = 20·2^5 */
  check_rotation(1152, -1, CSLIM_ROT_HADAMARD);        /* 36·2^5 */
  check_rotation(1024, 32, CSLIM_ROT_HADAMARD);        /* block-diagonal */
  check_rotation(128, 32, CSLIM_ROT_BLOCK_SHIFTED);    /* rot_uv of MoE / VL */
  check_rotation(320, 40, CSLIM_ROT_BLOCK_SHIFTED);
  cslim_rotation *r;
  assert_int_equal(cslim_rotation_new(92, -1, CSLIM_ROT_HADAMARD, 1, &r), CSLIM_ERR_UNSUPPORTED);
  assert_errmsg_contains("size 92");
  assert_int_equal(cslim_rotation_new(100, 32, CSLIM_ROT_HADAMARD, 1, &r), CSLIM_ERR_INVALID);
  assert_errmsg_contains("must divide");
}

static void test_rotation_seed(void **s) {
  (void)s;
  cslim_rotation *a, *b, *c;
  assert_int_equal(cslim_rotation_new(64, -1, CSLIM_ROT_HADAMARD, 1234, &a), CSLIM_OK);
  assert_int_equal(cslim_rotation_new(64, -1, CSLIM_ROT_HADAMARD, 1234, &b), CSLIM_OK);
  assert_int_equal(cslim_rotation_new(64, -1, CSLIM_ROT_HADAMARD, 99, &c), CSLIM_OK);
  float A[64 * 64], B[64 * 64], C[64 * 64];
  cslim_rotation_matrix(a, A);
  cslim_rotation_matrix(b, B);
  cslim_rotation_matrix(c, C);
  assert_memory_equal(A, B, sizeof A);
  assert_memory_not_equal(A, C, sizeof A);
  /* every entry is ±1/8: a signed, normalised Hadamard matrix */
  for (int i = 0; i < 64 * 64; i++) assert_true(fabsf(fabsf(A[i]) - 0.125f) < 1e-7f);
  cslim_rotation_free(a);
  cslim_rotation_free(b);
  cslim_rotation_free(c);
}

static void test_smooth_scale(void **s) {
  (void)s;
  float a[4] = {16.0f, 1.0f, 0.0f, 100.0f}, w[4] = {0.25f, 4.0f, 1.0f, 1e-9f}, sc[4];
  cslim_smooth_scale(a, w, 4, 0.5, 1e-5, sc);
  assert_float_equal(sc[0], 8.0f, 1e-6);  /* sqrt(16) / sqrt(0.25) */
  assert_float_equal(sc[1], 0.5f, 1e-6);  /* 1 / 2 */
  assert_float_equal(sc[2], 1.0f, 0);     /* a channel that never fired is left alone */
  assert_float_equal(sc[3], 10.0f / sqrtf(1e-5f), 1e-2); /* w clamped at 1e-5 */
  cslim_smooth_scale(a, w, 2, 0.5, 1.0, sc);
  assert_float_equal(sc[1], 1.0f, 0); /* scale_min */
  cslim_anti_method m;
  assert_int_equal(cslim_anti_method_parse("m4", &m), 0);
  assert_int_equal(m, CSLIM_ANTI_M4);
  assert_int_equal(cslim_anti_method_parse("m3", &m), -1);
  assert_string_equal(cslim_anti_method_name(CSLIM_ANTI_M6), "m6");
}

/* flex smooth on inputs with two outlier channels: the search moves them into
 * the weights and the fake-quantized error drops well below α = 0's */
static void test_flex_search(void **s) {
  (void)s;
  const int rows = 256, n = 64, out = 48;
  uint64_t st = 3;
  float *X = malloc((size_t)rows * n * sizeof(float)), *W = malloc((size_t)out * n * sizeof(float));
  float a[64] = {0}, w[64] = {0};
  for (int r = 0; r < rows; r++)
    for (int c = 0; c < n; c++) {
      float v = tu_randf(&st) * (c == 5 || c == 40 ? 60.0f : 1.0f);
      X[r * n + c] = v;
      a[c] = fabsf(v) > a[c] ? fabsf(v) : a[c];
    }
  for (int o = 0; o < out; o++)
    for (int c = 0; c < n; c++) {
      W[o * n + c] = 0.05f * tu_randf(&st);
      w[c] = fabsf(W[o * n + c]) > w[c] ? fabsf(W[o * n + c]) : w[c];
    }
  double al, be, err, e0;
  assert_int_equal(cslim_flex_search(X, rows, n, W, out, a, w, &al, &be, &err), CSLIM_OK);
  assert_true(al > 0.2 && al <= 1.0);
  assert_true(be >= 0.0 && be <= 1.0);
  /* the weights in three parts (as q, k, v): the same search to the last bit as the stacked copy */
  const float *parts[3] = {W, W + 10 * n, W + 30 * n};
  const int outs[3] = {10, 20, out - 30};
  double al3, be3, err3;
  assert_int_equal(cslim_flex_search_parts(X, rows, n, parts, outs, 3, a, w, &al3, &be3, &err3), CSLIM_OK);
  assert_true(al3 == al && be3 == be && err3 == err);
  /* a mutation of one part's row is seen (each part is read, where the stack says) */
  const float keep = W[35 * n + 5];
  W[35 * n + 5] += 3.0f;
  assert_int_equal(cslim_flex_search_parts(X, rows, n, parts, outs, 3, a, w, &al3, &be3, &err3), CSLIM_OK);
  assert_true(err3 != err);
  W[35 * n + 5] = keep;
  /* α = 0, β = 0 (no smoothing) for comparison: one-point search */
  float ones[64];
  for (int c = 0; c < n; c++) ones[c] = 1.0f;
  assert_int_equal(cslim_flex_search(X, rows, n, W, out, ones, ones, &al, &be, &e0), CSLIM_OK);
  assert_true(err < 0.5 * e0);
  free(X);
  free(W);
}

/* m2's threshold search on tiny-qwen3's layer 0, for attention (the sample rows cut the second
 * sequence short) and the MLP, inputs with a shifted outlier channel: a threshold beats the
 * untransformed input, the outlier's shift is its range's middle, and the search is the same to the
 * last bit on 1 and 2 threads (each row's error in double lanes, the rows added in order) */
static void test_os_search(void **s) {
  (void)s;
  cslim_model *m;
  assert_int_equal(cslim_model_open(tu_fixture("models/tiny-qwen3"), &m), CSLIM_OK);
  const int H = m->cfg.text.hidden_size, rows = 80;
  int32_t ids[96];
  for (int i = 0; i < 96; i++) ids[i] = (i * 37 + 11) % 4000;
  int lens[2] = {60, 36};
  cslim_acts *a;
  assert_int_equal(cslim_acts_embed(m, ids, lens, 2, &a), CSLIM_OK);
  cslim_layer *l;
  assert_int_equal(cslim_layer_load(m, 0, &l), CSLIM_OK);
  float *X = malloc((size_t)rows * H * sizeof(float));
  uint64_t st = 5;
  for (int r = 0; r < rows; r++)
    for (int c = 0; c < H; c++) X[(size_t)r * H + c] = c == 7 ? 15.0f + 40.0f * tu_randf(&st) : tu_randf(&st);
  cslim_chstats cs;
  assert_int_equal(cslim_chstats_init(&cs, H), CSLIM_OK);
  for (int c = 0; c < H; c++) {
    cs.mn[c] = INFINITY, cs.mx[c] = -INFINITY;
    for (int r = 0; r < rows; r++) {
      const float v = X[(size_t)r * H + c];
      cs.mn[c] = v < cs.mn[c] ? v : cs.mn[c];
      cs.mx[c] = v > cs.mx[c] ? v : cs.mx[c];
    }
  }
  cs.rows = rows;
  float *s1 = malloc((size_t)H * 4), *z1 = malloc((size_t)H * 4), *s2 = malloc((size_t)H * 4), *z2 = malloc((size_t)H * 4);
  const int threads = cslim_get_threads();
  const cslim_input_kind kinds[2] = {CSLIM_IN_QKV, CSLIM_IN_GATE_UP};
  for (int k = 0; k < 2; k++) {
    double t1, t2;
    cslim_set_threads(1);
    assert_int_equal(osp_search(m, l, kinds[k], X, rows, a, &cs, s1, z1, &t1), CSLIM_OK);
    cslim_set_threads(2);
    assert_int_equal(osp_search(m, l, kinds[k], X, rows, a, &cs, s2, z2, &t2), CSLIM_OK);
    if (!(t1 > 0.0)) fail_msg("kind %d: no threshold beat the untransformed input", kinds[k]);
    assert_true(t1 == t2);
    assert_memory_equal(s1, s2, (size_t)H * 4);
    assert_memory_equal(z1, z2, (size_t)H * 4);
    assert_true(z1[7] == 0.5f * (cs.mn[7] + cs.mx[7]));
    assert_true(s1[7] > 1.0f);
  }
  cslim_set_threads(threads);
  free(s1), free(z1), free(s2), free(z2), free(X);
  cslim_chstats_free(&cs);
  cslim_layer_free(m, l);
  cslim_acts_free(a);
  cslim_model_close(m);
}

/* the threaded column maxima equal a plain scan, with 1 and 2 threads, signed and absolute; a NaN
 * never wins, and acc's own values take part */
static void test_col_max(void **s) {
  (void)s;
  const int out = 1001, in = 37;
  uint64_t st = 11;
  float *w = malloc((size_t)out * in * sizeof(float));
  for (int i = 0; i < out * in; i++) w[i] = tu_randf(&st);
  w[500 * in + 3] = NAN;
  w[1000 * in + 36] = -9.0f; /* the last row counts */
  for (int absolute = 0; absolute <= 1; absolute++)
    for (int threads = 1; threads <= 2; threads++) {
      cslim_set_threads(threads);
      float want[37], got[37];
      for (int c = 0; c < in; c++) want[c] = got[c] = c == 5 ? 50.0f : -INFINITY;
      for (int o = 0; o < out; o++)
        for (int c = 0; c < in; c++) {
          float v = absolute ? fabsf(w[o * in + c]) : w[o * in + c];
          want[c] = v > want[c] ? v : want[c];
        }
      smooth_col_max(w, out, in, absolute, got);
      assert_memory_equal(got, want, sizeof want);
      assert_true(got[5] == 50.0f);
      assert_true(absolute ? got[36] == 9.0f : got[36] < 9.0f);
    }
  cslim_set_threads(0);
  free(w);
}

/* column maxima straight from the checkpoint (smooth_linear_col_max on a Linear not converted) equal those of its
 * float32 weight, for every expert of layer 0 in the three layouts (per-expert tensors, the Hub's fused [E, in, C]
 * read transposed, transformers 5's fused [E, R, in] rows) and a dense Linear (o_proj), with 1 and 2 threads; an
 * existing larger value stays */
static void col_max_matches(const char *dir) {
  cslim_model *m;
  if (cslim_model_open(dir, &m)) fail_msg("%s", cslim_errmsg());
  m->defer_linears = 1; /* the dense Linears unconverted too */
  cslim_layer *l;
  assert_int_equal(cslim_layer_load(m, 0, &l), CSLIM_OK);
  assert_true(l->is_moe && l->n_experts == 8);
  int checked = 0;
  for (int threads = 1; threads <= 2; threads++) {
    cslim_set_threads(threads);
    for (int i = -1; i < 3 * l->n_experts; i++) {
      cslim_linear *e = i < 0 ? &l->o : &l->experts[i];
      assert_null(e->w);
      const int in = e->in;
      float *got = malloc((size_t)in * sizeof(float)), *want = malloc((size_t)in * sizeof(float));
      for (int absolute = 0; absolute <= 1; absolute++) {
        for (int c = 0; c < in; c++) got[c] = want[c] = c == 7 ? 1e30f : -INFINITY; /* a value above every weight */
        assert_int_equal(smooth_linear_col_max(m, e, absolute, got), CSLIM_OK);
        assert_null(e->w); /* no float32 copy made */
        assert_int_equal(cslim_linear_materialize(m, e), CSLIM_OK);
        smooth_col_max(e->w, e->out, e->in, absolute, want);
        cslim_linear_release(m, e);
        assert_memory_equal(got, want, (size_t)in * sizeof(float));
        assert_true(got[7] == 1e30f && got[0] > -INFINITY && (!absolute || got[1] > 0.0f));
        checked++;
      }
      free(got), free(want);
    }
  }
  cslim_set_threads(0);
  assert_int_equal(checked, 2 * 2 * 25);
  cslim_layer_free(m, l);
  cslim_model_close(m);
}

static void test_linear_col_max(void **s) {
  (void)s;
  col_max_matches(tu_fixture("models/tiny-qwen3-moe"));
  char *root = tu_tmpdir();
  for (int v5 = 0; v5 < 2; v5++) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/fused%d", root, v5);
    tu_rewrite_model(tu_fixture("models/tiny-qwen3-moe"), dir, tu_fuse_experts, &v5, NULL);
    col_max_matches(dir);
  }
  tu_rmtree(root);
  free(root);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_hadamard_orders), cmocka_unit_test(test_rotations),
      cmocka_unit_test(test_rotation_seed),   cmocka_unit_test(test_smooth_scale), cmocka_unit_test(test_col_max),
      cmocka_unit_test(test_flex_search),     cmocka_unit_test(test_observed_statistics),
      cmocka_unit_test(test_linear_col_max),  cmocka_unit_test(test_os_search),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
