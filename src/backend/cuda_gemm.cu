// The CUDA side of the float GEMM dispatch (cslim/backend.h): the ordered
// float32 product (gemm_ordered.cuh: the CPU's bits), or with CSLIM_GPU_TF32=1
// cuBLAS on TF32 tensor cores, float32 accumulation (faster; activation
// ranges then move by ~1 %). Buffers grow and are reused; transfers are
// synchronous on one stream. Built only with -DCSLIM_CUDA=ON.
#include "gemm_ordered.cuh"

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static cublasHandle_t g_handle;
static cudaStream_t g_stream;
static float *g_x, *g_w, *g_y;
static size_t g_xcap, g_wcap, g_ycap;
static int g_tf32;

static int grow(float **p, size_t *cap, size_t n) {
  if (n <= *cap) return 0;
  if (*p) cudaFree(*p);
  *p = NULL;
  *cap = 0;
  if (cudaMalloc((void **)p, n * sizeof(float)) != cudaSuccess) return -1;
  *cap = n;
  return 0;
}

extern "C" int cslim_cuda_device_count(void) {
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess ? n : 0;
}

extern "C" int cslim_cuda_open(int index, char *name, size_t cap) {
  if (cudaSetDevice(index) != cudaSuccess) return -1;
  cudaDeviceProp prop;
  if (cudaGetDeviceProperties(&prop, index) == cudaSuccess) snprintf(name, cap, "%s", prop.name);
  if (g_handle) return 0;
  if (cudaStreamCreate(&g_stream) != cudaSuccess) return -1;
  if (cublasCreate(&g_handle) != CUBLAS_STATUS_SUCCESS) return -1;
  cublasSetStream(g_handle, g_stream);
  const char *e = getenv("CSLIM_GPU_TF32");
  g_tf32 = e && *e == '1';
  cublasSetMathMode(g_handle, CUBLAS_TF32_TENSOR_OP_MATH);
  return 0;
}

// y[rows][out] = x[rows][in] · W[out][in]^T, row-major. In cuBLAS's column-major view:
// yᵀ (out × rows) = W (out × in, stored as Wᵀ col-major: transpose) · xᵀ (in × rows).
extern "C" int cslim_cuda_gemm_nt(const float *x, const float *w, int rows, int out, int in, float *y) {
  size_t nx = (size_t)rows * in, nw = (size_t)out * in, ny = (size_t)rows * out;
  if (grow(&g_x, &g_xcap, nx) || grow(&g_w, &g_wcap, nw) || grow(&g_y, &g_ycap, ny)) return -1;
  if (cudaMemcpyAsync(g_x, x, nx * sizeof(float), cudaMemcpyHostToDevice, g_stream) != cudaSuccess) return -1;
  if (cudaMemcpyAsync(g_w, w, nw * sizeof(float), cudaMemcpyHostToDevice, g_stream) != cudaSuccess) return -1;
  const float one = 1.0f, zero = 0.0f;
  if (g_tf32) {
    if (cublasGemmEx(g_handle, CUBLAS_OP_T, CUBLAS_OP_N, out, rows, in, &one, g_w, CUDA_R_32F, in, g_x, CUDA_R_32F, in,
                     &zero, g_y, CUDA_R_32F, out, CUBLAS_COMPUTE_32F_FAST_TF32, CUBLAS_GEMM_DEFAULT) != CUBLAS_STATUS_SUCCESS)
      return -1;
  } else {
    gemm_ordered_launch(g_stream, 1, 1, rows, out, in, 1.0f, g_x, in, 0, g_w, in, 0, 1, g_y, out, 0);
    if (cudaGetLastError() != cudaSuccess) return -1;
  }
  if (cudaMemcpyAsync(y, g_y, ny * sizeof(float), cudaMemcpyDeviceToHost, g_stream) != cudaSuccess) return -1;
  return cudaStreamSynchronize(g_stream) == cudaSuccess ? 0 : -1;
}
