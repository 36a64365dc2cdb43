/* Hadamard matrices and QuaRot's random rotations (spec §3.14).
 *
 * A block of size b = K·2^m is rotated as x ← (x∘ε)·T with
 * T = (H_K ⊗ H_{2^m}) / √b: the 2^m part by radix-2 butterflies on each of
 * the K rows of x viewed as [K][2^m], the K part by a K×K product with a
 * Paley base matrix. K is the smallest base order that fits (1 for powers of
 * two, 20 for 2560 and 5120, 12 for 3072, 28 for 3584, ...). */
#include "cslim/transform.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

/* ---- base matrices ----------------------------------------------------------------------- */

static int is_prime(int q) {
  if (q < 2) return 0;
  for (int d = 2; d * d <= q; d++)
    if (q % d == 0) return 0;
  return 1;
}

/* quadratic character of a mod q (q an odd prime), from a table of squares */
static void legendre_table(int q, signed char *chi) {
  for (int a = 0; a < q; a++) chi[a] = -1;
  chi[0] = 0;
  for (int x = 1; x < q; x++) chi[(int)(((long)x * x) % q)] = 1;
}

/* Paley I: q ≡ 3 (mod 4), order q+1: H = I + S, S = [[0, 1ᵀ], [-1, Q]],
 * Q[i][j] = χ(j - i) (antisymmetric). */
static void paley1(int q, int8_t *h) {
  int n = q + 1;
  signed char *chi = malloc((size_t)q);
  legendre_table(q, chi);
  for (int i = 0; i < n; i++)
    for (int j = 0; j < n; j++) {
      int s;
      if (i == 0) s = j == 0 ? 0 : 1;
      else if (j == 0) s = -1;
      else s = chi[((j - i) % q + q) % q];
      h[(size_t)i * n + j] = (int8_t)(s + (i == j));
    }
  free(chi);
}

/* Paley II: q ≡ 1 (mod 4), order 2(q+1): S = [[0, 1ᵀ], [1, Q]] (symmetric);
 * each 0 of S becomes [[1,-1],[-1,-1]], each ±1 becomes ±[[1,1],[1,-1]]. */
static void paley2(int q, int8_t *h) {
  int m = q + 1, n = 2 * m;
  signed char *chi = malloc((size_t)q);
  legendre_table(q, chi);
  for (int i = 0; i < m; i++)
    for (int j = 0; j < m; j++) {
      int s;
      if (i == 0) s = j == 0 ? 0 : 1;
      else if (j == 0) s = 1;
      else s = chi[((j - i) % q + q) % q];
      int8_t b[4];
      if (s == 0) b[0] = 1, b[1] = -1, b[2] = -1, b[3] = -1;
      else b[0] = (int8_t)s, b[1] = (int8_t)s, b[2] = (int8_t)s, b[3] = (int8_t)-s;
      h[(size_t)(2 * i) * n + 2 * j] = b[0];
      h[(size_t)(2 * i) * n + 2 * j + 1] = b[1];
      h[(size_t)(2 * i + 1) * n + 2 * j] = b[2];
      h[(size_t)(2 * i + 1) * n + 2 * j + 1] = b[3];
    }
  free(chi);
}

/* 1 when order n has a direct construction (no doubling) */
static int direct(int n) {
  if (n == 1 || n == 2) return 1;
  if (is_prime(n - 1) && (n - 1) % 4 == 3) return 1;
  if (n % 2 == 0 && is_prime(n / 2 - 1) && (n / 2 - 1) % 4 == 1) return 1;
  return 0;
}

static int constructible(int n) {
  while (n > 1 && !direct(n)) {
    if (n % 2) return 0;
    n /= 2;
  }
  return n >= 1;
}

