/* Element types and float32 conversion. Scalar reference next to the AVX2 /
 * F16C path; tests/test_dtype.c compares the two on random data. */
#include "cslim/dtype.h"

#include <math.h>
#include <string.h>

#if defined(__AVX2__) && defined(__F16C__)
#include <immintrin.h>
#define CSLIM_DTYPE_SIMD 1
#endif

typedef struct {
  const char *name;
  size_t size;
  int is_float;
} dtype_traits;

static const dtype_traits k_traits[CSLIM_DTYPE_COUNT] = {
    [CSLIM_BOOL] = {"BOOL", 1, 0}, [CSLIM_U8] = {"U8", 1, 0},     [CSLIM_I8] = {"I8", 1, 0},
    [CSLIM_I16] = {"I16", 2, 0},   [CSLIM_U16] = {"U16", 2, 0},   [CSLIM_I32] = {"I32", 4, 0},
    [CSLIM_U32] = {"U32", 4, 0},   [CSLIM_I64] = {"I64", 8, 0},   [CSLIM_U64] = {"U64", 8, 0},
    [CSLIM_F16] = {"F16", 2, 1},   [CSLIM_BF16] = {"BF16", 2, 1}, [CSLIM_F32] = {"F32", 4, 1},
    [CSLIM_F64] = {"F64", 8, 1},
};

size_t cslim_dtype_size(cslim_dtype t) {
  return (unsigned)t < CSLIM_DTYPE_COUNT ? k_traits[t].size : 0;
}

const char *cslim_dtype_name(cslim_dtype t) {
  return (unsigned)t < CSLIM_DTYPE_COUNT ? k_traits[t].name : "?";
}

int cslim_dtype_is_float(cslim_dtype t) {
  return (unsigned)t < CSLIM_DTYPE_COUNT && k_traits[t].is_float;
}

int cslim_dtype_parse(const char *name, cslim_dtype *out) {
  for (int i = 0; i < CSLIM_DTYPE_COUNT; i++) {
    if (strcmp(name, k_traits[i].name) == 0) {
      *out = (cslim_dtype)i;
      return 0;
    }
  }
  return -1;
}

const char *cslim_dtype_list(void) {
  return "BOOL, U8, I8, I16, U16, I32, U32, I64, U64, F16, BF16, F32, F64";
}

/* ---- scalar half-precision conversions ------------------------------------ */

static inline uint32_t f32_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
}
static inline float bits_f32(uint32_t u) {
  float f;
  memcpy(&f, &u, 4);
  return f;
}

float cslim_bf16_to_f32(uint16_t h) { return bits_f32((uint32_t)h << 16); }

uint16_t cslim_f32_to_bf16(float f) {
  uint32_t x = f32_bits(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40u); /* quiet NaN */
  x += 0x7fffu + ((x >> 16) & 1u);                                         /* RNE */
  return (uint16_t)(x >> 16);
}

float cslim_f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  if (exp == 0) {
    /* zero or subnormal: mant * 2^-24, exact in float32 */
    return bits_f32(sign | f32_bits((float)mant * 0x1p-24f));
  }
  if (exp == 31) /* inf, or NaN made quiet as F16C's vcvtph2ps does */
    return bits_f32(sign | 0x7f800000u | (mant << 13) | (mant ? 0x00400000u : 0));
  return bits_f32(sign | ((exp + 112u) << 23) | (mant << 13));
}

