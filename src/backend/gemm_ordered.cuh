// The ordered float32 GEMM of model/repro.h on the GPU, shared by the layer engine (cuda_layer.cu) and the
// float GEMM offload (cuda_gemm.cu): every element one fma chain over t, as the CPU's cslim_gemm_ordered, so
// --gpu_gemm fp32 gives the CPU's bits. bench/bench_gemm_ordered measures it against the float32 peak and
// checks it against the CPU bit for bit.
#ifndef CSLIM_BACKEND_GEMM_ORDERED_CUH
#define CSLIM_BACKEND_GEMM_ORDERED_CUH

#include <cuda_runtime.h>
#include <stdint.h>

// C[z] = alpha * A[z] . op(B[z / rep]) with each element one ordered fma chain over t (model/repro.h), as the CPU's
// cslim_gemm_ordered: A row-major [m][lda]; B [n][ldb] (TRANS: t contiguous) or [k][ldb] (j contiguous); C [m][ldc].
// Batches of zb (attention: a sequence's heads) step by sA2 / sB2 / sC2, the members of a batch by sA / sB / sC.
// With pointer tables (Ap non-NULL; device arrays, one entry per z) A[z] = Ap[z], B[z] = Bp[z], C[z] = Cp[z] instead
// of the strides: the MoE block's chunks, each with its own expert's weights.
//
// A 128 x 128 tile per block of 256 threads, 8 x 8 outputs a thread, depth steps of 16 through two shared-memory
// buffers: the next step's tiles are read from global memory into registers while the current one is multiplied, so
// one barrier a step. Each operand's tiles are read as float4 where it allows (16-byte aligned, its leading dimension
// and the extent along its rows multiples of 4: one test per block), else element by element — so the attention's
// P.V reads V as float4 whatever the number of keys. Rows and columns past m / n read as zeros; the last step stops
// at k, so every chain is exactly the CPU's (no padding fma, not even fma(0, 0, acc)).
#define OG_BM 128
#define OG_BN 128
#define OG_BK 16
#define OG_THREADS 256

__device__ __forceinline__ static bool og_aligned(const float *p, long long ld) {
  return ((uintptr_t)p & 15) == 0 && (ld & 3) == 0;
}

// rows x OG_BK of a t-contiguous operand (row-major [rows][ld]) into registers, a float4 a thread: consecutive
// threads on consecutive rows, so that the transposed stores below hit distinct banks
template <int ROWS>
__device__ __forceinline__ static void og_load_rows(float4 *r, const float *P, long long ld, int r0, int nr, int t0,
                                                    int k, bool vec, int tid) {
#pragma unroll
  for (int i = 0; i < ROWS * OG_BK / 4 / OG_THREADS; i++) {
    const int l = tid + i * OG_THREADS, row = l % ROWS, c = l / ROWS * 4, gi = r0 + row, gt = t0 + c;
    const float *p = P + (size_t)gi * ld + gt;
    if (vec) {
      r[i] = gi < nr && gt < k ? *(const float4 *)p : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    } else {
      const bool in = gi < nr;
      r[i].x = in && gt < k ? p[0] : 0.0f;
      r[i].y = in && gt + 1 < k ? p[1] : 0.0f;
      r[i].z = in && gt + 2 < k ? p[2] : 0.0f;
      r[i].w = in && gt + 3 < k ? p[3] : 0.0f;
    }
  }
}

// ... and stored transposed, depth-major: S[t][row]
template <int ROWS>
__device__ __forceinline__ static void og_store_rows(float *S, const float4 *r, int tid) {
#pragma unroll
  for (int i = 0; i < ROWS * OG_BK / 4 / OG_THREADS; i++) {
    const int l = tid + i * OG_THREADS, row = l % ROWS, c = l / ROWS * 4;
    S[(c + 0) * ROWS + row] = r[i].x;
    S[(c + 1) * ROWS + row] = r[i].y;
    S[(c + 2) * ROWS + row] = r[i].z;
    S[(c + 3) * ROWS + row] = r[i].w;
  }
}

