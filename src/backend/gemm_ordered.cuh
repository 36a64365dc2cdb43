// The ordered float32 GEMM of model/repro.h on the GPU, shared by the layer engine (cuda_layer.cu) and the
// float GEMM offload (cuda_gemm.cu): every element one fma chain over t, as the CPU's cslim_gemm_ordered, so
// --gpu_gemm fp32 gives the CPU's bits.
#ifndef CSLIM_BACKEND_GEMM_ORDERED_CUH
#define CSLIM_BACKEND_GEMM_ORDERED_CUH

#include <cuda_runtime.h>

// C[z] = alpha * A[z] . op(B[z / rep]) with each element one ordered fma chain over t (model/repro.h), as the CPU's
// cslim_gemm_ordered: A row-major [m][lda]; B [n][ldb] (TRANS: t contiguous) or [k][ldb] (j contiguous); C [m][ldc].
// Batches of zb (attention: a sequence's heads) step by sA2 / sB2 / sC2, the members of a batch by sA / sB / sC.
// With pointer tables (Ap non-NULL; device arrays, one entry per z) A[z] = Ap[z], B[z] = Bp[z], C[z] = Cp[z] instead
// of the strides: the MoE block's chunks, each with its own expert's weights.
// A 128 x 128 tile per block of 256 threads, 8 x 8 outputs a thread, depth steps of 8 through shared memory; the
// padding past k is zeros, and fma(0, 0, acc) leaves acc as it is.
#define OG_BM 128
#define OG_BN 128
#define OG_BK 8
template <int TRANS>
__global__ void __launch_bounds__(256) k_gemm_ordered(int m, int n, int k, float alpha, const float *A, int lda,
                                                      long long sA, const float *B, int ldb, long long sB, int rep,
                                                      float *C, int ldc, long long sC, int zb, long long sA2,
                                                      long long sB2, long long sC2, const float *const *Ap,
                                                      const float *const *Bp, float *const *Cp) {
  __shared__ float4 As[OG_BK][OG_BM / 4], Bs[OG_BK][OG_BN / 4];
  const int z = blockIdx.z;
  if (Ap) {
    A = Ap[z], B = Bp[z], C = Cp[z];
  } else {
    const int z1 = z / zb, z0 = z % zb;
    A += z1 * sA2 + z0 * sA;
    B += z1 * sB2 + (z0 / rep) * sB;
    C += z1 * sC2 + z0 * sC;
  }
  const int i0 = blockIdx.y * OG_BM, j0 = blockIdx.x * OG_BN, tid = threadIdx.x;
  const int tx = tid % 16, ty = tid / 16; // outputs rows ty*4 + {0..3, 64..67}, columns tx*4 + {0..3, 64..67}
  float acc[8][8];
  for (int a = 0; a < 8; a++)
    for (int b = 0; b < 8; b++) acc[a][b] = 0.0f;
  for (int t0 = 0; t0 < k; t0 += OG_BK) {
    // A tile: 128 rows x 8 depths, 4 a thread: row = tid / 2, depths (tid % 2) * 4 ..
    {
      const int r = tid / 2, c = (tid % 2) * 4;
      float *as = (float *)As;
      for (int q = 0; q < 4; q++) {
        const int gi = i0 + r, gt = t0 + c + q;
        as[(c + q) * OG_BM + r] = gi < m && gt < k ? A[(size_t)gi * lda + gt] : 0.0f;
      }
    }
    {
      float *bs = (float *)Bs;
      if (TRANS) { // B[j][t]: as A
        const int r = tid / 2, c = (tid % 2) * 4;
        for (int q = 0; q < 4; q++) {
          const int gj = j0 + r, gt = t0 + c + q;
          bs[(c + q) * OG_BN + r] = gj < n && gt < k ? B[(size_t)gj * ldb + gt] : 0.0f;
        }
      } else { // B[t][j]: depth tid / 32, columns (tid % 32) * 4 ..
        const int tt = tid / 32, c = (tid % 32) * 4;
        for (int q = 0; q < 4; q++) {
          const int gj = j0 + c + q, gt = t0 + tt;
          bs[tt * OG_BN + c + q] = gj < n && gt < k ? B[(size_t)gt * ldb + gj] : 0.0f;
        }
      }
    }
    __syncthreads();
    for (int t = 0; t < OG_BK; t++) {
      const float4 a0 = As[t][ty], a1 = As[t][ty + 16], b0 = Bs[t][tx], b1 = Bs[t][tx + 16];
      const float a[8] = {a0.x, a0.y, a0.z, a0.w, a1.x, a1.y, a1.z, a1.w};
      const float b[8] = {b0.x, b0.y, b0.z, b0.w, b1.x, b1.y, b1.z, b1.w};
      for (int p = 0; p < 8; p++)
        for (int q = 0; q < 8; q++) acc[p][q] = fmaf(a[p], b[q], acc[p][q]);
    }
    __syncthreads();
  }
  for (int p = 0; p < 8; p++) {
    const int gi = i0 + ty * 4 + (p % 4) + (p / 4) * 64;
    if (gi >= m) continue;
    for (int q = 0; q < 8; q++) {
      const int gj = j0 + tx * 4 + (q % 4) + (q / 4) * 64;
      if (gj < n) C[(size_t)gi * ldc + gj] = alpha == 1.0f ? acc[p][q] : acc[p][q] * alpha;
    }
  }
}