uint16_t cslim_f32_to_f16(float f) {
  uint32_t x = f32_bits(f);
  uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
  x &= 0x7fffffffu;
  if (x > 0x7f800000u) return (uint16_t)(sign | 0x7e00u | ((x >> 13) & 0x3ffu)); /* NaN */
  if (x >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* >= 65520 rounds to inf */
  if (x < 0x38800000u) {
    /* below 2^-14: subnormal result, mantissa = round_half_even(|f| * 2^24) */
    float m = rintf(bits_f32(x) * 0x1p24f);
    return (uint16_t)(sign | (uint16_t)m);
  }
  x += 0xfffu + ((x >> 13) & 1u); /* RNE on the 13 dropped bits */
  x -= 112u << 23;                /* rebias 127 -> 15 */
  return (uint16_t)(sign | (x >> 13));
}

/* ---- to float32 ------------------------------------------------------------------ */

/* Unaligned loads: tensors in a mapped file need not be aligned. */
#define DEFINE_LOADU(name, type)                                                           \
  static inline type name(const unsigned char *p, size_t i) {                              \
    type v;                                                                                \
    memcpy(&v, p + i * sizeof(type), sizeof(type));                                        \
    return v;                                                                              \
  }
DEFINE_LOADU(ld_u16, uint16_t)
DEFINE_LOADU(ld_i16, int16_t)
DEFINE_LOADU(ld_i32, int32_t)
DEFINE_LOADU(ld_u32, uint32_t)
DEFINE_LOADU(ld_i64, int64_t)
DEFINE_LOADU(ld_u64, uint64_t)
DEFINE_LOADU(ld_f64, double)

#ifdef CSLIM_DTYPE_SIMD
/* Stores of 8 floats: plain, or non-temporal for outputs much larger than the
 * caches (no read-for-ownership of the destination: ~1.5x the bandwidth). */
static inline void store8(float *d, __m256 v, int stream) {
  if (stream)
    _mm256_stream_ps(d, v);
  else
    _mm256_storeu_ps(d, v);
}
#endif

/* `stream` requires dst + i to be 32-byte aligned at the vector loop; the
 * caller peels the head (see convert_chunk). */
static void to_f32(cslim_dtype t, const void *src, float *dst, size_t n, int stream) {
  const unsigned char *s = (const unsigned char *)src;
  size_t i = 0;
  switch (t) {
  case CSLIM_BF16:
#ifdef CSLIM_DTYPE_SIMD
    for (; i + 16 <= n; i += 16) {
      __m256i a = _mm256_loadu_si256((const __m256i *)(s + 2 * i));
      __m256i lo = _mm256_unpacklo_epi16(_mm256_setzero_si256(), a);
      __m256i hi = _mm256_unpackhi_epi16(_mm256_setzero_si256(), a);
      /* unpack works within 128-bit lanes: lo = elems 0-3,8-11; hi = 4-7,12-15 */
      store8(dst + i, _mm256_castsi256_ps(_mm256_permute2x128_si256(lo, hi, 0x20)), stream);
      store8(dst + i + 8, _mm256_castsi256_ps(_mm256_permute2x128_si256(lo, hi, 0x31)), stream);
    }
#endif
    for (; i < n; i++) dst[i] = cslim_bf16_to_f32(ld_u16(s, i));
    break;
  case CSLIM_F16:
#ifdef CSLIM_DTYPE_SIMD
    for (; i + 8 <= n; i += 8)
      store8(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(s + 2 * i))), stream);
#endif
    for (; i < n; i++) dst[i] = cslim_f16_to_f32(ld_u16(s, i));
    break;
  case CSLIM_F32:
    memcpy(dst, src, n * 4);
    break;
  case CSLIM_F64:
    for (; i < n; i++) dst[i] = (float)ld_f64(s, i);
    break;
  case CSLIM_BOOL:
    for (; i < n; i++) dst[i] = s[i] ? 1.0f : 0.0f;
    break;
  case CSLIM_U8:
    for (; i < n; i++) dst[i] = (float)s[i];
    break;
  case CSLIM_I8:
#ifdef CSLIM_DTYPE_SIMD
    for (; i + 8 <= n; i += 8) {
      __m128i a = _mm_loadl_epi64((const __m128i *)(s + i));
      store8(dst + i, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(a)), stream);
    }
#endif
    for (; i < n; i++) dst[i] = (float)(int8_t)s[i];
    break;
  case CSLIM_I16:
    for (; i < n; i++) dst[i] = (float)ld_i16(s, i);
    break;
  case CSLIM_U16:
    for (; i < n; i++) dst[i] = (float)ld_u16(s, i);
    break;
  case CSLIM_I32:
    for (; i < n; i++) dst[i] = (float)ld_i32(s, i);
    break;
  case CSLIM_U32:
    for (; i < n; i++) dst[i] = (float)ld_u32(s, i);
    break;
  case CSLIM_I64:
    for (; i < n; i++) dst[i] = (float)ld_i64(s, i);
    break;
  case CSLIM_U64:
    for (; i < n; i++) dst[i] = (float)ld_u64(s, i);
    break;
  default:
    break;
  }
}

