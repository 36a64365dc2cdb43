/* Quantization: parameter formulas, observers (the histogram search against
 * PyTorch's HistogramObserver), weight quantizers, the integer kernels, and
 * end-to-end runs on the fixtures — perplexity bounds measured by the
 * integer-exact evaluation of the written files, an independent
 * re-computation of every Linear's tensors, byte-identical reruns, the file
 * layouts, and refusal of broken inputs. */
#include "testutil.h"

#include "cslim/eval.h"
#include "cslim/quant.h"
#include "cslim/tokenizer.h"
#include "export/exporter.h"
#include "quant/weight_kernels.h"

#include <cjson/cJSON.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CALIB CSLIM_FIXTURES "/../calib/mix_calib.jsonl"

/* ---- formulas ------------------------------------------------------------------------ */

static void test_qparams(void **s) {
  (void)s;
  float sc, of;
  cslim_qparams_asym(-1.0f, 3.0f, 8, &sc, &of);
  assert_true(sc == 3.0f / 255.0f - (-1.0f) / 255.0f);
  assert_true(of == nearbyintf(1.0f / sc) - 128.0f); /* round(-min/s) - 128 */
  cslim_qparams_asym(2.0f, 5.0f, 8, &sc, &of);      /* the range always includes zero */
  assert_true(sc == 5.0f / 255.0f);
  assert_true(of == -128.0f);
  cslim_qparams_asym(0.0f, 0.0f, 8, &sc, &of); /* eps floor */
  assert_true(sc == FLT_EPSILON);
  assert_true(cslim_qparams_sym(-2.54f, 1.0f, 8) == 2.54f / 127.0f);
  assert_true(cslim_qparams_sym(-1.0f, 0.7f, 4) == 1.0f / 7.0f);
  /* deq_scale encoding */
  float f = 0.0123f;
  int64_t v = cslim_deq_scale_to_int64(f);
  uint32_t bits;
  memcpy(&bits, &f, 4);
  assert_int_equal(v, (int64_t)bits);
  assert_true(cslim_deq_scale_from_int64(v) == f);
  /* quant_bias = round(b / deq - o * sum(Wq)), from the codes or from their sum (the GPU quantizer's) */
  int8_t row[3] = {5, -2, 7};
  assert_int_equal(cslim_quant_bias_of(row, 3, -3.0f, 0.0f, 0.25f), 30);
  assert_int_equal(cslim_quant_bias_from_sum(10, -3.0f, 0.5f, 0.25f), 32);
  uint64_t st = 7;
  for (int t = 0; t < 200; t++) {
    int8_t r[64];
    int64_t sum = 0;
    for (int j = 0; j < 64; j++) {
      st = st * 6364136223846793005ull + 1442695040888963407ull;
      r[j] = (int8_t)(st >> 56);
      sum += r[j];
    }
    float off = (float)((int)(st >> 40 & 255) - 128), bias = t % 3 ? (float)(st >> 20 & 1023) / 97.0f : 0.0f;
    float deq = 1e-4f * (float)(1 + (st >> 8 & 255));
    assert_int_equal(cslim_quant_bias_of(r, 64, off, bias, deq), cslim_quant_bias_from_sum(sum, off, bias, deq));
    assert_int_equal(cslim_quant_bias_row(r, NULL, 0, 64, off, bias, deq), cslim_quant_bias_row(r, &sum, 0, 64, off, bias, deq));
  }
  /* borrowed codes (the GPU engine's page-locked buffers) are not freed with the rest */
  int8_t mine[4] = {1, 2, 3, 4};
  cslim_wq w = {0};
  w.q = mine;
  w.q_borrowed = 1;
  w.scale = malloc(4 * sizeof(float));
  w.rowsum = malloc(4 * sizeof(int64_t));
  cslim_wq_free(&w); /* free() of a stack array would abort */
  assert_null(w.q);
  assert_int_equal(mine[3], 4);
}

/* ---- observers ------------------------------------------------------------------------- */

