/* Helpers shared by the benchmarks. */
#ifndef CSLIM_BENCH_UTIL_H
#define CSLIM_BENCH_UTIL_H

/* Measured OpenBLAS sgemm throughput (GFLOP/s) on a 2048 x 4096 x 4096
 * product, best of three after a warm-up: the GEMM limit that the
 * benchmarks print their achieved rate against. */
double bench_sgemm_peak(void);

/* The same product through cslim_gemm_ordered (the decoder's float Linears: ordered fma chains, the same bits on
 * every machine), GFLOP/s. */
double bench_ordered_gemm_rate(void);

#endif
