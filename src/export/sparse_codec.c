/* The W8A8SC codec (cslim/compress.h, docs/sparse.md) and the NZ layout.
 *
 * Stream: a 24-byte header ("CSC1", version 1, 17 symbols, the 17 canonical
 * Huffman code lengths, a pad byte), then one unit per 512-byte fractal,
 * each starting on a byte boundary. Symbols: a code c in [-8, 7] is symbol
 * c + 8; any other int8 code is the escape symbol 16 followed by its 8 bits.
 * Bits are written most significant first. The index holds each unit's byte
 * offset (uint32 LE), so every fractal decodes on its own. */
#include "cslim/compress.h"

#include <stdlib.h>
#include <string.h>

#define NSYM 17
#define ESC 16
#define MAXLEN 15
#define BLOCK (CSLIM_NZ_ROWS * CSLIM_NZ_COLS)

/* ---- NZ layout ------------------------------------------------------------------------------------- */

static size_t up(size_t a, size_t b) { return (a + b - 1) / b; }

size_t cslim_nz_size(int n, int k) { return up((size_t)n, 16) * 16 * up((size_t)k, 32) * 32; }

void cslim_nd2nz(const int8_t *w, int n, int k, int8_t *nz) {
  size_t nb = up((size_t)n, 16), kb = up((size_t)k, 32);
#pragma omp parallel for schedule(static)
  for (size_t bk = 0; bk < kb; bk++)
    for (size_t bn = 0; bn < nb; bn++) {
      int8_t *o = nz + (bk * nb + bn) * BLOCK;
      for (int r = 0; r < 16; r++) {
        size_t row = bn * 16 + (size_t)r;
        for (int c = 0; c < 32; c++) {
          size_t col = bk * 32 + (size_t)c;
          o[r * 32 + c] = row < (size_t)n && col < (size_t)k ? w[row * (size_t)k + col] : 0;
        }
      }
    }
}

void cslim_nz2nd(const int8_t *nz, int n, int k, int8_t *w) {
  size_t nb = up((size_t)n, 16), kb = up((size_t)k, 32);
#pragma omp parallel for schedule(static)
  for (size_t bk = 0; bk < kb; bk++)
    for (size_t bn = 0; bn < nb; bn++) {
      const int8_t *o = nz + (bk * nb + bn) * BLOCK;
      for (int r = 0; r < 16; r++) {
        size_t row = bn * 16 + (size_t)r;
        if (row >= (size_t)n) break;
        for (int c = 0; c < 32; c++) {
          size_t col = bk * 32 + (size_t)c;
          if (col < (size_t)k) w[row * (size_t)k + col] = o[r * 32 + c];
        }
      }
    }
}

/* ---- Huffman code ------------------------------------------------------------------------------------ */

static int sym_of(int8_t c) { return c >= -8 && c <= 7 ? c + 8 : ESC; }

static void histogram(const int8_t *nz, size_t len, uint64_t *freq) {
  memset(freq, 0, NSYM * sizeof *freq);
#pragma omp parallel
  {
    uint64_t f[NSYM] = {0};
#pragma omp for schedule(static)
    for (size_t i = 0; i < len; i++) f[sym_of(nz[i])]++;
#pragma omp critical
    for (int s = 0; s < NSYM; s++) freq[s] += f[s];
  }
}

/* code lengths of a Huffman code for freq (0 for absent symbols), at most MAXLEN */
static void code_lengths(const uint64_t *freq_in, uint8_t *len) {
  uint64_t freq[NSYM];
  memcpy(freq, freq_in, sizeof freq);
  for (;;) {
    /* nodes: 0..16 leaves, then internal; plain O(n^2) selection on 17 symbols */
    uint64_t w[2 * NSYM];
    int parent[2 * NSYM], alive[2 * NSYM], nn = NSYM, used = 0;
    for (int s = 0; s < NSYM; s++) {
      w[s] = freq[s];
      alive[s] = freq[s] > 0;
      parent[s] = -1;
      used += alive[s];
    }
    memset(len, 0, NSYM);
    if (used == 0) return;
    if (used == 1) {
      for (int s = 0; s < NSYM; s++)
        if (freq[s]) len[s] = 1;
      return;
    }
    for (int left = used; left > 1; left--) {
      int a = -1, b = -1;
      for (int i = 0; i < nn; i++) {
        if (!alive[i]) continue;
        if (a < 0 || w[i] < w[a]) b = a, a = i;
        else if (b < 0 || w[i] < w[b]) b = i;
      }
      w[nn] = w[a] + w[b];
      alive[nn] = 1;
      parent[nn] = -1;
      alive[a] = alive[b] = 0;
      parent[a] = parent[b] = nn;
      nn++;
    }
    int maxl = 0;
    for (int s = 0; s < NSYM; s++) {
      if (!freq[s]) continue;
      int d = 0;
      for (int p = s; parent[p] >= 0; p = parent[p]) d++;
      len[s] = (uint8_t)d;
      maxl = d > maxl ? d : maxl;
    }
    if (maxl <= MAXLEN) return;
    for (int s = 0; s < NSYM; s++) /* flatten and retry */
      if (freq[s]) freq[s] = (freq[s] + 1) / 2;
  }
}