static void test_observer_minmax_and_moments(void **s) {
  (void)s;
  cslim_observer o;
  cslim_observer_init(&o);
  float a[5] = {1, -2, 3, 0.5f, 0}, b[3] = {7, -1, 2};
  cslim_observer_update(&o, a, 5);
  cslim_observer_update(&o, b, 3);
  assert_true(o.mn == -2.0f && o.mx == 7.0f);
  assert_int_equal(o.count, 8);
  double mean = 10.5 / 8, var = (1 + 4 + 9 + 0.25 + 49 + 1 + 4) / 8.0 - mean * mean;
  assert_true(fabs(cslim_observer_range_param(&o) - 7.0 / sqrt(var)) < 1e-12);
  cslim_observer_free(&o);
}

static void run_hist(const float *x, size_t n, float *lo, float *hi) {
  cslim_observer o;
  cslim_observer_init(&o);
  cslim_observer_update(&o, x, n);
  assert_int_equal(cslim_observer_hist_begin(&o, 2048), CSLIM_OK);
  cslim_observer_hist_update(&o, x, n);
  cslim_observer_hist_range(&o, 256, lo, hi);
  cslim_observer_free(&o);
}

/* References from torch 2.15 HistogramObserver(bins=2048) after one batch
 * (its histogram is then exact) and _non_linear_param_search(). */
static void test_histogram_matches_pytorch(void **s) {
  (void)s;
  enum { N1 = 10000, N2 = 20000 };
  float *x = malloc(N2 * sizeof(float));
  for (int i = 0; i < N1; i++) x[i] = (float)(sin(i * 0.37) * (1 + (i % 97) / 10.0) + (i % 1000 == 0 ? 25.0 : 0.0));
  float lo, hi;
  run_hist(x, N1, &lo, &hi);
  assert_true(lo == -10.594624519348145f);
  assert_true(hi == 33.29197692871094f);
  int64_t st = 12345;
  for (int i = 0; i < N2; i++) {
    st = (st * 1103515245 + 12345) % 2147483648LL;
    double u = (st + 0.5) / 2147483648.0;
    x[i] = (float)(-log(u) * (i % 2 == 0 ? 1 : -1));
  }
  run_hist(x, N2, &lo, &hi);
  assert_true(lo == -9.248202323913574f);
  assert_true(hi == 11.105677604675293f);
  free(x);
}

/* ---- weight quantizers ----------------------------------------------------------------------- */

static void test_weight_quantizers(void **s) {
  (void)s;
  enum { N = 24, K = 128 };
  float *w = malloc(N * K * sizeof(float)), *d = malloc(N * K * sizeof(float));
  uint64_t st = 9;
  for (int i = 0; i < N * K; i++) w[i] = tu_randf(&st) * (1.0f + (float)(i / K)) * 0.05f;
  cslim_wq a, b, g;
  assert_int_equal(cslim_wq_minmax(w, N, K, 8, &a), CSLIM_OK);
  for (int r = 0; r < N; r++) {
    float mx = 0;
    for (int j = 0; j < K; j++) mx = fmaxf(mx, fabsf(w[r * K + j]));
    assert_true(a.scale[r] == mx / 127.0f);
    for (int j = 0; j < K; j++) {
      float v = nearbyintf(w[r * K + j] / a.scale[r]);
      assert_int_equal(a.q[r * K + j], (int)v);
    }
  }
  /* SSZ never does worse than min-max (it starts there and keeps the best) */
  cslim_wq m4;
  assert_int_equal(cslim_wq_minmax(w, N, K, 4, &m4), CSLIM_OK);
  assert_int_equal(cslim_wq_ssz(w, N, K, 4, 50, &b), CSLIM_OK);
  double e_mm = 0, e_ssz = 0;
  cslim_wq_dequant(&m4, d);
  for (int i = 0; i < N * K; i++) e_mm += (w[i] - d[i]) * (w[i] - d[i]);
  cslim_wq_dequant(&b, d);
  for (int i = 0; i < N * K; i++) e_ssz += (w[i] - d[i]) * (w[i] - d[i]);
  for (int i = 0; i < N * K; i++) assert_true(b.q[i] >= -8 && b.q[i] <= 7);
  assert_true(e_ssz < e_mm);
  printf("  int4 reconstruction error: min-max %.4g, SSZ %.4g\n", e_mm, e_ssz);
  /* two-stage per group */
  assert_int_equal(cslim_wq_group(w, N, K, 32, &g), CSLIM_OK);
  for (int i = 0; i < N * K; i++) assert_true(g.q[i] >= -8 && g.q[i] <= 7);
  assert_int_equal(g.group_size, 32);
  cslim_wq_dequant(&g, d);
  double e_g = 0;
  for (int i = 0; i < N * K; i++) e_g += (w[i] - d[i]) * (w[i] - d[i]);
  assert_true(e_g < e_mm * 4);
  assert_int_equal(cslim_wq_group(w, N, K, 48, &g), CSLIM_ERR_INVALID);
  /* the vectorised row kernels agree with the scalar reference (codes bitwise) */
  {
    int8_t q1[K + 5], q2[K + 5];
    float row[K + 5];
    for (int j = 0; j < K + 5; j++) row[j] = tu_randf(&st) * 3.0f;
    row[7] = 1.5f * 0.25f; /* exact halves exercise round-half-even */
    row[8] = 2.5f * 0.25f;
    int bad1 = 0, bad2 = 0;
    assert_true(cslim_row_absmax(row, K + 5, &bad1) == cslim_row_absmax_ref(row, K + 5, &bad2));
    double s1 = 0, s2 = 0;
    double e1 = cslim_row_quantize(row, K + 5, 0.25f, -128, 127, q1, &s1);
    double e2 = cslim_row_quantize_ref(row, K + 5, 0.25f, -128, 127, q2, &s2);
    assert_memory_equal(q1, q2, K + 5);
    assert_int_equal(q1[7], 2);
    assert_int_equal(q1[8], 2);
    assert_true(fabs(e1 - e2) <= 1e-9 * e2 && fabs(s1 - s2) <= 1e-9 * s2);
    row[100] = NAN;
    bad1 = 0;
    cslim_row_absmax(row, K + 5, &bad1);
    assert_true(bad1);
  }
  cslim_wq_free(&a);
  cslim_wq_free(&b);
  cslim_wq_free(&m4);
  cslim_wq_free(&g);
  free(w);
  free(d);
}

