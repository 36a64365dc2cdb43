/* safetensors: memory-mapped reader (single files, sharded checkpoints) and a
 * streaming, sharding writer.
 *
 * Format: 8-byte little-endian header length N, N bytes of JSON
 *   {"__metadata__": {str: str}?, NAME: {"dtype": D, "shape": [..],
 *    "data_offsets": [begin, end]}, ...}
 * then the data region; offsets are relative to its start.
 */
#ifndef CSLIM_SAFETENSORS_H
#define CSLIM_SAFETENSORS_H

#include "cslim/common.h"
#include "cslim/dtype.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CSLIM_MAX_DIMS 8
/* Headers larger than this are rejected (the safetensors reference limit). */
#define CSLIM_ST_MAX_HEADER (100u * 1024u * 1024u)

/* A zero-copy view of one tensor inside a mapped file. */
typedef struct cslim_tensor {
  const char *name;
  cslim_dtype dtype;
  int ndim;
  int64_t shape[CSLIM_MAX_DIMS];
  int64_t numel;
  uint64_t nbytes;
  const void *data; /* inside the mapping; may be unaligned */
  int file;         /* index of the file that holds it */
  uint64_t offset;  /* byte offset of the data inside that file */
} cslim_tensor;

/* A checkpoint: one or more safetensors files viewed as one set of tensors. */
typedef struct cslim_st cslim_st;

/* Open `path`, which is one of:
 *   - a .safetensors file;
 *   - a sharded checkpoint's *.safetensors.index.json;
 *   - a directory: its model.safetensors.index.json, else its only
 *     *.safetensors.index.json, else model.safetensors, else every
 *     *.safetensors file in it (as vLLM loads a directory).
 * Every file is validated completely before the call returns. */
cslim_status cslim_st_open(const char *path, cslim_st **out);
/* Parse a complete safetensors image held in memory (no copy is made; `buf`
 * must outlive the result). `name` is used in error messages. */
cslim_status cslim_st_open_memory(const void *buf, size_t len, const char *name, cslim_st **out);
void cslim_st_close(cslim_st *st);