/* canonical codes from lengths; returns 0, or -1 when the lengths are not a valid prefix code */
static int canonical(const uint8_t *len, uint16_t *code) {
  int count[MAXLEN + 1] = {0};
  for (int s = 0; s < NSYM; s++) {
    if (len[s] > MAXLEN) return -1;
    count[len[s]]++;
  }
  count[0] = 0;
  int next[MAXLEN + 2], c = 0;
  long kraft = 0;
  for (int l = 1; l <= MAXLEN; l++) {
    c = (c + count[l - 1]) << 1;
    next[l] = c;
    kraft += (long)count[l] << (MAXLEN - l);
  }
  if (kraft > (1L << MAXLEN)) return -1;
  for (int s = 0; s < NSYM; s++)
    if (len[s]) code[s] = (uint16_t)next[len[s]]++;
  return 0;
}

/* ---- encoding ---------------------------------------------------------------------------------------- */

static size_t unit_bits(const int8_t *b, const uint8_t *len) {
  size_t bits = 0;
  for (int i = 0; i < BLOCK; i++) {
    int s = sym_of(b[i]);
    bits += len[s] + (s == ESC ? 8 : 0);
  }
  return bits;
}

typedef struct bitw {
  uint8_t *p;
  uint64_t acc;
  int n; /* bits in acc */
} bitw;

static void put(bitw *w, uint32_t v, int nbits) {
  w->acc = (w->acc << nbits) | v;
  w->n += nbits;
  while (w->n >= 8) {
    w->n -= 8;
    *w->p++ = (uint8_t)(w->acc >> w->n);
  }
}

static void flush(bitw *w) {
  if (w->n) *w->p++ = (uint8_t)(w->acc << (8 - w->n));
  w->n = 0;
}

static cslim_status plan(const int8_t *nz, size_t len, uint8_t *lens, size_t **offs, size_t *total) {
  if (len % BLOCK) return cslim_error(CSLIM_ERR_INVALID, "W8A8SC codec: %zu bytes is not a whole number of fractals", len);
  uint64_t freq[NSYM];
  histogram(nz, len, freq);
  code_lengths(freq, lens);
  size_t nb = len / BLOCK;
  size_t *o = malloc((nb + 1) * sizeof *o);
  if (!o) return cslim_error(CSLIM_ERR_NOMEM, "out of memory");
#pragma omp parallel for schedule(static)
  for (size_t b = 0; b < nb; b++) o[b + 1] = up(unit_bits(nz + b * BLOCK, lens), 8);
  o[0] = CSLIM_SC_HEADER;
  for (size_t b = 0; b < nb; b++) o[b + 1] += o[b];
  *offs = o;
  *total = o[nb];
  return CSLIM_OK;
}

size_t cslim_sc_encoded_size(const int8_t *nz, size_t len) {
  uint8_t lens[NSYM];
  size_t *o = NULL, total = 0;
  if (plan(nz, len, lens, &o, &total)) return 0;
  free(o);
  return total;
}

cslim_status cslim_sc_encode(const int8_t *nz, size_t len, cslim_sc_stream *out) {
  memset(out, 0, sizeof *out);
  uint8_t lens[NSYM];
  uint16_t code[NSYM] = {0};
  size_t *o = NULL, total = 0, nb = len / BLOCK;
  cslim_status rc = plan(nz, len, lens, &o, &total);
  if (rc) return rc;
  if (total - CSLIM_SC_HEADER > UINT32_MAX || canonical(lens, code)) {
    free(o);
    return cslim_error(CSLIM_ERR_UNSUPPORTED, "W8A8SC codec: a weight of %zu bytes is too large for one stream", len);
  }
  out->data = malloc(total);
  out->index = malloc(nb * 4 + 1);
  if (!out->data || !out->index) {
    free(o);
    cslim_sc_stream_free(out);
    return cslim_error(CSLIM_ERR_NOMEM, "out of memory");
  }
  memcpy(out->data, "CSC1", 4);
  out->data[4] = 1;
  out->data[5] = NSYM;
  memcpy(out->data + 6, lens, NSYM);
  out->data[23] = 0;
#pragma omp parallel for schedule(static)
  for (size_t b = 0; b < nb; b++) {
    bitw w = {out->data + o[b], 0, 0};
    const int8_t *blk = nz + b * BLOCK;
    for (int i = 0; i < BLOCK; i++) {
      int s = sym_of(blk[i]);
      put(&w, code[s], lens[s]);
      if (s == ESC) put(&w, (uint8_t)blk[i], 8);
    }
    flush(&w);
    uint32_t off = (uint32_t)o[b];
    for (int i = 0; i < 4; i++) out->index[b * 4 + (size_t)i] = (uint8_t)(off >> (8 * i));
  }
  out->len = total;
  out->index_len = nb * 4;
  free(o);
  return CSLIM_OK;
}