/* ---- the integer kernel vs its definition --------------------------------------------------- */

static void test_integer_kernel_exact(void **s) {
  (void)s;
  enum { R = 5, N = 7, K = 3000 };
  cslim_qlinear q = {0};
  q.type = CSLIM_QT_W8A8;
  q.n = N;
  q.k = K;
  q.serve = CSLIM_F32;
  q.wq = malloc(N * K);
  q.deq = malloc(N * sizeof(float));
  q.qbias = malloc(N * sizeof(int32_t));
  q.wscale = malloc(N * sizeof(float));
  uint64_t st = 4;
  for (int i = 0; i < N * K; i++) q.wq[i] = (int8_t)(i % 2 ? 127 : -128 + (int)(tu_rand(&st) % 3));
  for (int o = 0; o < N; o++) {
    q.deq[o] = 1.0f / 1024;
    q.qbias[o] = o * 1000;
    q.wscale[o] = 1;
  }
  q.in_recip = 1.0f;
  q.in_offset = 3.0f;
  float *x = malloc(R * K * sizeof(float)), *y = malloc(R * N * sizeof(float));
  for (int i = 0; i < R * K; i++) x[i] = (float)((int)(tu_rand(&st) % 255) - 130); /* some clip at -128 */
  cslim_linear l = {0};
  snprintf(l.name, sizeof l.name, "test");
  l.impl = &q;
  l.in = K;
  l.out = N;
  assert_int_equal(cslim_qlinear_forward(&l, x, R, y), CSLIM_OK);
  for (int r = 0; r < R; r++)
    for (int o = 0; o < N; o++) {
      int64_t acc = 0;
      for (int j = 0; j < K; j++) {
        float v = nearbyintf(x[r * K + j] * 1.0f + 3.0f);
        v = v < -128 ? -128 : v > 127 ? 127 : v;
        acc += (int64_t)v * q.wq[o * K + j];
      }
      float want = (float)(int32_t)(acc + q.qbias[o]) * q.deq[o];
      assert_true(y[r * N + o] == want); /* |acc| reaches 4.9e7 > 2^24: still exact */
    }
  free(x);
  free(y);
  free(q.wq);
  free(q.deq);
  free(q.qbias);
  free(q.wscale);
  free(q.wf);
}

/* ---- end to end -------------------------------------------------------------------------------- */

