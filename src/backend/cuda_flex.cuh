// m6's and m2's search kernels (cuda_flex.cu), launched by the layer engine (cuda_layer.cu) on its stream.
#ifndef CSLIM_BACKEND_CUDA_FLEX_CUH
#define CSLIM_BACKEND_CUDA_FLEX_CUH

#include <cuda_runtime.h>

// out[r][c] = fq_row(x[r][c] · s[c]) (mul) or fq_row(x[r][c] / s[c]): rows x n, device pointers
void cslim_cuda_flex_fq(cudaStream_t st, const float *x, const float *s, int mul, int rows, int n, float *out);
// err[r] = Σ_c (y[r][c] - ref[r][c])² (ref NULL: Σ y²), double lanes in repro.h's order
void cslim_cuda_flex_err(cudaStream_t st, const float *y, const float *ref, int rows, int n, double *err);
// m2: xs = (x - z) / s per column (rows x n), and min(xs), max(xs) into mm[0], mm[1] (mm: cslim_cuda_os_mm_floats())
size_t cslim_cuda_os_mm_floats(void);
void cslim_cuda_os_shift(cudaStream_t st, const float *x, const float *z, const float *s, int rows, int n, float *xs,
                         float *mm);
// x = (clamp(rint(x · inv + o), -128, 127) - o) · s: the per-tensor asymmetric int8 fake quantization
void cslim_cuda_os_fq(cudaStream_t st, float *x, size_t total, float s, float o, float inv);
// y[r][c] += b[c] over rows x n
void cslim_cuda_os_bias(cudaStream_t st, float *y, int rows, int n, const float *b);

#endif
