// The GPU's ordered float32 GEMM (src/backend/gemm_ordered.cuh: --gpu_gemm fp32's products and m6's search) on the
// shapes it serves, next to the GPU's float32 peak and cuBLAS's float32 SGEMM on the same shapes (no TF32: the same
// arithmetic, in any order). Every product is also checked bit for bit against the CPU's cslim_gemm_ordered: a
// difference exits non-zero. Needs a CUDA device: bench_gemm_ordered [iterations]
#include "backend/gemm_ordered.cuh"

#include <cublas_v2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <vector>

extern "C" {
#include "model/model_internal.h"
}

#define CK(x)                                                                                                          \
  do {                                                                                                                 \
    cudaError_t e_ = (x);                                                                                              \
    if (e_ != cudaSuccess) {                                                                                           \
      fprintf(stderr, "bench_gemm_ordered: %s: %s\n", #x, cudaGetErrorString(e_));                                     \
      exit(1);                                                                                                         \
    }                                                                                                                  \
  } while (0)

struct shape {
  const char *what;
  int trans, batch, m, n, k, tables; // tables: the MoE block's pointer tables (A, B, C each batch member's own)
};

// a deterministic fill in [-1, 1) with some exact zeros (a zero product must not change a chain)
static void fill(std::vector<float> &v, unsigned seed) {
  unsigned s = seed * 2654435761u + 1;
  for (size_t i = 0; i < v.size(); i++) {
    s = s * 1664525u + 1013904223u;
    v[i] = (s >> 8) % 97 == 0 ? 0.0f : (float)((s >> 8) & 0xffff) / 32768.0f - 1.0f;
  }
}

int main(int argc, char **argv) {
  const int iters = argc > 1 ? atoi(argv[1]) : 10;
  const shape shapes[] = {
      {"m6 search, q/k/v of Qwen3-8B (512 rows)", 1, 1, 512, 6144, 4096, 0},
      {"m6 search, gate/up of Qwen3-8B (512 rows)", 1, 1, 512, 24576, 4096, 0},
      {"m6 search, down of Qwen3-8B (512 rows)", 1, 1, 512, 4096, 12288, 0},
      {"forward q/k/v of Qwen3-8B (4096 rows)", 1, 1, 4096, 6144, 4096, 0},
      {"forward down of Qwen3-8B (4096 rows)", 1, 1, 4096, 4096, 12288, 0},
      {"attention scores, 32 heads of 512 x 512 x 128", 1, 32, 512, 512, 128, 0},
      {"attention values, 32 heads of 512 x 128 x 512", 0, 32, 512, 128, 512, 0},
      {"attention values, 509 keys (S element loads, V float4)", 0, 32, 509, 128, 509, 0},
      {"MoE chunks, 64 of 128 rows x 768 x 2048", 1, 64, 128, 768, 2048, 1},
      {"unaligned 333 x 517 x 1001 (element loads)", 1, 1, 333, 517, 1001, 0},
      {"unaligned 77 x 130 x 45, B [k][n]", 0, 3, 77, 130, 45, 0},
  };
  int dev = 0, sms = 0, khz = 0, major = 0, minor = 0;
  CK(cudaSetDevice(dev));
  cudaDeviceProp prop;
  CK(cudaGetDeviceProperties(&prop, dev));
  CK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
  CK(cudaDeviceGetAttribute(&khz, cudaDevAttrClockRate, dev));
  CK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
  CK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev));
  const int lanes = major == 8 && minor == 0 ? 64 : 128; // float32 lanes a multiprocessor (A100: 64)
  const double peak = (double)sms * lanes * 2 * khz * 1e3 / 1e12;
  printf("%s: %d multiprocessors x %d float32 lanes x 2 x %.2f GHz = %.1f TFLOP/s float32 peak\n", prop.name, sms,
         lanes, khz / 1e6, peak);
  printf("%-48s %10s %12s %12s %8s\n", "product", "GFLOP", "ordered", "cuBLAS fp32", "bits");
  cublasHandle_t h;
  if (cublasCreate(&h) != CUBLAS_STATUS_SUCCESS) return fprintf(stderr, "bench_gemm_ordered: cuBLAS\n"), 1;
  cublasSetMathMode(h, CUBLAS_PEDANTIC_MATH); // float32 arithmetic, no TF32
  cudaEvent_t e0, e1;
  CK(cudaEventCreate(&e0));
  CK(cudaEventCreate(&e1));
  int bad = 0;
  const int cpus = (int)sysconf(_SC_NPROCESSORS_ONLN);
  for (const shape &s : shapes) {
    const size_t za = (size_t)s.m * s.k, zb = (size_t)s.n * s.k, zc = (size_t)s.m * s.n;
    std::vector<float> A(za * s.batch), B(zb * s.batch), C(zc * s.batch), R(zc * s.batch);
    fill(A, 1 + s.m), fill(B, 2 + s.n);
    float *dA, *dB, *dC, *dR;
    CK(cudaMalloc(&dA, A.size() * 4));
    CK(cudaMalloc(&dB, B.size() * 4));
    CK(cudaMalloc(&dC, C.size() * 4));
    CK(cudaMalloc(&dR, C.size() * 4));
    CK(cudaMemcpy(dA, A.data(), A.size() * 4, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(dB, B.data(), B.size() * 4, cudaMemcpyHostToDevice));
    const float **tab = NULL;
    if (s.tables) {
      std::vector<const float *> t(3 * (size_t)s.batch);
      for (int z = 0; z < s.batch; z++)
        t[z] = dA + z * za, t[s.batch + z] = dB + z * zb, t[2 * s.batch + z] = dC + z * zc;
      CK(cudaMalloc(&tab, t.size() * sizeof(float *)));
      CK(cudaMemcpy(tab, t.data(), t.size() * sizeof(float *), cudaMemcpyHostToDevice));
    }
    // B's leading dimension: k when B is [n][k], n when [k][n]
    const int ldb = s.trans ? s.k : s.n;
    auto ordered = [&]() {
      if (s.tables)
        gemm_ordered_tables(0, s.batch, s.m, s.n, s.k, tab, tab + s.batch, (float *const *)(tab + 2 * s.batch));
      else
        gemm_ordered_launch(0, s.trans, s.batch, s.m, s.n, s.k, 1.0f, dA, s.k, za, dB, ldb, zb, 1, dC, s.n, zc);
    };
    // cuBLAS, column-major: C^T [n][m] = op(B)^T . A^T
    const float one = 1.0f, zero = 0.0f;
    auto blas = [&]() {
      cublasSgemmStridedBatched(h, s.trans ? CUBLAS_OP_T : CUBLAS_OP_N, CUBLAS_OP_N, s.n, s.m, s.k, &one, dB, ldb,
                                zb, dA, s.k, za, &zero, dR, s.n, zc, s.batch);
    };
    auto time = [&](auto f) {
      f();
      CK(cudaDeviceSynchronize());
      CK(cudaEventRecord(e0));
      for (int i = 0; i < iters; i++) f();
      CK(cudaEventRecord(e1));
      CK(cudaEventSynchronize(e1));
      float ms = 0;
      CK(cudaEventElapsedTime(&ms, e0, e1));
      return ms / iters * 1e-3;
    };
    const double flop = 2.0 * s.m * s.n * s.k * s.batch;
    const double t_ord = time(ordered), t_blas = time(blas);
    CK(cudaGetLastError());
    CK(cudaMemcpy(C.data(), dC, C.size() * 4, cudaMemcpyDeviceToHost));
    // the CPU's chains
    for (int z = 0; z < s.batch; z++)
      if (cslim_gemm_ordered(s.trans, s.m, s.n, s.k, 1.0f, A.data() + z * za, s.k, B.data() + z * zb, ldb,
                             R.data() + z * zc, s.n, cpus) != CSLIM_OK)
        return fprintf(stderr, "bench_gemm_ordered: out of memory\n"), 1;
    size_t diff = 0;
    for (size_t i = 0; i < C.size(); i++) diff += memcmp(&C[i], &R[i], 4) != 0;
    bad |= diff != 0;
    char bits[32];
    snprintf(bits, sizeof bits, diff ? "%zu differ" : "CPU's", diff);
    printf("%-48s %10.2f %7.1f TF/s %7.1f TF/s %8s   (%.0f %% of peak)\n", s.what, flop / 1e9, flop / t_ord / 1e12,
           flop / t_blas / 1e12, bits, 100.0 * flop / t_ord / 1e12 / peak);
    cudaFree(dA), cudaFree(dB), cudaFree(dC), cudaFree(dR);
    if (tab) cudaFree(tab);
  }
  cublasDestroy(h);
  return bad;
}