static double float_ppl[2];

static double eval_ppl(const char *dir) {
  cslim_tokenizer *tok;
  assert_int_equal(cslim_tokenizer_load(dir, &tok), CSLIM_OK);
  size_t n;
  char *text = (char *)tu_read_file(tu_fixture("text/eval.txt"), &n);
  cslim_ids ids = {0};
  assert_int_equal(cslim_tokenizer_encode(tok, text, n, &ids), CSLIM_OK);
  cslim_model *m;
  if (cslim_model_open(dir, &m)) fail_msg("%s", cslim_errmsg());
  cslim_ppl_opts o = {256, 64, 64};
  cslim_ppl_result r;
  assert_int_equal(cslim_eval_perplexity(m, ids.v, ids.n, &o, &r), CSLIM_OK);
  cslim_model_close(m);
  cslim_ids_free(&ids);
  free(text);
  cslim_tokenizer_free(tok);
  return r.ppl;
}

static void quantize(const char *model, const char *out, const char *qt, const char *mix_all_but_mlp, cslim_quant_report *rep) {
  cslim_quant_params p;
  cslim_quant_params_default(&p);
  p.model_path = tu_fixture(model);
  p.save_path = out;
  assert_int_equal(cslim_scheme_parse(qt, &p.quant_type), 0);
  p.calib_data = CALIB;
  p.calib_samples = 32;
  cslim_mix_rule mix[2] = {{0}};
  if (mix_all_but_mlp) { /* the Qwen3-30B W8A8 recipe: experts dynamic, the rest static */
    mix[0].pattern = "*.mlp.*";
    mix[0].type = CSLIM_QT_W8A8_DYNAMIC;
    mix[1].pattern = "*";
    cslim_scheme_parse(mix_all_but_mlp, &mix[1].type);
    p.mix = mix;
    p.n_mix = 2;
  }
  if (cslim_quantize(&p, rep)) fail_msg("quantize %s %s: %s", model, qt, cslim_errmsg());
}

/* Independent re-computation of every quantized Linear from the float
 * weights and the stored activation parameters: the codes, weight scales,
 * deq_scale (float32 product) and quant_bias (exactly -offset * sum(Wq)). */
static void recompute_all(const char *float_dir, const char *qdir, int *checked) {
  cslim_st *f, *q;
  assert_int_equal(cslim_st_open(float_dir, &f), CSLIM_OK);
  assert_int_equal(cslim_st_open(qdir, &q), CSLIM_OK);
  char path[4096];
  snprintf(path, sizeof path, "%s/quant_model_description.json", qdir);
  size_t n;
  char *txt = (char *)tu_read_file(path, &n);
  cJSON *d = cJSON_Parse(txt);
  free(txt);
  *checked = 0;
  for (const cJSON *e = d->child; e; e = e->next) {
    size_t l = strlen(e->string);
    if (l < 7 || strcmp(e->string + l - 7, ".weight") || !cJSON_IsString(e) || !strcmp(e->valuestring, "FLOAT")) continue;
    char lin[256];
    snprintf(lin, sizeof lin, "%.*s", (int)(l - 7), e->string);
    const cslim_tensor *fw = cslim_st_find(f, e->string), *qw = cslim_st_find(q, e->string);
    assert_non_null(fw);
    int N = (int)fw->shape[0], K = (int)fw->shape[1];
    int w4 = !strcmp(e->valuestring, "W4A8_DYNAMIC");
    float *w = malloc((size_t)N * K * sizeof(float));
    cslim_st_read_f32(f, fw, w);
    const int8_t *codes = qw->data;
    const cslim_tensor *ws = cslim_st_findf(q, "%s.weight_scale", lin);
    const float *wsv = ws ? ws->data : NULL;
    const cslim_tensor *is = cslim_st_findf(q, "%s.input_scale", lin), *io = cslim_st_findf(q, "%s.input_offset", lin);
    const cslim_tensor *dq = cslim_st_findf(q, "%s.deq_scale", lin), *qb = cslim_st_findf(q, "%s.quant_bias", lin);
    for (int r = 0; r < N; r++) {
      float mx = 0;
      for (int j = 0; j < K; j++) mx = fmaxf(mx, fabsf(w[(size_t)r * K + j]));
      if (!w4) { /* min-max per channel */
        float sc = fmaxf(mx / 127.0f, FLT_EPSILON);
        if (wsv) assert_true(wsv[r] == sc);
        int64_t sum = 0;
        for (int j = 0; j < K; j++) {
          float v = nearbyintf(w[(size_t)r * K + j] / sc);
          v = v < -128 ? -128 : v > 127 ? 127 : v;
          assert_int_equal(codes[(size_t)r * K + j], (int)v);
          sum += codes[(size_t)r * K + j];
        }
        if (dq) {
          float in_s = ((const float *)is->data)[0], in_o = ((const float *)io->data)[0];
          assert_true(((const float *)dq->data)[r] == in_s * sc);
          assert_int_equal(((const int32_t *)qb->data)[r], (int32_t)nearbyint(-(double)in_o * (double)sum));
        }
      } else { /* int4 packed: every code in range, and the dequantized weight close to the float one */
        int j2 = r / 2;
        for (int j = 0; j < K; j++) {
          int8_t b = codes[(size_t)j2 * K + j];
          int v = r % 2 ? (b >> 4) : (int8_t)(b << 4) >> 4;
          assert_true(fabsf((float)v * wsv[r] - w[(size_t)r * K + j]) <= 0.5f * wsv[r] * 1.001f ||
                      v == -8 || v == 7);
        }
        const cslim_tensor *sb = cslim_st_findf(q, "%s.scale_bias", lin);
        assert_non_null(sb);
      }
    }
    free(w);
    (*checked)++;
  }
  cJSON_Delete(d);
  cslim_st_close(f);
  cslim_st_close(q);
}