// OG_BK x OG_BN of a j-contiguous operand ([k][ld]) into registers, as stored
__device__ __forceinline__ static void og_load_cols(float4 *r, const float *P, long long ld, int j0, int n, int t0,
                                                    int k, bool vec, int tid) {
#pragma unroll
  for (int i = 0; i < OG_BN * OG_BK / 4 / OG_THREADS; i++) {
    const int l = tid + i * OG_THREADS, tt = l / (OG_BN / 4), c = (l % (OG_BN / 4)) * 4, gt = t0 + tt, gj = j0 + c;
    const float *p = P + (size_t)gt * ld + gj;
    if (vec) {
      r[i] = gt < k && gj < n ? *(const float4 *)p : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    } else {
      const bool in = gt < k;
      r[i].x = in && gj < n ? p[0] : 0.0f;
      r[i].y = in && gj + 1 < n ? p[1] : 0.0f;
      r[i].z = in && gj + 2 < n ? p[2] : 0.0f;
      r[i].w = in && gj + 3 < n ? p[3] : 0.0f;
    }
  }
}

__device__ __forceinline__ static void og_store_cols(float *S, const float4 *r, int tid) {
#pragma unroll
  for (int i = 0; i < OG_BN * OG_BK / 4 / OG_THREADS; i++) {
    const int l = tid + i * OG_THREADS, tt = l / (OG_BN / 4), c = (l % (OG_BN / 4)) * 4;
    *(float4 *)&S[tt * OG_BN + c] = r[i];
  }
}

// one depth step t of the thread's 8 x 8 outputs: rows ty * 4 + {0..3, 64..67}, columns tx * 4 + {0..3, 64..67}
__device__ __forceinline__ static void og_step(float (*acc)[8], const float *As, const float *Bs, int t, int ty,
                                               int tx) {
  float a[8], b[8];
  const float4 a0 = *(const float4 *)&As[t * OG_BM + ty * 4], a1 = *(const float4 *)&As[t * OG_BM + ty * 4 + 64];
  a[0] = a0.x, a[1] = a0.y, a[2] = a0.z, a[3] = a0.w, a[4] = a1.x, a[5] = a1.y, a[6] = a1.z, a[7] = a1.w;
  const float4 b0 = *(const float4 *)&Bs[t * OG_BN + tx * 4], b1 = *(const float4 *)&Bs[t * OG_BN + tx * 4 + 64];
  b[0] = b0.x, b[1] = b0.y, b[2] = b0.z, b[3] = b0.w, b[4] = b1.x, b[5] = b1.y, b[6] = b1.z, b[7] = b1.w;
#pragma unroll
  for (int p = 0; p < 8; p++)
#pragma unroll
    for (int q = 0; q < 8; q++) acc[p][q] = fmaf(a[p], b[q], acc[p][q]);
}

