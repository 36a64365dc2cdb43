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

/* ---- serialising ------------------------------------------------------------ */

typedef struct jbuf {
  char *p;
  size_t n, cap;
  int oom;
} jbuf;

static void jb_add(jbuf *b, const char *s, size_t len) {
  if (b->oom) return;
  if (b->n + len + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 1024;
    while (cap < b->n + len + 1) cap *= 2;
    char *q = realloc(b->p, cap);
    if (!q) {
      b->oom = 1;
      return;
    }
    b->p = q;
    b->cap = cap;
  }
  memcpy(b->p + b->n, s, len);
  b->n += len;
  b->p[b->n] = 0;
}
static void jb_puts(jbuf *b, const char *s) { jb_add(b, s, strlen(s)); }

static void jb_str(jbuf *b, const char *s) {
  jb_puts(b, "\"");
  const unsigned char *u = (const unsigned char *)s;
  while (*u) {
    char tmp[16];
    unsigned c = *u;
    if (c == '"' || c == '\\') {
      tmp[0] = '\\';
      tmp[1] = (char)c;
      jb_add(b, tmp, 2);
      u++;
    } else if (c == '\n') {
      jb_puts(b, "\\n");
      u++;
    } else if (c == '\t') {
      jb_puts(b, "\\t");
      u++;
    } else if (c == '\r') {
      jb_puts(b, "\\r");
      u++;
    } else if (c < 0x20) {
      snprintf(tmp, sizeof tmp, "\\u%04x", c);
      jb_puts(b, tmp);
      u++;
    } else if (c < 0x80) {
      jb_add(b, (const char *)u, 1);
      u++;
    } else { /* UTF-8 -> \uXXXX (surrogate pairs above the BMP), as ensure_ascii */
      unsigned cp = 0;
      int len = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
      cp = c & (0x7f >> len);
      for (int i = 1; i < len && u[i]; i++) cp = (cp << 6) | (u[i] & 0x3f);
      if (cp >= 0x10000) {
        cp -= 0x10000;
        snprintf(tmp, sizeof tmp, "\\u%04x\\u%04x", 0xd800 + (cp >> 10), 0xdc00 + (cp & 0x3ff));
      } else {
        snprintf(tmp, sizeof tmp, "\\u%04x", cp);
      }
      jb_puts(b, tmp);
      for (int i = 0; i < len && *u; i++) u++;
    }
  }
  jb_puts(b, "\"");
}

static void jb_num(jbuf *b, double d) {
  char tmp[64];
  if (d == floor(d) && fabs(d) < 9007199254740992.0) {
    snprintf(tmp, sizeof tmp, "%lld", (long long)d);
  } else if (d != d || isinf(d)) {
    snprintf(tmp, sizeof tmp, d != d ? "NaN" : d > 0 ? "Infinity" : "-Infinity");
  } else {
    for (int prec = 15; prec <= 17; prec++) { /* shortest text that reads back */
      snprintf(tmp, sizeof tmp, "%.*g", prec, d);
      if (strtod(tmp, NULL) == d) break;
    }
  }
  jb_puts(b, tmp);
}

static void jb_indent(jbuf *b, int indent, int depth) {
  jb_puts(b, "\n");
  for (int i = 0; i < indent * depth; i++) jb_puts(b, " ");
}

static void jb_value(jbuf *b, const cJSON *v, int indent, int depth) {
  if (cJSON_IsObject(v) || cJSON_IsArray(v)) {
    int obj = cJSON_IsObject(v);
    jb_puts(b, obj ? "{" : "[");
    if (!v->child) {
      jb_puts(b, obj ? "}" : "]");
      return;
    }
    for (const cJSON *c = v->child; c; c = c->next) {
      jb_indent(b, indent, depth + 1);
      if (obj) {
        jb_str(b, c->string);
        jb_puts(b, ": ");
      }
      jb_value(b, c, indent, depth + 1);
      if (c->next) jb_puts(b, ",");
    }
    jb_indent(b, indent, depth);
    jb_puts(b, obj ? "}" : "]");
  } else if (cJSON_IsString(v)) {
    jb_str(b, v->valuestring);
  } else if (cJSON_IsNumber(v)) {
    jb_num(b, v->valuedouble);
  } else if (cJSON_IsBool(v)) {
    jb_puts(b, cJSON_IsTrue(v) ? "true" : "false");
  } else {
    jb_puts(b, "null");
  }
}

char *cslim_json_dump(const cJSON *item, int indent) {
  jbuf b = {0};
  jb_value(&b, item, indent, 0);
  jb_puts(&b, "\n");
  if (b.oom) {
    free(b.p);
    return NULL;
  }
  return b.p;
}

cslim_status cslim_write_text(const char *path, const char *text) {
  FILE *f = fopen(path, "wb");
  if (!f) return cslim_error(CSLIM_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
  size_t n = strlen(text);
  int bad = fwrite(text, 1, n, f) != n;
  bad |= fclose(f) != 0;
  return bad ? cslim_error(CSLIM_ERR_IO, "%s: write failed", path) : CSLIM_OK;
}