static void e2e(const char *model, int idx, const char *root) {
  static const char *types[3] = {"w8a8_dynamic", "w8a8", "w4a8"};
  static const double bound[3] = {0.01, 0.03, -1};
  for (int i = 0; i < 3; i++) {
    char out[4096];
    snprintf(out, sizeof out, "%s/%s-%s", root, strrchr(model, '/') + 1, types[i]);
    cslim_quant_report rep;
    quantize(model, out, types[i], NULL, &rep);
    assert_true(rep.verified);
    double q = eval_ppl(out);
    double rel = q / float_ppl[idx] - 1;
    printf("  %s %-13s ppl %.4f (float %.4f, %+.2f %%), KL %.5f, top-1 %.1f %%\n", model, types[i], q,
           float_ppl[idx], 100 * rel, rep.kl, 100 * rep.top1);
    if (bound[i] > 0 && !(rel < bound[i])) fail_msg("%s %s: perplexity %.4f is %.2f %% above float", model, types[i], q, 100 * rel);
    int checked;
    recompute_all(tu_fixture(model), out, &checked);
    assert_true(checked >= 28);
    cslim_quant_report_free(&rep);
  }
}

static char *g_root;

static void test_dense_end_to_end(void **s) {
  (void)s;
  float_ppl[0] = eval_ppl(tu_fixture("models/tiny-qwen3"));
  e2e("models/tiny-qwen3", 0, g_root);
}

static void test_moe_end_to_end(void **s) {
  (void)s;
  float_ppl[1] = eval_ppl(tu_fixture("models/tiny-qwen3-moe"));
  e2e("models/tiny-qwen3-moe", 1, g_root);
  /* the Qwen3-30B recipe: attention W8A8 static, experts W8A8_DYNAMIC */
  char out[4096];
  snprintf(out, sizeof out, "%s/moe-mixed", g_root);
  cslim_quant_report rep;
  quantize("models/tiny-qwen3-moe", out, "w8a8", "w8a8", &rep);
  assert_int_equal(rep.n_linear[CSLIM_QT_W8A8], 16);        /* q, k, v, o of 4 layers */
  assert_int_equal(rep.n_linear[CSLIM_QT_W8A8_DYNAMIC], 96); /* 8 experts x 3 x 4 layers */
  assert_int_equal(rep.n_linear[CSLIM_QT_FLOAT], 4);         /* routers */
  assert_int_equal(rep.model_quant_type, CSLIM_QT_W8A8);
  /* coverage: tokens per expert add up to top-k per token in every layer */
  for (int l = 0; l < 4; l++) {
    int sum = 0;
    for (int e = 0; e < 8; e++) sum += rep.expert_tokens[l * 8 + e];
    assert_int_equal(sum, 2 * rep.calib_tokens);
  }
  double q = eval_ppl(out);
  printf("  mixed W8A8 / W8A8_DYNAMIC: ppl %.4f\n", q);
  assert_true(q / float_ppl[1] - 1 < 0.03);
  cslim_quant_report_free(&rep);
}

