// m6's search kernels (cuda_flex.cu), launched by the layer engine (cuda_layer.cu) on its stream.
#ifndef CSLIM_BACKEND_CUDA_FLEX_CUH
#define CSLIM_BACKEND_CUDA_FLEX_CUH

#include <cuda_runtime.h>

// out[r][c] = fq_row(x[r][c] · s[c]) (mul) or fq_row(x[r][c] / s[c]): rows x n, device pointers
void cslim_cuda_flex_fq(cudaStream_t st, const float *x, const float *s, int mul, int rows, int n, float *out);
// err[r] = Σ_c (y[r][c] - ref[r][c])² (ref NULL: Σ y²), double lanes in repro.h's order
void cslim_cuda_flex_err(cudaStream_t st, const float *y, const float *ref, int rows, int n, double *err);

#endif
