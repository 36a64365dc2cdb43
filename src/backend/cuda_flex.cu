// m6 (flex smooth) and m2 (Outlier Suppression+) on the GPU: the kernels of one evaluation of their
// searches (quant/smoother.c, cslim_flex_search; quant/os_plus.c), the same operations as the host's:
//   k_flex_fq    a row of X / s or W · s (one column scale per input channel), then fake-quantized
//                per row, symmetric int8 (fq_rows_sym: max |v| / 127, round half to even, clamp,
//                times the scale);
//   k_flex_err   per row, Σ_c (y - ref)² (or Σ y² without ref) in double, as model/repro.h's sum
//                of squares: lane l = c % 32 adds in c order, the lanes added in lane order.
//   k_os_shift   m2's inputs (x - z) / s per column, with each block's minimum and maximum; k_os_minmax
//                folds those (exact in any order); k_os_fq the per-tensor asymmetric int8 fake
//                quantization with the parameters the host derived from them (fq_tensor_asym);
//   k_os_bias    y[r][o] += b[o].
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

#define OS_BLOCKS 512

// xs = (x - z) / s over rows x n, and each block's min / max into mm[2 b], mm[2 b + 1]
__global__ static void k_os_shift(const float *x, const float *z, const float *s, size_t total, int n, float *xs,
                                  float *mm) {
  __shared__ float smn[256], smx[256];
  float mn = INFINITY, mx = -INFINITY;
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
    const int c = (int)(i % n);
    const float v = (x[i] - z[c]) / s[c];
    xs[i] = v;
    mn = v < mn ? v : mn;
    mx = v > mx ? v : mx;
  }
  smn[threadIdx.x] = mn, smx[threadIdx.x] = mx;
  __syncthreads();
  for (int h = blockDim.x / 2; h > 0; h /= 2) {
    if ((int)threadIdx.x < h) {
      if (smn[threadIdx.x + h] < smn[threadIdx.x]) smn[threadIdx.x] = smn[threadIdx.x + h];
      if (smx[threadIdx.x + h] > smx[threadIdx.x]) smx[threadIdx.x] = smx[threadIdx.x + h];
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) mm[2 * blockIdx.x] = smn[0], mm[2 * blockIdx.x + 1] = smx[0];
}

__global__ static void k_os_minmax(float *mm, int parts) {
  if (threadIdx.x || blockIdx.x) return;
  float mn = mm[0], mx = mm[1];
  for (int b = 1; b < parts; b++) {
    mn = mm[2 * b] < mn ? mm[2 * b] : mn;
    mx = mm[2 * b + 1] > mx ? mm[2 * b + 1] : mx;
  }
  mm[0] = mn, mm[1] = mx;
}

__global__ static void k_os_fq(float *x, size_t total, float s, float o, float inv) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
    float q = rintf(x[i] * inv + o);
    q = q > 127.0f ? 127.0f : q < -128.0f ? -128.0f : q;
    x[i] = (q - o) * s;
  }
}

__global__ static void k_os_bias(float *y, size_t total, int n, const float *b) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x)
    y[i] += b[i % n];
}

static unsigned os_grid(size_t total) {
  const size_t b = (total + 255) / 256;
  return (unsigned)(b < OS_BLOCKS ? (b ? b : 1) : OS_BLOCKS);
}

size_t cslim_cuda_os_mm_floats(void) { return 2 * OS_BLOCKS; }

void cslim_cuda_os_shift(cudaStream_t st, const float *x, const float *z, const float *s, int rows, int n, float *xs,
                         float *mm) {
  const size_t total = (size_t)rows * n;
  const unsigned g = os_grid(total);
  k_os_shift<<<g, 256, 0, st>>>(x, z, s, total, n, xs, mm);
  k_os_minmax<<<1, 32, 0, st>>>(mm, (int)g);
}

void cslim_cuda_os_fq(cudaStream_t st, float *x, size_t total, float s, float o, float inv) {
  k_os_fq<<<os_grid(total), 256, 0, st>>>(x, total, s, o, inv);
}

void cslim_cuda_os_bias(cudaStream_t st, float *y, int rows, int n, const float *b) {
  const size_t total = (size_t)rows * n;
  k_os_bias<<<os_grid(total), 256, 0, st>>>(y, total, n, b);
}
