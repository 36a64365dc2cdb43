#include "io/json_util.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

cslim_status cslim_json_parse(const char *text, size_t len, const char *what, cJSON **out) {
  *out = NULL;
  const char *end = NULL;
  /* cJSON reads at most `len` bytes; the header buffer is not NUL-terminated. */
  cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
  if (!root) {
    const char *at = cJSON_GetErrorPtr();
    size_t off = (at && at >= text && at <= text + len) ? (size_t)(at - text) : 0;
    int line = 1, col = 1;
    for (size_t i = 0; i < off; i++) {
      if (text[i] == '\n') {
        line++;
        col = 1;
      } else {
        col++;
      }
    }
    return cslim_error(CSLIM_ERR_FORMAT, "%s: invalid JSON at line %d, column %d (byte %zu)",
                       what, line, col, off);
  }
  for (const char *p = end; p && p < text + len; p++) {
    if (*p != ' ' && *p != '\n' && *p != '\r' && *p != '\t' && *p != '\0') {
      cJSON_Delete(root);
      return cslim_error(CSLIM_ERR_FORMAT, "%s: invalid JSON: trailing data at byte %zu", what,
                         (size_t)(p - text));
    }
  }
  *out = root;
  return CSLIM_OK;
}

cslim_status cslim_read_file(const char *path, char **out, size_t *len) {
  *out = NULL;
  FILE *f = fopen(path, "rb");
  if (!f) return cslim_error(CSLIM_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
  struct stat sb;
  if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
    fclose(f);
    return cslim_error(CSLIM_ERR_IO, "%s: not a regular file", path);
  }
  size_t n = (size_t)sb.st_size;
  char *buf = malloc(n + 1);
  if (!buf) {
    fclose(f);
    return cslim_error(CSLIM_ERR_NOMEM, "%s: out of memory reading %zu bytes", path, n);
  }
  size_t got = fread(buf, 1, n, f);
  int err = ferror(f);
  fclose(f);
  if (got != n || err) {
    free(buf);
    return cslim_error(CSLIM_ERR_IO, "%s: short read", path);
  }
  buf[n] = '\0';
  *out = buf;
  if (len) *len = n;
  return CSLIM_OK;
}

cslim_status cslim_json_load_file(const char *path, cJSON **out) {
  char *buf;
  size_t n;
  cslim_status rc = cslim_read_file(path, &buf, &n);
  if (rc) return rc;
  if (n == 0) {
    free(buf);
    return cslim_error(CSLIM_ERR_FORMAT, "%s: empty file", path);
  }
  rc = cslim_json_parse(buf, n, path, out);
  free(buf);
  return rc;
}

int cslim_json_as_int(const cJSON *item, int64_t lo, int64_t hi, int64_t *out) {
  if (!cJSON_IsNumber(item)) return -1;
  double d = item->valuedouble;
  if (!(d == floor(d)) || d < (double)lo || d > (double)hi) return -1;
  if (fabs(d) > 9007199254740992.0) return -1;
  *out = (int64_t)d;
  return 0;
}

int cslim_json_as_u53(const cJSON *item, int64_t *out) {
  return cslim_json_as_int(item, 0, INT64_C(9007199254740992), out);
}
