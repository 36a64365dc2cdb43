/* dtype conversions: exhaustive over every 16-bit pattern, SIMD vs scalar,
 * round-to-nearest-even on midpoints, integer saturation. */
#include "testutil.h"

#include "cslim/dtype.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static uint32_t bits(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
}

static void test_names(void **s) {
  (void)s;
  for (int t = 0; t < CSLIM_DTYPE_COUNT; t++) {
    cslim_dtype back;
    assert_int_equal(cslim_dtype_parse(cslim_dtype_name((cslim_dtype)t), &back), 0);
    assert_int_equal(back, t);
  }
  cslim_dtype x;
  assert_int_not_equal(cslim_dtype_parse("F8_E4M3", &x), 0);
  assert_int_not_equal(cslim_dtype_parse("bf16", &x), 0); /* case-sensitive, as in the format */
  assert_int_equal(cslim_dtype_size(CSLIM_BF16), 2);
  assert_int_equal(cslim_dtype_size(CSLIM_I64), 8);
  assert_int_equal(cslim_dtype_size(CSLIM_BOOL), 1);
}

static void test_bf16_exhaustive(void **s) {
  (void)s;
  uint16_t *src = malloc(65536 * 2 + 2);
  float *dst = malloc(65536 * 4);
  for (int i = 0; i < 65536; i++) src[i + 0] = (uint16_t)i;
  cslim_convert_to_f32(CSLIM_BF16, src, dst, 65536);
  for (int i = 0; i < 65536; i++) assert_int_equal(bits(dst[i]), (uint32_t)i << 16);
  /* unaligned source and odd length exercise the tail */
  unsigned char *u = malloc(65536 * 2 + 1);
  memcpy(u + 1, src, 65536 * 2);
  cslim_convert_to_f32(CSLIM_BF16, u + 1, dst, 65535);
  for (int i = 0; i < 65535; i++) assert_int_equal(bits(dst[i]), (uint32_t)i << 16);
  free(u);
  free(src);
  free(dst);
}

static void test_f16_exhaustive(void **s) {
  (void)s;
  uint16_t *src = malloc(65536 * 2);
  float *dst = malloc(65536 * 4);
  for (int i = 0; i < 65536; i++) src[i] = (uint16_t)i;
  cslim_convert_to_f32(CSLIM_F16, src, dst, 65536);
  for (int i = 0; i < 65536; i++) {
    float ref = cslim_f16_to_f32((uint16_t)i); /* scalar reference */
    assert_int_equal(bits(dst[i]), bits(ref)); /* bitwise, NaN payloads included */
    /* and back: every finite half survives the round trip */
    if (!isnan(ref)) assert_int_equal(cslim_f32_to_f16(ref), i);
  }
  assert_true(cslim_f16_to_f32(0x3c00) == 1.0f);
  assert_true(cslim_f16_to_f32(0x7bff) == 65504.0f);
  assert_true(cslim_f16_to_f32(0x0001) == 0x1p-24f);
  assert_true(cslim_f16_to_f32(0x0400) == 0x1p-14f);
  assert_true(isinf(cslim_f16_to_f32(0xfc00)) && cslim_f16_to_f32(0xfc00) < 0);
  assert_true(isnan(cslim_f16_to_f32(0x7e00)));
  free(src);
  free(dst);
}

static void test_f16_round_half_even(void **s) {
  (void)s;
  /* Every midpoint between consecutive positive finite halves rounds to the
   * one with an even mantissa. */
  for (uint32_t h = 0; h < 0x7bff; h++) {
    double a = cslim_f16_to_f32((uint16_t)h), b = cslim_f16_to_f32((uint16_t)(h + 1));
    float mid = (float)((a + b) / 2); /* exact: 12 significant bits */
    uint16_t want = (h & 1) ? (uint16_t)(h + 1) : (uint16_t)h;
    assert_int_equal(cslim_f32_to_f16(mid), want);
    assert_int_equal(cslim_f32_to_f16(-mid), want | 0x8000);
  }
  assert_int_equal(cslim_f32_to_f16(65519.0f), 0x7bff);
  assert_int_equal(cslim_f32_to_f16(65520.0f), 0x7c00); /* ties to even: inf */
  assert_int_equal(cslim_f32_to_f16(1e9f), 0x7c00);
  assert_int_equal(cslim_f32_to_f16(1e-9f), 0x0000);
  assert_int_equal(cslim_f32_to_f16(-0.0f), 0x8000);
}