/* Tensors, in file order then offset order. */
size_t cslim_st_count(const cslim_st *st);
const cslim_tensor *cslim_st_at(const cslim_st *st, size_t i);
/* NULL when absent. */
const cslim_tensor *cslim_st_find(const cslim_st *st, const char *name);
const cslim_tensor *cslim_st_findf(const cslim_st *st, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

size_t cslim_st_file_count(const cslim_st *st);
const char *cslim_st_file_path(const cslim_st *st, size_t i);
uint64_t cslim_st_file_size(const cslim_st *st, size_t i);
/* The index file used, or NULL for a single file / a directory scan. */
const char *cslim_st_index_path(const cslim_st *st);
/* A `__metadata__` value of the first file that has the key, or NULL. */
const char *cslim_st_metadata(const cslim_st *st, const char *key);
/* Sum of all tensors' data bytes. */
uint64_t cslim_st_total_bytes(const cslim_st *st);

/* Convert a tensor to float32 into dst[numel] (threaded, vectorised) and
 * count the bytes read. */
void cslim_st_read_f32(cslim_st *st, const cslim_tensor *t, float *dst);
/* Count a tensor (all its bytes) as read by a caller that reads t->data itself. Thread-safe. */
void cslim_st_note_read(const cslim_st *st, const cslim_tensor *t);
/* Distinct tensor bytes read so far (cslim_st_read_f32 / cslim_st_note_read): a tensor read twice,
 * or in parts, counts once, whole. What the disk delivered is the kernel's: cslim_disk_bytes_read. */
uint64_t cslim_st_bytes_read(const cslim_st *st);
/* Ask the kernel to start reading a tensor's pages (asynchronous). */
void cslim_st_prefetch(const cslim_st *st, const cslim_tensor *t);
/* Drop a tensor's pages from this process's resident set (they stay in the
 * page cache). Call after a tensor has been consumed so that streaming a
 * model layer by layer keeps RSS at about one layer. */
void cslim_st_release(const cslim_st *st, const cslim_tensor *t);
/* The same for bytes [offset, offset + len) of a tensor's data. */
void cslim_st_release_range(const cslim_st *st, const cslim_tensor *t, uint64_t offset, uint64_t len);

/* Element count helpers. */
int64_t cslim_shape_numel(int ndim, const int64_t *shape);
/* Format a shape as "[a, b, c]" into buf; returns buf. */
char *cslim_shape_str(int ndim, const int64_t *shape, char *buf, size_t cap);

/* ---- writer --------------------------------------------------------------- */

/* Streaming writer. Usage:
 *   cslim_st_writer_create(dir, "model", max_shard_bytes, &w);
 *   cslim_st_writer_declare(w, name, dtype, ndim, shape);   // every tensor
 *   cslim_st_writer_begin(w);        // lays out shards, creates the files
 *   cslim_st_writer_put(w, name, data);  // any order, as each is ready
 *   cslim_st_writer_finish(w);       // checks, syncs, writes the index
 *   cslim_st_writer_free(w);
 * Each put() writes the tensor's bytes at their final offset immediately
 * (pwrite), so nothing is buffered; put() may be called from several threads.
 *
 * Sharding (msModelSlim's rule): tensors are assigned in declaration order;
 * before adding a tensor, if the shard's bytes + the tensor's bytes >=
 * max_shard_bytes the shard is closed and a new one begun; a tensor larger than
 * the limit gets a shard of its own. One shard is written as BASE.safetensors;
 * N > 1 as BASE-0000i-of-0000N.safetensors plus BASE.safetensors.index.json
 * {"metadata": {"total_size": N}, "weight_map": {...}}. max_shard_bytes 0 means
 * no limit.
 *
 * Within a file, tensors are ordered by decreasing element size (stable), so
 * every tensor is naturally aligned, and the header is space-padded to a
 * multiple of 8, as the reference implementation does.
 *
 * The writer writes into `dir` as given; for atomic output, give it the path
 * of a cslim_staging directory (cslim/staging.h). */
typedef struct cslim_st_writer cslim_st_writer;

cslim_status cslim_st_writer_create(const char *dir, const char *basename,
                                    uint64_t max_shard_bytes, cslim_st_writer **out);
/* `__metadata__` entries (optional; written to every shard). */
cslim_status cslim_st_writer_set_metadata(cslim_st_writer *w, const char *key, const char *value);
/* Always write the index, even for a single shard (then named
 * BASE-00001-of-00001.safetensors). */
void cslim_st_writer_force_index(cslim_st_writer *w, int on);
/* File mode for created files (default 0644). */
void cslim_st_writer_set_mode(cslim_st_writer *w, unsigned mode);
cslim_status cslim_st_writer_declare(cslim_st_writer *w, const char *name, cslim_dtype dtype,
                                     int ndim, const int64_t *shape);
cslim_status cslim_st_writer_begin(cslim_st_writer *w);
cslim_status cslim_st_writer_put(cslim_st_writer *w, const char *name, const void *data);
/* Write bytes [offset, offset + len) of a tensor (large tensors in pieces);
 * the tensor is complete when all its bytes have been written once. */
cslim_status cslim_st_writer_put_range(cslim_st_writer *w, const char *name, uint64_t offset, const void *data,
                                       uint64_t len);
/* Convert float32 data to the declared dtype and write it. */
cslim_status cslim_st_writer_put_f32(cslim_st_writer *w, const char *name, const float *data);
cslim_status cslim_st_writer_finish(cslim_st_writer *w);
void cslim_st_writer_free(cslim_st_writer *w);
/* After begin(): number of shards, and the file name of shard i. */
int cslim_st_writer_shard_count(const cslim_st_writer *w);
const char *cslim_st_writer_shard_name(const cslim_st_writer *w, int i);
uint64_t cslim_st_writer_bytes_written(const cslim_st_writer *w);

#ifdef __cplusplus
}
#endif
#endif