cslim_status cslim_hadamard_matrix(int n, int8_t *h) {
  if (n < 1 || !constructible(n))
    return cslim_error(CSLIM_ERR_UNSUPPORTED, "no Hadamard matrix of order %d here (orders K*2^m with K = 1, q+1 for "
                       "a prime q = 3 mod 4, or 2(q+1) for a prime q = 1 mod 4)", n);
  if (n == 1) {
    h[0] = 1;
  } else if (n == 2) {
    h[0] = h[1] = h[2] = 1;
    h[3] = -1;
  } else if (is_prime(n - 1) && (n - 1) % 4 == 3) {
    paley1(n - 1, h);
  } else if (n % 2 == 0 && is_prime(n / 2 - 1) && (n / 2 - 1) % 4 == 1) {
    paley2(n / 2 - 1, h);
  } else { /* Sylvester doubling: [[H, H], [H, -H]] */
    int k = n / 2;
    int8_t *s = malloc((size_t)k * k);
    if (!s) return cslim_error(CSLIM_ERR_NOMEM, "out of memory");
    cslim_status rc = cslim_hadamard_matrix(k, s);
    for (int i = 0; !rc && i < k; i++)
      for (int j = 0; j < k; j++) {
        int8_t v = s[(size_t)i * k + j];
        h[(size_t)i * n + j] = v;
        h[(size_t)i * n + j + k] = v;
        h[(size_t)(i + k) * n + j] = v;
        h[(size_t)(i + k) * n + j + k] = (int8_t)-v;
      }
    free(s);
    return rc;
  }
  return CSLIM_OK;
}

/* b = K·2^m with the smallest directly constructible K; 0 when none */
static int base_order(int b) {
  if (b < 1) return 0;
  int odd = b;
  while (odd % 2 == 0) odd /= 2;
  for (int k = odd; k <= b; k *= 2)
    if (b % k == 0 && (k == 1 || (k > 2 && direct(k)))) return k;
  return 0;
}

int cslim_hadamard_supported(int n) { return base_order(n) > 0; }

/* ---- rotations ------------------------------------------------------------------------------- */

struct cslim_rotation {
  int n, b, K, P; /* size, block, base order, 2^m */
  int shifted;
  float *eps;     /* [b] random signs */
  float *hk;      /* [K][K] base matrix (±1) */
  float norm;     /* 1 / √b */
};

