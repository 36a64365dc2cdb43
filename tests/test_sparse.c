/* W8A8S and W8A8SC: the sparse weight quantizer's rules (outlier masks,
 * 4-bit range, the scale search never worse than max/7), the NZ layout, the
 * codec's round trip on every kind of code distribution and its refusal of
 * corrupt streams, and a whole checkpoint quantized, compressed for tp 2 and
 * decompressed back bit for bit. */
#include "testutil.h"

#include "cslim/compress.h"
#include "cslim/quant.h"
#include "cslim/safetensors.h"
#include "quant/weight_kernels.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static float gauss(uint64_t *st) {
  float u = 0;
  for (int i = 0; i < 12; i++) u += (tu_randf(st) + 1.0f) * 0.5f;
  return u - 6.0f;
}

static double row_err(const float *w, const int8_t *q, int k, float s) {
  double e = 0;
  for (int j = 0; j < k; j++) e += ((double)w[j] - (double)s * q[j]) * ((double)w[j] - (double)s * q[j]);
  return e;
}

static void test_sparse_quantizer(void **st) {
  (void)st;
  const int n = 48, k = 300;
  uint64_t seed = 7;
  float *w = malloc((size_t)n * k * sizeof(float));
  for (int i = 0; i < n * k; i++) w[i] = 0.02f * gauss(&seed);
  for (int r = 0; r < n; r++) w[(size_t)r * k + (r * 7) % k] = 0.5f; /* one big outlier per row */
  cslim_sparse_params sp = {0.01, 0, 3.0, 1, 0};
  cslim_wq q;
  assert_int_equal(cslim_wq_sparse(w, n, k, &sp, &q), CSLIM_OK);
  assert_int_equal(q.bits, 8);
  const int m = (int)ceil(0.01 * k); /* 3 per row */
  int64_t wide = 0;
  for (int r = 0; r < n; r++) {
    const float *wr = w + (size_t)r * k;
    const int8_t *qr = q.q + (size_t)r * k;
    /* the m largest |w| may leave [-8, 7]; every other code is in it */
    float *a = malloc((size_t)k * sizeof(float));
    for (int j = 0; j < k; j++) a[j] = fabsf(wr[j]);
    int outside = 0;
    for (int j = 0; j < k; j++) {
      int rank = 0;
      for (int i = 0; i < k; i++) rank += a[i] > a[j];
      if (qr[j] < -8 || qr[j] > 7) {
        outside++;
        if (rank >= m) fail_msg("row %d col %d: code %d outside [-8, 7] but not among the %d largest", r, j, qr[j], m);
      }
    }
    free(a);
    wide += outside;
    /* the big outlier kept its value (not clipped to 4 bits) */
    float big = q.scale[r] * qr[(r * 7) % k];
    assert_true(fabsf(big - 0.5f) < q.scale[r]);
    /* the search is never worse than s0 = max|inlier| / 7 */
    cslim_sparse_params co = sp;
    co.co_sparse = 1;
    cslim_wq q0;
    assert_int_equal(cslim_wq_sparse(wr, 1, k, &co, &q0), CSLIM_OK);
    assert_true(row_err(wr, qr, k, q.scale[r]) <= row_err(wr, q0.q, k, q0.scale[0]) + 1e-12);
    cslim_wq_free(&q0);
  }
  assert_int_equal(wide, q.n_wide);
  assert_true(q.n_wide >= n); /* at least the planted outliers */
  cslim_wq_free(&q);

  /* co_sparse: the scale is the inlier maximum / 7 exactly */
  sp.co_sparse = 1;
  assert_int_equal(cslim_wq_sparse(w, 1, k, &sp, &q), CSLIM_OK);
  float amax = 0, sorted[3] = {0};
  for (int j = 0; j < k; j++) { /* the 3 largest |w| are outliers */
    float a = fabsf(w[j]);
    if (a > sorted[2]) {
      sorted[2] = a;
      for (int i = 2; i > 0 && sorted[i] > sorted[i - 1]; i--) {
        float t = sorted[i];
        sorted[i] = sorted[i - 1], sorted[i - 1] = t;
      }
    }
  }
  for (int j = 0; j < k; j++)
    if (fabsf(w[j]) < sorted[2] && fabsf(w[j]) > amax) amax = fabsf(w[j]);
  assert_float_equal(q.scale[0], amax / 7.0f, 1e-9);
  cslim_wq_free(&q);

  /* open_outlier off: every code in [-8, 7] */
  sp = (cslim_sparse_params){0.01, 0, 3.0, 0, 0};
  assert_int_equal(cslim_wq_sparse(w, n, k, &sp, &q), CSLIM_OK);
  assert_int_equal(q.n_wide, 0);
  for (int i = 0; i < n * k; i++) assert_true(q.q[i] >= -8 && q.q[i] <= 7);
  cslim_wq_free(&q);

  /* use_sigma: outliers are exactly the entries beyond mean ± f·std */
  sp = (cslim_sparse_params){0.01, 1, 2.0, 1, 0};
  assert_int_equal(cslim_wq_sparse(w, n, k, &sp, &q), CSLIM_OK);
  for (int r = 0; r < n; r++) {
    const float *wr = w + (size_t)r * k;
    double s = 0, s2 = 0;
    for (int j = 0; j < k; j++) s += wr[j], s2 += (double)wr[j] * wr[j];
    double mean = s / k, sd = sqrt(s2 / k - mean * mean);
    for (int j = 0; j < k; j++) {
      int8_t c = q.q[(size_t)r * k + j];
      if ((c < -8 || c > 7) && !(fabs(wr[j] - mean) > 2.0 * sd)) fail_msg("row %d col %d: wide code not a sigma outlier", r, j);
    }
  }
  cslim_wq_free(&q);

  /* the vectorised error kernel against its scalar reference (ragged length, mixed ranges) */
  {
    float lo[301], hi[301];
    for (int j = 0; j < 301; j++) lo[j] = j % 7 ? -8.0f : -128.0f, hi[j] = j % 7 ? 7.0f : 127.0f;
    for (float sc = 0.001f; sc < 0.02f; sc *= 1.7f) {
      double a = cslim_row_clamped_err(w, lo, hi, 301, sc), b = cslim_row_clamped_err_ref(w, lo, hi, 301, sc);
      if (fabs(a - b) > 1e-9 * (b + 1e-12)) fail_msg("scale %g: kernel %.12g, reference %.12g", sc, a, b);
    }
  }

  /* refusals */
  sp = (cslim_sparse_params){0.2, 0, 3.0, 1, 0};
  assert_int_not_equal(cslim_wq_sparse(w, n, k, &sp, &q), CSLIM_OK);
  assert_errmsg_contains("fraction 0.2 is not in [0.01, 0.1]");
  sp = (cslim_sparse_params){0.01, 0, 3.0, 1, 0};
  w[5 * k + 3] = NAN;
  assert_int_not_equal(cslim_wq_sparse(w, n, k, &sp, &q), CSLIM_OK);
  assert_errmsg_contains("row 5 has a non-finite value");
  free(w);
}