static int same_file(const char *a, const char *b) {
  size_t n1, n2;
  unsigned char *x = tu_read_file(a, &n1), *y = tu_read_file(b, &n2);
  int same = n1 == n2 && !memcmp(x, y, n1);
  free(x);
  free(y);
  return same;
}

static void test_reruns_are_byte_identical(void **s) {
  (void)s;
  char a[4096], b[4096];
  snprintf(a, sizeof a, "%s/again-a", g_root);
  snprintf(b, sizeof b, "%s/again-b", g_root);
  cslim_quant_report r1, r2;
  quantize("models/tiny-qwen3-moe", a, "w8a8", "w8a8", &r1);
  quantize("models/tiny-qwen3-moe", b, "w8a8", "w8a8", &r2);
  const char *files[] = {"quant_model_weights.safetensors", "quant_model_description.json", "config.json"};
  for (int i = 0; i < 3; i++) {
    char p1[4096], p2[4096];
    snprintf(p1, sizeof p1, "%s/%s", a, files[i]);
    snprintf(p2, sizeof p2, "%s/%s", b, files[i]);
    assert_true(same_file(p1, p2));
  }
  cslim_quant_report_free(&r1);
  cslim_quant_report_free(&r2);
}

static void test_layouts(void **s) {
  (void)s;
  cslim_quant_params p;
  cslim_quant_params_default(&p);
  p.model_path = tu_fixture("models/tiny-qwen3");
  p.quant_type = CSLIM_QT_W8A8_DYNAMIC; /* data-free */
  p.part_file_size = 2.0 / 1024;          /* 2 MB shards */
  char out[4096], path[4096];
  snprintf(out, sizeof out, "%s/sharded", g_root);
  p.save_path = out;
  cslim_quant_report rep;
  assert_int_equal(cslim_quantize(&p, &rep), CSLIM_OK);
  cslim_quant_report_free(&rep);
  snprintf(path, sizeof path, "%s/quant_model_weights.safetensors.index.json", out);
  assert_int_equal(access(path, F_OK), 0);
  snprintf(path, sizeof path, "%s/quant_model_weights-00001-of-00004.safetensors", out);
  assert_int_equal(access(path, F_OK), 0);
  assert_true(fabs(eval_ppl(out) / float_ppl[0] - 1) < 0.01); /* the sharded checkpoint evaluates */
  /* v0 names */
  p.part_file_size = 0;
  p.legacy_names = 1;
  snprintf(out, sizeof out, "%s/legacy", g_root);
  assert_int_equal(cslim_quantize(&p, &rep), CSLIM_OK);
  cslim_quant_report_free(&rep);
  snprintf(path, sizeof path, "%s/quant_model_weight_w8a8_dynamic.safetensors", out);
  assert_int_equal(access(path, F_OK), 0);
  snprintf(path, sizeof path, "%s/quant_model_description.json", out);
  size_t n;
  char *txt = (char *)tu_read_file(path, &n);
  assert_true(!strncmp(txt, "{\n  \"model_quant_type\": \"W8A8_DYNAMIC\",\n  \"version\": \"1.0.0\"", 60));
  free(txt);
  /* MindIE */
  p.legacy_names = 0;
  p.mindie_format = 1;
  snprintf(out, sizeof out, "%s/mindie", g_root);
  assert_int_equal(cslim_quantize(&p, &rep), CSLIM_OK);
  cslim_quant_report_free(&rep);
  snprintf(path, sizeof path, "%s/quant_model_description_w8a8_dynamic.json", out);
  txt = (char *)tu_read_file(path, &n);
  assert_null(strstr(txt, "\"version\""));
  free(txt);
  snprintf(path, sizeof path, "%s/config.json", out);
  txt = (char *)tu_read_file(path, &n);
  assert_non_null(strstr(txt, "\"quantize\": \"w8a8_dynamic\""));
  assert_non_null(strstr(txt, "\"quantization_config\": {\n    \"kv_quant_type\": null"));
  free(txt);
  /* the description of the default (v1) layout */
  snprintf(path, sizeof path, "%s/tiny-qwen3-w4a8/quant_model_description.json", g_root);
  txt = (char *)tu_read_file(path, &n);
  assert_non_null(strstr(txt, "    \"model.layers.0.mlp.down_proj.scale_bias\": \"W4A8_DYNAMIC\",\n"));
  /* W4A8_DYNAMIC is outside msModelSlim's priority list: only it here, so it names the model */
  assert_non_null(strstr(txt, "    \"version\": \"1.0.0\",\n    \"model_quant_type\": \"W4A8_DYNAMIC\",\n"
                              "    \"metadata\": {},\n    \"group_size\": 0,\n    \"optional\": {}\n}\n"));
  free(txt);
}

