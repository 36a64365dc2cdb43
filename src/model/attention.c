/* Causal grouped-query attention of one sequence, head by head through BLAS:
 * S = (Q Kᵀ) * D^-0.5, causal mask, softmax in float32, O = P V. Query head h
 * reads key/value head h / (n_heads / n_kv_heads). */
#include "model/model_internal.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>

cslim_status cslim_attention(const float *q, const float *k, const float *v, int nq, int nk, int past,
                             int n_heads, int n_kv_heads, int head_dim, float *out) {
  const int D = head_dim, rep = n_heads / n_kv_heads;
  const int ldq = n_heads * D, ldk = n_kv_heads * D;
  const float scale = (float)(1.0 / sqrt((double)D)); /* head_dim ** -0.5 */
  const int nt = omp_get_max_threads();
  const size_t per = (size_t)nq * (size_t)nk;
  float *Sall = malloc((size_t)nt * per * sizeof(float));
  if (!Sall) return cslim_error(CSLIM_ERR_NOMEM, "out of memory for attention scores (%d x %d)", nq, nk);
#pragma omp parallel num_threads(nt)
  {
    float *S = Sall + (size_t)omp_get_thread_num() * per;
#pragma omp for schedule(dynamic, 1)
    for (int h = 0; h < n_heads; h++) {
      const int g = h / rep;
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nq, nk, D, scale, q + (size_t)h * D, ldq,
                  k + (size_t)g * D, ldk, 0.0f, S, nk);
      for (int i = 0; i < nq; i++) {
        float *row = S + (size_t)i * (size_t)nk;
        int valid = past + i + 1; /* keys 0 .. past+i */
        float mx = row[0];
        for (int j = 1; j < valid; j++) mx = row[j] > mx ? row[j] : mx;
        float sum = 0.0f;
        for (int j = 0; j < valid; j++) {
          row[j] = expf(row[j] - mx);
          sum += row[j];
        }
        for (int j = 0; j < valid; j++) row[j] /= sum;
        for (int j = valid; j < nk; j++) row[j] = 0.0f;
      }
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nq, D, nk, 1.0f, S, nk, v + (size_t)g * D, ldk,
                  0.0f, out + (size_t)h * D, ldq);
    }
  }
  free(Sall);
  return CSLIM_OK;
}