// C[z] = alpha * A[z] . op(B[z / rep]) for z < nb * zb, on stream st: nb batches of zb (strides sA2 / sB2 / sC2)
static inline void gemm_ordered_batches(cudaStream_t st, int trans, int nb, int zb, int m, int n, int k, float alpha,
                                        const float *A, int lda, long long sA, long long sA2, const float *B, int ldb,
                                        long long sB, long long sB2, int rep, float *C, int ldc, long long sC,
                                        long long sC2) {
  dim3 grid((unsigned)((n + OG_BN - 1) / OG_BN), (unsigned)((m + OG_BM - 1) / OG_BM), (unsigned)(nb * zb));
  if (trans)
    k_gemm_ordered<1><<<grid, 256, 0, st>>>(m, n, k, alpha, A, lda, sA, B, ldb, sB, rep, C, ldc, sC, zb, sA2, sB2, sC2,
                                            NULL, NULL, NULL);
  else
    k_gemm_ordered<0><<<grid, 256, 0, st>>>(m, n, k, alpha, A, lda, sA, B, ldb, sB, rep, C, ldc, sC, zb, sA2, sB2, sC2,
                                            NULL, NULL, NULL);
}

// C[z] = alpha * A[z] . op(B[z / rep]) for z < batch, on stream st
static inline void gemm_ordered_launch(cudaStream_t st, int trans, int batch, int m, int n, int k, float alpha,
                                       const float *A, int lda, long long sA, const float *B, int ldb, long long sB,
                                       int rep, float *C, int ldc, long long sC) {
  gemm_ordered_batches(st, trans, 1, batch, m, n, k, alpha, A, lda, sA, 0, B, ldb, sB, 0, rep, C, ldc, sC, 0);
}

// C[z] = A[z] . B[z]^T for z < batch from device pointer tables: A [m][k], B [n][k], C [m][n] each
static inline void gemm_ordered_tables(cudaStream_t st, int batch, int m, int n, int k, const float *const *Ap,
                                       const float *const *Bp, float *const *Cp) {
  dim3 grid((unsigned)((n + OG_BN - 1) / OG_BN), (unsigned)((m + OG_BM - 1) / OG_BM), (unsigned)batch);
  k_gemm_ordered<1><<<grid, 256, 0, st>>>(m, n, k, 1.0f, NULL, k, 0, NULL, k, 0, 1, NULL, n, 0, 1, 0, 0, 0, Ap, Bp, Cp);
}

#endif