static uint64_t splitmix64(uint64_t *s) {
  uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

cslim_status cslim_rotation_new(int n, int block_size, cslim_rot_mode mode, uint64_t seed, cslim_rotation **out) {
  *out = NULL;
  int b = block_size > 0 ? block_size : mode == CSLIM_ROT_BLOCK_SHIFTED ? 32 : n;
  if (n <= 0 || b > n || n % b)
    return cslim_error(CSLIM_ERR_INVALID, "rotation of size %d: block size %d must divide it", n, b);
  if (mode == CSLIM_ROT_BLOCK_SHIFTED && (b % 2 || n / b < 1))
    return cslim_error(CSLIM_ERR_INVALID, "shifted block rotation of size %d needs an even block size (got %d)", n, b);
  int K = base_order(b);
  if (!K)
    return cslim_error(CSLIM_ERR_UNSUPPORTED, "no Hadamard transform of size %d (sizes K*2^m with K = 1, 12, 20, 28, "
                       "36, 44, 60, ... are supported)", b);
  cslim_rotation *r = calloc(1, sizeof *r);
  if (!r) return cslim_error(CSLIM_ERR_NOMEM, "out of memory");
  r->n = n;
  r->b = b;
  r->K = K;
  r->P = b / K;
  r->shifted = mode == CSLIM_ROT_BLOCK_SHIFTED;
  r->norm = (float)(1.0 / sqrt((double)b));
  r->eps = malloc((size_t)b * sizeof(float));
  r->hk = malloc((size_t)K * K * sizeof(float));
  int8_t *h = malloc((size_t)K * K);
  cslim_status rc = r->eps && r->hk && h ? cslim_hadamard_matrix(K, h) : cslim_error(CSLIM_ERR_NOMEM, "out of memory");
  if (rc) {
    free(h);
    cslim_rotation_free(r);
    return rc;
  }
  for (int i = 0; i < K * K; i++) r->hk[i] = (float)h[i];
  free(h);
  uint64_t s = seed;
  for (int i = 0; i < b; i++) r->eps[i] = (splitmix64(&s) >> 63) ? -1.0f : 1.0f;
  *out = r;
  return CSLIM_OK;
}

void cslim_rotation_free(cslim_rotation *r) {
  if (!r) return;
  free(r->eps);
  free(r->hk);
  free(r);
}

int cslim_rotation_size(const cslim_rotation *r) { return r->n; }

/* v[b] ← (v∘ε)·T; tmp[b] scratch */
static void rotate_block(const cslim_rotation *r, float *v, float *tmp) {
  const int K = r->K, P = r->P, b = r->b;
  for (int i = 0; i < b; i++) v[i] *= r->eps[i];
  for (int k = 0; k < K; k++) {
    float *x = v + (size_t)k * P;
    for (int h = 1; h < P; h *= 2)
      for (int i = 0; i < P; i += 2 * h)
        for (int j = i; j < i + h; j++) {
          float a = x[j], c = x[j + h];
          x[j] = a + c;
          x[j + h] = a - c;
        }
  }
  if (K == 1) {
    for (int i = 0; i < b; i++) v[i] *= r->norm;
    return;
  }
  /* out[k'][:] = Σ_k H[k][k'] · V[k][:] */
  for (int i = 0; i < b; i++) tmp[i] = 0.0f;
  for (int k = 0; k < K; k++) {
    const float *x = v + (size_t)k * P;
    for (int kk = 0; kk < K; kk++) {
      const float hv = r->hk[(size_t)k * K + kk];
      float *o = tmp + (size_t)kk * P;
      for (int j = 0; j < P; j++) o[j] += hv * x[j];
    }
  }
  for (int i = 0; i < b; i++) v[i] = tmp[i] * r->norm;
}

static void rotate_row(const cslim_rotation *r, float *x, float *tmp) {
  for (int o = 0; o < r->n; o += r->b) rotate_block(r, x + o, tmp);
  if (!r->shifted) return;
  /* ·P: cyclic shift by half a block ((xP)[j] = x[(j - b/2) mod n]), then ·B again */
  const int sh = r->b / 2, n = r->n;
  memcpy(tmp, x + n - sh, (size_t)sh * sizeof(float));
  memmove(x + sh, x, (size_t)(n - sh) * sizeof(float));
  memcpy(x, tmp, (size_t)sh * sizeof(float));
  for (int o = 0; o < n; o += r->b) rotate_block(r, x + o, tmp);
}

void cslim_rotation_apply_rows(const cslim_rotation *r, float *x, size_t rows) {
  const size_t n = (size_t)r->n;
#pragma omp parallel if (rows > 8)
  {
    float *tmp = malloc((size_t)r->b * sizeof(float));
#pragma omp for schedule(static)
    for (long i = 0; i < (long)rows; i++) rotate_row(r, x + (size_t)i * n, tmp);
    free(tmp);
  }
}

cslim_status cslim_rotation_apply_left(const cslim_rotation *r, float *w, int cols) {
  /* Rᵀ·W = (Wᵀ·R)ᵀ: rotate the rows of Wᵀ */
  const size_t n = (size_t)r->n, c = (size_t)cols;
  float *t = malloc(n * c * sizeof(float));
  if (!t) return cslim_error(CSLIM_ERR_NOMEM, "out of memory for a %zu x %zu rotation", n, c);
#pragma omp parallel for schedule(static)
  for (long j = 0; j < (long)c; j++)
    for (size_t i = 0; i < n; i++) t[(size_t)j * n + i] = w[i * c + (size_t)j];
  cslim_rotation_apply_rows(r, t, c);
#pragma omp parallel for schedule(static)
  for (long i = 0; i < (long)n; i++)
    for (size_t j = 0; j < c; j++) w[(size_t)i * c + j] = t[j * n + (size_t)i];
  free(t);
  return CSLIM_OK;
}

cslim_status cslim_rotation_matrix(const cslim_rotation *r, float *out) {
  const size_t n = (size_t)r->n;
  memset(out, 0, n * n * sizeof(float));
  for (size_t i = 0; i < n; i++) out[i * n + i] = 1.0f;
  cslim_rotation_apply_rows(r, out, n);
  return CSLIM_OK;
}
