/* W8A8SC: weight compression of W8A8S checkpoints (spec §3.16).
 *
 * The layout steps are MindIE's: each W8A8S Linear is split for tensor
 * parallelism, its int8 codes laid out in 16×32 fractals (NZ), and compressed;
 * per weight the checkpoint holds `weight` (the compressed stream, int8 1-D),
 * `index` (int8) and `info` (int64 [5]), labelled W8A8SC. The byte stream of
 * Ascend's hardware decompressor is proprietary and undocumented, so the last
 * stage here is cslim's own open, lossless codec (docs/sparse.md): canonical
 * Huffman over the 16 four-bit code values plus an escape for int8 outliers,
 * one independently decodable unit per fractal. MindIE's loader needs its own
 * compressor for that stage. */
#ifndef CSLIM_COMPRESS_H
#define CSLIM_COMPRESS_H

#include "cslim/common.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- NZ (fractal) layout: [n][k] → [ceil(k/32)][ceil(n/16)][16][32], zero padded ---------------- */

#define CSLIM_NZ_ROWS 16
#define CSLIM_NZ_COLS 32
size_t cslim_nz_size(int n, int k); /* bytes: 16·ceil(n/16) · 32·ceil(k/32) */
void cslim_nd2nz(const int8_t *w, int n, int k, int8_t *nz);
void cslim_nz2nd(const int8_t *nz, int n, int k, int8_t *w);

/* ---- the codec --------------------------------------------------------------------------------- */

#define CSLIM_SC_HEADER 24 /* "CSC1", version, symbol count, 17 code lengths, pad */

typedef struct cslim_sc_stream {
  uint8_t *data;  /* header + one byte-aligned unit per 512-byte fractal */
  size_t len;
  uint8_t *index; /* uint32 LE offset of each unit in data */
  size_t index_len;
} cslim_sc_stream;

/* Encode nz (len a multiple of 512). Threaded over fractals. */
cslim_status cslim_sc_encode(const int8_t *nz, size_t len, cslim_sc_stream *out);
/* The exact encoded length of data (without encoding), for declaring tensors first. */
size_t cslim_sc_encoded_size(const int8_t *nz, size_t len);
/* Decode into nz[nz_len]; every malformed stream is an error (bounds checked). */
cslim_status cslim_sc_decode(const uint8_t *data, size_t len, const uint8_t *index, size_t index_len, int8_t *nz,
                             size_t nz_len);
void cslim_sc_stream_free(cslim_sc_stream *s);

/* ---- checkpoints ------------------------------------------------------------------------------------ */

typedef struct cslim_compress_params {
  const char *model_path; /* compress: a W8A8S checkpoint; decompress: a W8A8SC directory (part*-of-N) */
  const char *save_path;  /* written atomically */
  int tp;                 /* compress: tensor-parallel degree (>= 1) */
  int overwrite;
} cslim_compress_params;

typedef struct cslim_compress_report {
  int tp;
  int n_weights;             /* W8A8S weights (de)compressed */
  uint64_t codes_bytes;      /* their int8 codes */
  uint64_t stream_bytes;     /* compressed: weight streams + index + info, all ranks */
  double seconds;
  uint64_t bytes_read, bytes_written;
  char out_dir[4096];
} cslim_compress_report;

/* W8A8S → W8A8SC: for each rank r a directory part{r}-of-{tp} with quant_model_weight_w8a8sc.safetensors,
 * quant_model_description.json (model_quant_type W8A8SC) and the model's other files. Column-parallel
 * Linears (q, k, v, gate, up, ...) are split by output rows, row-parallel ones (o_proj, down_proj,
 * attn.proj, linear_fc2) by input columns; per rank, weight / index / info are W8A8SC, input_scale /
 * input_offset / deq_scale / quant_bias stay W8A8S (sliced with the rows; for a row split every rank
 * holds its columns' offset correction and rank 0 the bias part). Other tensors are copied whole. */
cslim_status cslim_compress(const cslim_compress_params *p, cslim_compress_report *r);
/* W8A8SC → the W8A8S checkpoint it came from (every tensor bit-exact). */
cslim_status cslim_decompress(const cslim_compress_params *p, cslim_compress_report *r);

#ifdef __cplusplus
}
#endif
#endif