void cslim_convert_to_f32(cslim_dtype t, const void *src, float *dst, size_t n) {
  to_f32(t, src, dst, n, 0);
}

/* Convert with non-temporal stores: peel scalars until dst is 32-byte aligned. */
static void convert_chunk_stream(cslim_dtype t, const char *src, float *dst, size_t n) {
  size_t es = cslim_dtype_size(t), head = 0;
  while (head < n && ((uintptr_t)(dst + head) & 31u)) head++;
  to_f32(t, src, dst, head, 0);
  to_f32(t, src + head * es, dst + head, n - head, 1);
}

void cslim_convert_to_f32_mt(cslim_dtype t, const void *src, float *dst, size_t n) {
  const size_t chunk = 1u << 16;
  if (n < 2 * chunk) {
    to_f32(t, src, dst, n, 0);
    return;
  }
  const size_t es = cslim_dtype_size(t);
  const long nchunks = (long)((n + chunk - 1) / chunk);
  /* Outputs beyond ~8 MB do not stay in cache anyway: stream them. */
#ifdef CSLIM_DTYPE_SIMD
  const int stream = n * 4 >= (8u << 20) && (t == CSLIM_BF16 || t == CSLIM_F16 || t == CSLIM_I8);
#else
  const int stream = 0;
#endif
#pragma omp parallel for schedule(static)
  for (long c = 0; c < nchunks; c++) {
    size_t b = (size_t)c * chunk;
    size_t len = b + chunk <= n ? chunk : n - b;
    if (stream)
      convert_chunk_stream(t, (const char *)src + b * es, dst + b, len);
    else
      to_f32(t, (const char *)src + b * es, dst + b, len, 0);
  }
#ifdef CSLIM_DTYPE_SIMD
  if (stream) _mm_sfence();
#endif
}

/* ---- from float32 --------------------------------------------------------------- */

#define STOREU(type, p, i, v)                                                              \
  do {                                                                                     \
    type v_ = (type)(v);                                                                   \
    memcpy((char *)(p) + (size_t)(i) * sizeof(type), &v_, sizeof(type));                   \
  } while (0)

static inline double sat_round(float f, double lo, double hi) {
  if (f != f) return 0.0;
  double r = nearbyint((double)f); /* current mode: round half to even */
  return r < lo ? lo : r > hi ? hi : r;
}

void cslim_convert_from_f32(cslim_dtype t, const float *src, void *dst, size_t n) {
  unsigned char *d = (unsigned char *)dst;
  for (size_t i = 0; i < n; i++) {
    float f = src[i];
    switch (t) {
    case CSLIM_BF16: STOREU(uint16_t, d, i, cslim_f32_to_bf16(f)); break;
    case CSLIM_F16: STOREU(uint16_t, d, i, cslim_f32_to_f16(f)); break;
    case CSLIM_F32: STOREU(float, d, i, f); break;
    case CSLIM_F64: STOREU(double, d, i, (double)f); break;
    case CSLIM_BOOL: d[i] = f != 0.0f; break;
    case CSLIM_U8: d[i] = (uint8_t)sat_round(f, 0, 255); break;
    case CSLIM_I8: STOREU(int8_t, d, i, sat_round(f, -128, 127)); break;
    case CSLIM_I16: STOREU(int16_t, d, i, sat_round(f, -32768, 32767)); break;
    case CSLIM_U16: STOREU(uint16_t, d, i, sat_round(f, 0, 65535)); break;
    case CSLIM_I32: STOREU(int32_t, d, i, sat_round(f, -2147483648.0, 2147483647.0)); break;
    case CSLIM_U32: STOREU(uint32_t, d, i, sat_round(f, 0, 4294967295.0)); break;
    case CSLIM_I64:
      STOREU(int64_t, d, i, sat_round(f, -9223372036854775808.0, 9223372036854774784.0));
      break;
    case CSLIM_U64: STOREU(uint64_t, d, i, sat_round(f, 0, 18446744073709549568.0)); break;
    default: break;
    }
  }
}
