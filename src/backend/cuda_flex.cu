// m6 (flex smooth) on the GPU: the two kernels of one evaluation of the α / β search
// (quant/smoother.c, cslim_flex_search), the same operations as the host's:
//   k_flex_fq    a row of X / s or W · s (one column scale per input channel), then fake-quantized
//                per row, symmetric int8 (fq_rows_sym: max |v| / 127, round half to even, clamp,
//                times the scale);
//   k_flex_err   per row, Σ_c (y - ref)² (or Σ y² without ref) in double, as model/repro.h's sum
//                of squares: lane l = c % 32 adds in c order, the lanes added in lane order.
// The product between them is the ordered one (gemm_ordered.cuh), so with --fmad=false every
// value is the host's bit for bit. The buffers and the stream are the layer engine's
// (cuda_layer.cu, flex_begin / flex_eval).
#include "cuda_flex.cuh"
#include "model/repro.h"

#include <math.h>

// one block a row: v = x · s (mul) or x / s per column, then the row's symmetric int8 fake quantization
__global__ static void k_flex_fq(const float *x, const float *s, int mul, int n, float *out) {
  const size_t r = blockIdx.x;
  const float *xr = x + r * (size_t)n;
  float *o = out + r * (size_t)n;
  __shared__ float red[256];
  float m = 0.0f;
  for (int c = threadIdx.x; c < n; c += blockDim.x) {
    const float v = mul ? xr[c] * s[c] : xr[c] / s[c];
    o[c] = v;
    m = fabsf(v) > m ? fabsf(v) : m;
  }
  red[threadIdx.x] = m;
  __syncthreads();
  for (int h = blockDim.x / 2; h > 0; h /= 2) { // a maximum: exact in any order
    if ((int)threadIdx.x < h && red[threadIdx.x + h] > red[threadIdx.x]) red[threadIdx.x] = red[threadIdx.x + h];
    __syncthreads();
  }
  const float sc = red[0] / 127.0f;
  if (!(sc > 0.0f)) return;
  const float inv = 1.0f / sc;
  for (int c = threadIdx.x; c < n; c += blockDim.x) {
    float q = rintf(o[c] * inv);
    q = q > 127.0f ? 127.0f : q < -127.0f ? -127.0f : q;
    o[c] = q * sc;
  }
}

// one warp a row
__global__ static void k_flex_err(const float *y, const float *ref, int rows, int n, double *err) {
  const int r = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
  __shared__ double lanes[8][CSLIM_SQ_LANES];
  double acc = 0.0;
  if (r < rows)
    for (int c = lane; c < n; c += CSLIM_SQ_LANES) {
      const size_t i = (size_t)r * n + c;
      const double d = (double)y[i] - (ref ? (double)ref[i] : 0.0);
      acc += d * d;
    }
  lanes[threadIdx.x / 32][lane] = acc;
  __syncwarp();
  if (r < rows && lane == 0) {
    double e = 0.0;
    for (int l = 0; l < CSLIM_SQ_LANES; l++) e += lanes[threadIdx.x / 32][l];
    err[r] = e;
  }
}

void cslim_cuda_flex_fq(cudaStream_t st, const float *x, const float *s, int mul, int rows, int n, float *out) {
  k_flex_fq<<<rows, 256, 0, st>>>(x, s, mul, n, out);
}

void cslim_cuda_flex_err(cudaStream_t st, const float *y, const float *ref, int rows, int n, double *err) {
  k_flex_err<<<(rows + 7) / 8, 256, 0, st>>>(y, ref, rows, n, err);
}