void cslim_sc_stream_free(cslim_sc_stream *s) {
  free(s->data);
  free(s->index);
  memset(s, 0, sizeof *s);
}

/* ---- decoding ---------------------------------------------------------------------------------------- */

cslim_status cslim_sc_decode(const uint8_t *data, size_t len, const uint8_t *index, size_t index_len, int8_t *nz,
                             size_t nz_len) {
  if (len < CSLIM_SC_HEADER || memcmp(data, "CSC1", 4) || data[4] != 1 || data[5] != NSYM)
    return cslim_error(CSLIM_ERR_FORMAT, "W8A8SC stream: not a cslim codec stream (header)");
  if (nz_len % BLOCK || index_len != nz_len / BLOCK * 4)
    return cslim_error(CSLIM_ERR_FORMAT, "W8A8SC stream: index of %zu bytes for %zu fractals", index_len,
                       nz_len / BLOCK);
  const uint8_t *lens = data + 6;
  uint16_t code[NSYM] = {0};
  if (canonical(lens, code)) return cslim_error(CSLIM_ERR_FORMAT, "W8A8SC stream: invalid code lengths");
  /* table: the next MAXLEN bits → symbol and length (0: no code) */
  uint16_t *tab = calloc((size_t)1 << MAXLEN, sizeof *tab);
  if (!tab) return cslim_error(CSLIM_ERR_NOMEM, "out of memory");
  for (int s = 0; s < NSYM; s++) {
    if (!lens[s]) continue;
    uint32_t first = (uint32_t)code[s] << (MAXLEN - lens[s]), cnt = 1u << (MAXLEN - lens[s]);
    for (uint32_t i = 0; i < cnt; i++) tab[first + i] = (uint16_t)(s << 4 | lens[s]);
  }
  size_t nb = nz_len / BLOCK;
  int bad = 0;
#pragma omp parallel for schedule(static)
  for (size_t b = 0; b < nb; b++) {
    uint32_t off = 0;
    for (int i = 0; i < 4; i++) off |= (uint32_t)index[b * 4 + (size_t)i] << (8 * i);
    size_t end = b + 1 < nb ? 0 : len, pos = off;
    if (b + 1 < nb)
      for (int i = 0; i < 4; i++) end |= (size_t)index[(b + 1) * 4 + (size_t)i] << (8 * i);
    if (off < CSLIM_SC_HEADER || end > len || off > end) {
#pragma omp atomic write
      bad = 1;
      continue;
    }
    uint64_t acc = 0;
    int have = 0;
    int8_t *dst = nz + b * BLOCK;
    for (int i = 0; i < BLOCK; i++) {
      while (have <= 56) { /* refill; bytes past the unit read as zero bits */
        acc = (acc << 8) | (pos < end ? data[pos] : 0);
        pos++;
        have += 8;
      }
      uint16_t t = tab[(acc >> (have - MAXLEN)) & ((1u << MAXLEN) - 1)];
      if (!t) {
#pragma omp atomic write
        bad = 1;
        break;
      }
      have -= t & 15;
      int s = t >> 4;
      if (s == ESC) {
        dst[i] = (int8_t)(uint8_t)(acc >> (have - 8));
        have -= 8;
      } else {
        dst[i] = (int8_t)(s - 8);
      }
    }
    /* the unit must end within its bytes */
    size_t used = (pos - off) * 8 - (size_t)have;
    if (used > (end - off) * 8) {
#pragma omp atomic write
      bad = 1;
    }
  }
  free(tab);
  if (bad) return cslim_error(CSLIM_ERR_FORMAT, "W8A8SC stream: corrupt unit (index or bits)");
  return CSLIM_OK;
}