static void test_bf16_round_half_even(void **s) {
  (void)s;
  assert_int_equal(cslim_f32_to_bf16(1.0f), 0x3f80);
  /* 1 + 2^-8 is the midpoint of 1 and 1 + 2^-7: ties to even (1.0) */
  assert_int_equal(cslim_f32_to_bf16(1.0f + 0x1p-8f), 0x3f80);
  /* 1 + 3*2^-8 is the midpoint of 1+2^-7 (odd) and 1+2^-6 (even) */
  assert_int_equal(cslim_f32_to_bf16(1.0f + 3 * 0x1p-8f), 0x3f82);
  assert_int_equal(cslim_f32_to_bf16(1.0f + 0x1p-8f + 0x1p-20f), 0x3f81);
  float nan = NAN;
  assert_true(isnan(cslim_bf16_to_f32(cslim_f32_to_bf16(nan))));
  assert_int_equal(cslim_f32_to_bf16(INFINITY), 0x7f80);
  uint64_t st = 1;
  for (int i = 0; i < 100000; i++) {
    uint16_t h = (uint16_t)tu_rand(&st);
    float f = cslim_bf16_to_f32(h);
    if (!isnan(f)) assert_int_equal(cslim_f32_to_bf16(f), h);
  }
}

static void test_integer_types(void **s) {
  (void)s;
  uint64_t st = 7;
  enum { N = 1037 };
  int8_t i8[N];
  uint8_t u8[N];
  int16_t i16[N];
  int32_t i32[N];
  int64_t i64[N];
  double f64[N];
  float out[N];
  for (int i = 0; i < N; i++) {
    uint64_t r = tu_rand(&st);
    i8[i] = (int8_t)r;
    u8[i] = (uint8_t)(r >> 8);
    i16[i] = (int16_t)(r >> 16);
    i32[i] = (int32_t)(r >> 24) >> 8;
    i64[i] = (int64_t)(r >> 40) - (1 << 23);
    f64[i] = (double)tu_randf(&st) * 1000.0;
  }
  cslim_convert_to_f32(CSLIM_I8, i8, out, N);
  for (int i = 0; i < N; i++) assert_true(out[i] == (float)i8[i]);
  cslim_convert_to_f32(CSLIM_U8, u8, out, N);
  for (int i = 0; i < N; i++) assert_true(out[i] == (float)u8[i]);
  cslim_convert_to_f32(CSLIM_I16, i16, out, N);
  for (int i = 0; i < N; i++) assert_true(out[i] == (float)i16[i]);
  cslim_convert_to_f32(CSLIM_I32, i32, out, N);
  for (int i = 0; i < N; i++) assert_true(out[i] == (float)i32[i]);
  cslim_convert_to_f32(CSLIM_I64, i64, out, N);
  for (int i = 0; i < N; i++) assert_true(out[i] == (float)i64[i]);
  cslim_convert_to_f32(CSLIM_F64, f64, out, N);
  for (int i = 0; i < N; i++) assert_true(out[i] == (float)f64[i]);
  uint8_t b[4] = {0, 1, 2, 255};
  cslim_convert_to_f32(CSLIM_BOOL, b, out, 4);
  assert_true(out[0] == 0.0f && out[1] == 1.0f && out[2] == 1.0f && out[3] == 1.0f);
}

static void test_from_f32_saturate_rne(void **s) {
  (void)s;
  float in[8] = {2.5f, 3.5f, -2.5f, -0.5f, 300.0f, -300.0f, 126.5f, NAN};
  int8_t q[8];
  cslim_convert_from_f32(CSLIM_I8, in, q, 8);
  int8_t want[8] = {2, 4, -2, 0, 127, -128, 126, 0};
  assert_memory_equal(q, want, 8);
  int32_t q32[2];
  float big[2] = {3e9f, -3e9f};
  cslim_convert_from_f32(CSLIM_I32, big, q32, 2);
  assert_int_equal(q32[0], 2147483647);
  assert_int_equal(q32[1], -2147483647 - 1);
  uint16_t h[2];
  float hv[2] = {1.0f, -2.0f};
  cslim_convert_from_f32(CSLIM_F16, hv, h, 2);
  assert_int_equal(h[0], 0x3c00);
  assert_int_equal(h[1], 0xc000);
}

static void test_multithreaded_matches(void **s) {
  (void)s;
  size_t n = (1u << 21) + 333; /* > 8 MB of output: the streaming-store path */
  uint16_t *src = malloc(n * 2);
  float *a = malloc(n * 4), *b = malloc(n * 4);
  uint64_t st = 3;
  for (size_t i = 0; i < n; i++) src[i] = (uint16_t)tu_rand(&st);
  cslim_convert_to_f32(CSLIM_F16, src, a, n);
  cslim_convert_to_f32_mt(CSLIM_F16, src, b, n);
  assert_memory_equal(a, b, n * 4);
  cslim_convert_to_f32(CSLIM_BF16, src, a, n);
  cslim_convert_to_f32_mt(CSLIM_BF16, src, b, n);
  assert_memory_equal(a, b, n * 4);
  free(src);
  free(a);
  free(b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_names),
      cmocka_unit_test(test_bf16_exhaustive),
      cmocka_unit_test(test_f16_exhaustive),
      cmocka_unit_test(test_f16_round_half_even),
      cmocka_unit_test(test_bf16_round_half_even),
      cmocka_unit_test(test_integer_types),
      cmocka_unit_test(test_from_f32_saturate_rne),
      cmocka_unit_test(test_multithreaded_matches),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
