/* Element types of safetensors files and conversion to/from float32. */
#ifndef CSLIM_DTYPE_H
#define CSLIM_DTYPE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum cslim_dtype {
  CSLIM_BOOL = 0,
  CSLIM_U8,
  CSLIM_I8,
  CSLIM_I16,
  CSLIM_U16,
  CSLIM_I32,
  CSLIM_U32,
  CSLIM_I64,
  CSLIM_U64,
  CSLIM_F16,
  CSLIM_BF16,
  CSLIM_F32,
  CSLIM_F64,
  CSLIM_DTYPE_COUNT
} cslim_dtype;

/* Bytes per element. */
size_t cslim_dtype_size(cslim_dtype t);
/* The safetensors spelling: "BOOL", "U8", ..., "BF16", "F32". */
const char *cslim_dtype_name(cslim_dtype t);
/* Inverse of cslim_dtype_name (exact, case-sensitive). Returns 0 on success. */
int cslim_dtype_parse(const char *name, cslim_dtype *out);
/* Comma-separated list of supported names, for error messages. */
const char *cslim_dtype_list(void);
int cslim_dtype_is_float(cslim_dtype t);

/* Convert n elements of type `t` at `src` (any alignment) to float32.
 * bf16 and f16 are converted exactly (every value is representable);
 * 64-bit integers and f64 round to nearest. Single-threaded; the vector
 * path is used when the build targets AVX2/F16C. */
void cslim_convert_to_f32(cslim_dtype t, const void *src, float *dst, size_t n);
/* Same, split across the library's threads (OpenMP). */
void cslim_convert_to_f32_mt(cslim_dtype t, const void *src, float *dst, size_t n);

/* float32 -> bf16 / f16 with round-to-nearest-even (NaN stays NaN, overflow
 * goes to inf as in PyTorch's casts). */
uint16_t cslim_f32_to_bf16(float f);
uint16_t cslim_f32_to_f16(float f);
float cslim_bf16_to_f32(uint16_t h);
float cslim_f16_to_f32(uint16_t h);
/* x rounded to bfloat16 / float16 (round to nearest even) and back; other dtypes: x. */
static inline float cslim_round_to_dtype(float x, cslim_dtype t) {
  if (t == CSLIM_BF16) return cslim_bf16_to_f32(cslim_f32_to_bf16(x));
  if (t == CSLIM_F16) return cslim_f16_to_f32(cslim_f32_to_f16(x));
  return x;
}
/* Convert n floats to dtype t (float types and, with saturation and
 * round-half-even, the integer types). */
void cslim_convert_from_f32(cslim_dtype t, const float *src, void *dst, size_t n);

#ifdef __cplusplus
}
#endif
#endif
