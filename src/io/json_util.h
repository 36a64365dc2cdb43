/* Helpers over cJSON: bounded parsing with positioned errors, whole-file
 * loading, and checked number access. Internal to the library. */
#ifndef CSLIM_IO_JSON_UTIL_H
#define CSLIM_IO_JSON_UTIL_H

#include "cslim/common.h"

#include <cjson/cJSON.h>

/* Parse exactly `len` bytes (trailing whitespace allowed). On error the
 * message names `what`, the line and the column. */
cslim_status cslim_json_parse(const char *text, size_t len, const char *what, cJSON **out);
/* Read and parse a whole file; errors name the file. */
cslim_status cslim_json_load_file(const char *path, cJSON **out);
/* Read a whole file into a NUL-terminated buffer. */
cslim_status cslim_read_file(const char *path, char **out, size_t *len);

/* A JSON number that is a non-negative integer no larger than 2^53. */
int cslim_json_as_u53(const cJSON *item, int64_t *out);
/* A JSON number that is an integer in [lo, hi]. */
int cslim_json_as_int(const cJSON *item, int64_t lo, int64_t hi, int64_t *out);

/* Serialise like Python's json.dump(obj, indent=N): ": " after keys, one
 * item per line, {} / [] when empty, ASCII-only strings (\uXXXX escapes).
 * Integer-valued numbers print as integers. Returns a malloc'd string with a
 * trailing newline, or NULL when out of memory. */
char *cslim_json_dump(const cJSON *item, int indent);
/* Write `text` to `path` (created with mode 0644). */
cslim_status cslim_write_text(const char *path, const char *text);

#endif
