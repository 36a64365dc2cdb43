/* A pull scanner for large JSON documents (tokenizer.json: 11 MB, 300k
 * strings), reading values in place without building a tree. Small
 * sub-objects can be handed to cJSON through cslim_js_span(). Every read is
 * bounds-checked; errors give the line and column. */
#ifndef CSLIM_IO_JSON_SCAN_H
#define CSLIM_IO_JSON_SCAN_H

#include "cslim/common.h"

#include <stddef.h>
#include <stdint.h>

typedef struct cslim_jscan {
  const char *base, *p, *end;
  const char *src; /* name for error messages */
  char *buf;       /* decoded strings with escapes */
  size_t cap;
} cslim_jscan;

void cslim_js_init(cslim_jscan *s, const char *text, size_t len, const char *src);
void cslim_js_free(cslim_jscan *s);
/* Record "src: invalid JSON at line L, column C: what" and return it. */
cslim_status cslim_js_error(cslim_jscan *s, const char *what);
/* Next non-space character, or -1 at the end. */
int cslim_js_peek(cslim_jscan *s);
/* A string value: *out points into the text (no escapes) or into the
 * scanner's buffer (valid until the next string); not NUL-terminated. */
cslim_status cslim_js_string(cslim_jscan *s, const char **out, size_t *len);
cslim_status cslim_js_int(cslim_jscan *s, int64_t *out);
/* Skip one value of any type (validated), returning its text span. */
cslim_status cslim_js_span(cslim_jscan *s, const char **begin, size_t *len);
cslim_status cslim_js_skip(cslim_jscan *s);
cslim_status cslim_js_literal(cslim_jscan *s, int *is_null, int *truth); /* true/false/null */

/* Objects: cslim_js_obj_begin(s, &first); while ((r = cslim_js_obj_next(s, &first,
 * &key, &klen)) == 1) { read the value } ; r == 0 at '}', r < 0 on error. The
 * key lives in the scanner buffer or the text: copy it before reading
 * another string. Arrays likewise with cslim_js_arr_next(s, &first). */
cslim_status cslim_js_obj_begin(cslim_jscan *s, int *first);
int cslim_js_obj_next(cslim_jscan *s, int *first, const char **key, size_t *klen);
cslim_status cslim_js_arr_begin(cslim_jscan *s, int *first);
int cslim_js_arr_next(cslim_jscan *s, int *first);
/* Nothing but whitespace remains. */
cslim_status cslim_js_end(cslim_jscan *s);

#endif