static void test_nz_layout(void **st) {
  (void)st;
  const int n = 37, k = 70;
  int8_t *w = malloc((size_t)n * k), *back = malloc((size_t)n * k);
  for (int i = 0; i < n * k; i++) w[i] = (int8_t)(i * 31 + 7);
  size_t len = cslim_nz_size(n, k);
  assert_int_equal(len, 48 * 96);
  int8_t *nz = malloc(len);
  cslim_nd2nz(w, n, k, nz);
  const int nb = 3; /* ceil(37 / 16) */
  for (int r = 0; r < n; r++)
    for (int c = 0; c < k; c++) {
      size_t at = ((size_t)(c / 32) * nb + (size_t)(r / 16)) * 512 + (size_t)(r % 16) * 32 + (size_t)(c % 32);
      if (nz[at] != w[r * k + c]) fail_msg("(%d, %d) not at NZ offset %zu", r, c, at);
    }
  /* padding is zero */
  assert_int_equal(nz[((size_t)2 * nb + 2) * 512 + 15 * 32 + 31], 0);
  memset(back, 0, (size_t)n * k);
  cslim_nz2nd(nz, n, k, back);
  assert_memory_equal(w, back, (size_t)n * k);
  free(w), free(back), free(nz);
}

static void roundtrip(const int8_t *codes, size_t len, double *ratio) {
  cslim_sc_stream s;
  assert_int_equal(cslim_sc_encode(codes, len, &s), CSLIM_OK);
  assert_int_equal(s.len, cslim_sc_encoded_size(codes, len));
  assert_int_equal(s.index_len, len / 512 * 4);
  int8_t *back = malloc(len);
  assert_int_equal(cslim_sc_decode(s.data, s.len, s.index, s.index_len, back, len), CSLIM_OK);
  assert_memory_equal(codes, back, len);
  if (ratio) *ratio = (double)len / (double)(s.len + s.index_len);
  free(back);
  cslim_sc_stream_free(&s);
}