// MINB: resident blocks a multiprocessor the registers are held to (2: 128 registers, a few spilt; 1: none spilt)
template <int TRANS, int MINB>
__global__ void __launch_bounds__(OG_THREADS, MINB)
    k_gemm_ordered(int m, int n, int k, float alpha, const float *A, int lda, long long sA, const float *B, int ldb,
                   long long sB, int rep, float *C, int ldc, long long sC, int zb, long long sA2, long long sB2,
                   long long sC2, const float *const *Ap, const float *const *Bp, float *const *Cp) {
  __shared__ __align__(16) float As[2][OG_BK * OG_BM];
  __shared__ __align__(16) float Bs[2][OG_BK * OG_BN];
  const int z = blockIdx.z;
  if (Ap) {
    A = Ap[z], B = Bp[z], C = Cp[z];
  } else {
    const int z1 = z / zb, z0 = z % zb;
    A += z1 * sA2 + z0 * sA;
    B += z1 * sB2 + (z0 / rep) * sB;
    C += z1 * sC2 + z0 * sC;
  }
  const int i0 = blockIdx.y * OG_BM, j0 = blockIdx.x * OG_BN, tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
  const bool va = (k & 3) == 0 && og_aligned(A, lda), vb = (TRANS ? (k & 3) == 0 : (n & 3) == 0) && og_aligned(B, ldb);
  float acc[8][8];
#pragma unroll
  for (int p = 0; p < 8; p++)
#pragma unroll
    for (int q = 0; q < 8; q++) acc[p][q] = 0.0f;
  constexpr int NA = OG_BM * OG_BK / 4 / OG_THREADS, NB = OG_BN * OG_BK / 4 / OG_THREADS;
  float4 ra[NA], rb[NB];
  og_load_rows<OG_BM>(ra, A, lda, i0, m, 0, k, va, tid);
  if (TRANS)
    og_load_rows<OG_BN>(rb, B, ldb, j0, n, 0, k, vb, tid);
  else
    og_load_cols(rb, B, ldb, j0, n, 0, k, vb, tid);
  og_store_rows<OG_BM>(As[0], ra, tid);
  if (TRANS)
    og_store_rows<OG_BN>(Bs[0], rb, tid);
  else
    og_store_cols(Bs[0], rb, tid);
  __syncthreads();
  for (int t0 = 0, cur = 0; t0 < k; t0 += OG_BK, cur ^= 1) {
    const bool more = t0 + OG_BK < k;
    if (more) { // the next step's tiles, in flight while this one is multiplied
      og_load_rows<OG_BM>(ra, A, lda, i0, m, t0 + OG_BK, k, va, tid);
      if (TRANS)
        og_load_rows<OG_BN>(rb, B, ldb, j0, n, t0 + OG_BK, k, vb, tid);
      else
        og_load_cols(rb, B, ldb, j0, n, t0 + OG_BK, k, vb, tid);
    }
    if (more) {
#pragma unroll
      for (int t = 0; t < OG_BK; t++) og_step(acc, As[cur], Bs[cur], t, ty, tx);
    } else { // the last step ends at k: no padding enters a chain
      for (int t = 0; t < k - t0; t++) og_step(acc, As[cur], Bs[cur], t, ty, tx);
    }
    if (more) {
      og_store_rows<OG_BM>(As[cur ^ 1], ra, tid);
      if (TRANS)
        og_store_rows<OG_BN>(Bs[cur ^ 1], rb, tid);
      else
        og_store_cols(Bs[cur ^ 1], rb, tid);
    }
    __syncthreads();
  }
#pragma unroll
  for (int p = 0; p < 8; p++) {
    const int gi = i0 + ty * 4 + (p % 4) + (p / 4) * 64;
    if (gi >= m) continue;
#pragma unroll
    for (int q = 0; q < 8; q++) {
      const int gj = j0 + tx * 4 + (q % 4) + (q / 4) * 64;
      if (gj < n) C[(size_t)gi * ldc + gj] = alpha == 1.0f ? acc[p][q] : acc[p][q] * alpha;
    }
  }
}

template <int TRANS, int MINB>
static inline void og_launch(cudaStream_t st, int batch, int m, int n, int k, float alpha, const float *A, int lda,
                             long long sA, const float *B, int ldb, long long sB, int rep, float *C, int ldc,
                             long long sC, int zb, long long sA2, long long sB2, long long sC2,
                             const float *const *Ap, const float *const *Bp, float *const *Cp) {
  dim3 grid((unsigned)((n + OG_BN - 1) / OG_BN), (unsigned)((m + OG_BM - 1) / OG_BM), (unsigned)batch);
  k_gemm_ordered<TRANS, MINB><<<grid, OG_THREADS, 0, st>>>(m, n, k, alpha, A, lda, sA, B, ldb, sB, rep, C, ldc, sC,
                                                           zb, sA2, sB2, sC2, Ap, Bp, Cp);
}

// C[z] = alpha * A[z] . op(B[z / rep]) for z < nb * zb, on stream st: nb batches of zb (strides sA2 / sB2 / sC2)
static inline void gemm_ordered_batches(cudaStream_t st, int trans, int nb, int zb, int m, int n, int k, float alpha,
                                        const float *A, int lda, long long sA, long long sA2, const float *B, int ldb,
                                        long long sB, long long sB2, int rep, float *C, int ldc, long long sC,
                                        long long sC2) {
  if (trans)
    og_launch<1, 2>(st, nb * zb, m, n, k, alpha, A, lda, sA, B, ldb, sB, rep, C, ldc, sC, zb, sA2, sB2, sC2, NULL, NULL,
                    NULL);
  else
    og_launch<0, 2>(st, nb * zb, m, n, k, alpha, A, lda, sA, B, ldb, sB, rep, C, ldc, sC, zb, sA2, sB2, sC2, NULL, NULL,
                    NULL);
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
  // one block a multiprocessor measured faster here (the tables' pointers on top of the 128 registers spill more)
  og_launch<1, 1>(st, batch, m, n, k, 1.0f, NULL, k, 0, NULL, k, 0, 1, NULL, n, 0, 1, 0, 0, 0, Ap, Bp, Cp);
}

#endif
