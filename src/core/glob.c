#include "core/glob.h"

#include <stdio.h>
#include <string.h>

/* Match without braces (fnmatchcase). */
static int match_plain(const char *p, const char *s) {
  const char *star_p = NULL, *star_s = NULL;
  while (*s) {
    if (*p == '*') {
      star_p = ++p;
      star_s = s;
      continue;
    }
    if (*p == '[') {
      const char *q = p + 1;
      int neg = 0, ok = 0;
      if (*q == '!') {
        neg = 1;
        q++;
      }
      const char *first = q;
      while (*q && (*q != ']' || q == first)) {
        if (q[1] == '-' && q[2] && q[2] != ']') {
          if ((unsigned char)*s >= (unsigned char)q[0] && (unsigned char)*s <= (unsigned char)q[2]) ok = 1;
          q += 3;
        } else {
          if (*q == *s) ok = 1;
          q++;
        }
      }
      if (*q == ']' && ok != neg) {
        p = q + 1;
        s++;
        continue;
      }
      if (*q != ']' && *p == *s) { /* unterminated '[': literal */
        p++;
        s++;
        continue;
      }
    } else if (*p == '?' || (*p && *p == *s)) {
      p++;
      s++;
      continue;
    }
    if (!star_p) return 0;
    p = star_p;
    s = ++star_s;
  }
  while (*p == '*') p++;
  return *p == '\0';
}

/* Expand the first {a,b,...} group and recurse. */
int cslim_glob_match(const char *pattern, const char *name) {
  const char *open = strchr(pattern, '{');
  const char *close = open ? strchr(open, '}') : NULL;
  if (!open || !close) return match_plain(pattern, name);
  char buf[1024];
  size_t pre = (size_t)(open - pattern);
  for (const char *a = open + 1; a <= close;) {
    const char *e = a;
    while (e < close && *e != ',') e++;
    int n = snprintf(buf, sizeof buf, "%.*s%.*s%s", (int)pre, pattern, (int)(e - a), a, close + 1);
    if (n > 0 && (size_t)n < sizeof buf && cslim_glob_match(buf, name)) return 1;
    a = e + 1;
  }
  return 0;
}