static void test_codec(void **st) {
  (void)st;
  const size_t len = 512 * 97;
  int8_t *c = malloc(len);
  uint64_t seed = 3;
  double ratio;
  memset(c, 0, len); /* one symbol */
  roundtrip(c, len, &ratio);
  assert_true(ratio > 7.0);
  for (size_t i = 0; i < len; i++) c[i] = (int8_t)(tu_rand(&seed) % 16) - 8; /* uniform 4-bit */
  roundtrip(c, len, &ratio);
  assert_true(ratio > 1.9);
  for (size_t i = 0; i < len; i++) c[i] = (int8_t)(tu_rand(&seed) & 0xff); /* all int8: mostly escapes */
  roundtrip(c, len, NULL);
  /* the W8A8S shape: codes ~ N(0, 2.5) in [-8, 7], 1 % outliers anywhere in int8 */
  for (size_t i = 0; i < len; i++) {
    float g = nearbyintf(2.5f * gauss(&seed));
    c[i] = (int8_t)(g < -8 ? -8 : g > 7 ? 7 : g);
    if (tu_rand(&seed) % 100 == 0) c[i] = (int8_t)((tu_rand(&seed) % 2 ? 1 : -1) * (int)(9 + tu_rand(&seed) % 110));
  }
  roundtrip(c, len, &ratio);
  if (ratio < 1.8) fail_msg("ratio %.3f on W8A8S-like codes", ratio);
  /* corrupt streams are refused, never read out of bounds */
  cslim_sc_stream s;
  assert_int_equal(cslim_sc_encode(c, len, &s), CSLIM_OK);
  int8_t *back = malloc(len);
  s.data[0] ^= 1;
  assert_int_not_equal(cslim_sc_decode(s.data, s.len, s.index, s.index_len, back, len), CSLIM_OK);
  assert_errmsg_contains("not a cslim codec stream");
  s.data[0] ^= 1;
  assert_int_not_equal(cslim_sc_decode(s.data, s.len, s.index, s.index_len - 4, back, len), CSLIM_OK);
  s.index[4 * 50 + 3] = 0x7f; /* an offset past the end */
  assert_int_not_equal(cslim_sc_decode(s.data, s.len, s.index, s.index_len, back, len), CSLIM_OK);
  assert_int_not_equal(cslim_sc_decode(s.data, s.len / 2, s.index, s.index_len, back, len), CSLIM_OK);
  cslim_sc_stream_free(&s);
  free(back);
  free(c);
}

/* every tensor of a and b byte-identical */
static void same_checkpoint(const char *a, const char *b) {
  cslim_st *x, *y;
  assert_int_equal(cslim_st_open(a, &x), CSLIM_OK);
  assert_int_equal(cslim_st_open(b, &y), CSLIM_OK);
  assert_int_equal(cslim_st_count(x), cslim_st_count(y));
  for (size_t i = 0; i < cslim_st_count(x); i++) {
    const cslim_tensor *t = cslim_st_at(x, i), *u = cslim_st_find(y, t->name);
    if (!u) fail_msg("%s missing after the round trip", t->name);
    if (u->dtype != t->dtype || u->nbytes != t->nbytes || memcmp(u->data, t->data, t->nbytes))
      fail_msg("%s differs after the round trip", t->name);
  }
  cslim_st_close(x);
  cslim_st_close(y);
}

static void test_checkpoint_roundtrip(void **st) {
  (void)st;
  char *dir = tu_tmpdir();
  char q[4200], c[4200], d[4200];
  snprintf(q, sizeof q, "%s/w8a8s", dir);
  snprintf(c, sizeof c, "%s/w8a8sc", dir);
  snprintf(d, sizeof d, "%s/back", dir);
  cslim_quant_params p;
  cslim_quant_params_default(&p);
  p.model_path = tu_fixture("models/tiny-qwen3");
  p.save_path = q;
  p.quant_type = CSLIM_QT_W8A8S;
  p.calib_data = tu_fixture("../calib/mix_calib.jsonl");
  p.calib_samples = 6;
  p.holdout = 0;
  static const char *keep[] = {"*.down_proj"};
  p.exclude = keep;
  p.n_exclude = 1;
  cslim_quant_report rep;
  if (cslim_quantize(&p, &rep)) fail_msg("%s", cslim_errmsg());
  int64_t codes = 0, wide = 0;
  for (int l = 0; l < rep.n_layers; l++) codes += rep.layers[l].sparse_codes, wide += rep.layers[l].sparse_wide;
  assert_true(codes > 0);
  assert_true((double)wide / (double)codes < 0.02); /* >= 98 % in the 4-bit range */
  assert_int_equal(rep.model_quant_type, CSLIM_QT_W8A8S);
  cslim_quant_report_free(&rep);
  for (int tp = 1; tp <= 2; tp++) {
    cslim_compress_params cp = {q, c, tp, 1};
    cslim_compress_report cr;
    if (cslim_compress(&cp, &cr)) fail_msg("%s", cslim_errmsg());
    assert_int_equal(cr.n_weights, 4 * 6); /* q, k, v, o, gate, up per layer */
    double ratio = (double)cr.codes_bytes / (double)cr.stream_bytes;
    if (ratio < 1.8) fail_msg("tp %d: compression ratio %.3f", tp, ratio);
    cslim_compress_params dp = {c, d, 0, 1};
    if (cslim_decompress(&dp, &cr)) fail_msg("%s", cslim_errmsg());
    same_checkpoint(q, d);
  }
  /* a tp the shapes do not split into is refused, naming the tensor */
  cslim_compress_params bad = {q, c, 3, 1};
  cslim_compress_report cr;
  assert_int_not_equal(cslim_compress(&bad, &cr), CSLIM_OK);
  assert_errmsg_contains("does not split into 3 tensor-parallel ranks");
  tu_rmtree(dir);
  free(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_sparse_quantizer),
      cmocka_unit_test(test_nz_layout),
      cmocka_unit_test(test_codec),
      cmocka_unit_test(test_checkpoint_roundtrip),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
