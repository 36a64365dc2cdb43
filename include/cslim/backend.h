/* Compute devices. The CPU is always there; a build with -DCSLIM_CUDA=ON
 * (auto-detected when nvcc is present, off under CI=true) adds NVIDIA GPUs
 * through cuBLAS. docs/performance.md says what runs where today. */
#ifndef CSLIM_BACKEND_H
#define CSLIM_BACKEND_H

#include "cslim/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Precision of the float GEMMs on a GPU (--gpu_gemm): float32 (the default: ordered fma chains, so the
 * checkpoint is the CPU's bit for bit), TF32 tensor cores, or bf16 inputs; all accumulate in float32. */
typedef enum cslim_gemm_precision { CSLIM_GEMM_FP32 = 0, CSLIM_GEMM_TF32 = 1, CSLIM_GEMM_BF16 = 2 } cslim_gemm_precision;

/* 1 when this build has the CUDA backend. */
int cslim_cuda_built(void);
/* "cpu", "cuda", "cuda:N", "cuda:N,M,..." (several: data-parallel calibration). Errors name the flag
 * value: a build without CUDA, no such device. */
cslim_status cslim_device_select(const char *spec);
/* The selected device in words ("cpu", "cuda:0 (NVIDIA H100 80GB HBM3)"). */
const char *cslim_device_describe(void);
/* 1 when a GPU is selected. */
int cslim_device_is_gpu(void);
/* The selected GPUs (cuda:0,1 -> 0, 1): how many, the first `cap` of them in ids. */
int cslim_device_gpus(int *ids, int cap);

/* y[rows][out] = x[rows][in] · W[out][in]ᵀ on the selected GPU (float32; CSLIM_GPU_TF32=1 for TF32
 * tensor cores with float32 accumulation); returns 1 when it ran there, 0 when the CPU should (no GPU selected, or too small
 * to pay for the transfers). */
int cslim_gpu_gemm_nt(const float *x, const float *w, int rows, int out, int in, float *y);

#ifdef __cplusplus
}
#endif
#endif