static void nan_weight(tu_writer *w, const cslim_tensor *t, void *ctx) {
  (void)ctx;
  if (!strcmp(t->name, "model.layers.2.self_attn.v_proj.weight")) {
    uint16_t *c = malloc(t->nbytes);
    memcpy(c, t->data, t->nbytes);
    c[77] = 0x7fc0; /* NaN */
    tu_emit(w, t->name, t->dtype, t->ndim, t->shape, c);
    free(c);
    return;
  }
  tu_emit(w, t->name, t->dtype, t->ndim, t->shape, t->data);
}

static void test_refusals(void **s) {
  (void)s;
  cslim_quant_params p;
  cslim_quant_params_default(&p);
  cslim_quant_report rep;
  char out[4096], bad[4096];
  snprintf(out, sizeof out, "%s/refused", g_root);
  p.model_path = tu_fixture("models/tiny-qwen3");
  p.save_path = out;
  p.quant_type = CSLIM_QT_W8A8; /* static needs data */
  assert_int_equal(cslim_quantize(&p, &rep), CSLIM_ERR_INVALID);
  assert_errmsg_contains("needs calibration data");
  cslim_quant_report_free(&rep);
  /* a NaN weight: error naming the tensor, and nothing written */
  snprintf(bad, sizeof bad, "%s/nan-model", g_root);
  tu_rewrite_model(tu_fixture("models/tiny-qwen3"), bad, nan_weight, NULL, NULL);
  p.model_path = bad;
  p.calib_data = CALIB;
  p.calib_samples = 4;
  assert_int_equal(cslim_quantize(&p, &rep), CSLIM_ERR_NUMERIC);
  assert_errmsg_contains("model.layers.2.self_attn.v_proj.weight: row 0 has a non-finite value (nothing was written)");
  cslim_quant_report_free(&rep);
  assert_int_not_equal(access(out, F_OK), 0);
  /* no staging directory left beside it */
  char cmd[4096];
  snprintf(cmd, sizeof cmd, "ls -A '%s' | grep -c cslim-tmp", g_root);
  FILE *f = popen(cmd, "r");
  int cnt = -1;
  assert_int_equal(fscanf(f, "%d", &cnt), 1);
  pclose(f);
  assert_int_equal(cnt, 0);
  /* a quantized checkpoint is not quantized again */
  snprintf(bad, sizeof bad, "%s/tiny-qwen3-w8a8", g_root);
  p.model_path = bad;
  assert_int_equal(cslim_quantize(&p, &rep), CSLIM_ERR_INVALID);
  assert_errmsg_contains("already a quantized checkpoint");
  cslim_quant_report_free(&rep);
}

static int setup(void **s) {
  (void)s;
  g_root = tu_tmpdir();
  return 0;
}

static int teardown(void **s) {
  (void)s;
  tu_rmtree(g_root);
  free(g_root);
  return 0;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_qparams),
      cmocka_unit_test(test_observer_minmax_and_moments),
      cmocka_unit_test(test_histogram_matches_pytorch),
      cmocka_unit_test(test_weight_quantizers),
      cmocka_unit_test(test_integer_kernel_exact),
      cmocka_unit_test(test_dense_end_to_end),
      cmocka_unit_test(test_moe_end_to_end),
      cmocka_unit_test(test_reruns_are_byte_identical),
      cmocka_unit_test(test_layouts),
      cmocka_unit_test(test_refusals),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
