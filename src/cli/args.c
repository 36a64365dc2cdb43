#include "cli/args.h"

#include "cslim/common.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int g_threads_flag;
static int g_quiet_flag;
static const char *g_log_level;

static cli_opt k_common[] = {
    {"threads", CLI_INT, &g_threads_flag, "N", "worker threads (default: all cores)", 0, 0},
    {"quiet", CLI_BOOL, &g_quiet_flag, NULL, "no progress bar and no info messages", 0, 0},
    {"log_level", CLI_STR, &g_log_level, "LEVEL", "error, warn, info (default) or debug", 0, 0},
    CLI_END,
};

int cli_parse_bool(const char *s, int *out) {
  static const char *yes[] = {"true", "1", "yes", "on"};
  static const char *no[] = {"false", "0", "no", "off"};
  for (int i = 0; i < 4; i++) {
    if (strcasecmp(s, yes[i]) == 0) {
      *out = 1;
      return 0;
    }
    if (strcasecmp(s, no[i]) == 0) {
      *out = 0;
      return 0;
    }
  }
  return -1;
}

int cli_fail(void) {
  fprintf(stderr, "cslim: error: %s\n", cslim_errmsg());
  return CLI_EXIT_FAIL;
}

int cli_usage_error(const cli_command *cmd, const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  fprintf(stderr, "cslim %s: error: %s (see 'cslim %s --help')\n", cmd->name, msg, cmd->name);
  return CLI_EXIT_USAGE;
}

/* name equality with '-' == '_' */
static int name_eq(const char *a, const char *b, size_t blen) {
  size_t i = 0;
  for (; a[i] && i < blen; i++) {
    char x = a[i] == '-' ? '_' : a[i], y = b[i] == '-' ? '_' : b[i];
    if (x != y) return 0;
  }
  return a[i] == '\0' && i == blen;
}

static cli_opt *find_opt(cli_opt *opts, const char *name, size_t len) {
  for (cli_opt *o = opts; o && o->name; o++)
    if (name_eq(o->name, name, len)) return o;
  for (cli_opt *o = k_common; o->name; o++)
    if (name_eq(o->name, name, len)) return o;
  return NULL;
}

static int edit_distance(const char *a, const char *b, size_t blen) {
  size_t la = strlen(a);
  if (la > 63 || blen > 63) return 99;
  int d[64][64];
  for (size_t i = 0; i <= la; i++) d[i][0] = (int)i;
  for (size_t j = 0; j <= blen; j++) d[0][j] = (int)j;
  for (size_t i = 1; i <= la; i++)
    for (size_t j = 1; j <= blen; j++) {
      char x = a[i - 1] == '-' ? '_' : a[i - 1], y = b[j - 1] == '-' ? '_' : b[j - 1];
      int c = d[i - 1][j - 1] + (x != y);
      if (d[i - 1][j] + 1 < c) c = d[i - 1][j] + 1;
      if (d[i][j - 1] + 1 < c) c = d[i][j - 1] + 1;
      d[i][j] = c;
    }
  return d[la][blen];
}

static const char *suggest(cli_opt *opts, const char *name, size_t len) {
  const char *best = NULL;
  int bd = 3;
  for (int pass = 0; pass < 2; pass++)
    for (cli_opt *o = pass ? k_common : opts; o && o->name; o++) {
      int d = edit_distance(o->name, name, len);
      if (d < bd) {
        bd = d;
        best = o->name;
      }
    }
  return best;
}

static int set_value(const cli_command *cmd, cli_opt *o, const char *v) {
  char *end;
  switch (o->kind) {
  case CLI_STR:
    *(const char **)o->dest = v;
    return 0;
  case CLI_INT: {
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || end == v || *end || x < INT_MIN || x > INT_MAX)
      return cli_usage_error(cmd, "--%s: '%s' is not an integer", o->name, v);
    *(int *)o->dest = (int)x;
    return 0;
  }
  case CLI_DOUBLE: {
    errno = 0;
    double x = strtod(v, &end);
    if (errno || end == v || *end)
      return cli_usage_error(cmd, "--%s: '%s' is not a number", o->name, v);
    *(double *)o->dest = x;
    return 0;
  }
  case CLI_BOOL:
    if (cli_parse_bool(v, (int *)o->dest) != 0)
      return cli_usage_error(cmd, "--%s: '%s' is not True or False", o->name, v);
    return 0;
  case CLI_LIST: {
    cli_list *l = o->dest;
    const char **nv = realloc(l->v, (size_t)(l->n + 1) * sizeof *nv);
    if (!nv) return cli_usage_error(cmd, "out of memory");
    l->v = nv;
    l->v[l->n++] = v;
    return 0;
  }
  }
  return 0;
}

int cli_parse(const cli_command *cmd, cli_opt *opts, int argc, char **argv,
              const char **positional, int *npos) {
  int maxpos = npos ? *npos : 0;
  if (npos) *npos = 0;
  g_threads_flag = 0;
  g_quiet_flag = 0;
  g_log_level = NULL;
  for (cli_opt *o = k_common; o->name; o++) o->seen = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      cli_print_help(stdout, cmd, opts);
      return -1;
    }
    if (strncmp(a, "--", 2) != 0 || a[2] == '\0') {
      if (positional && *npos < maxpos) {
        positional[(*npos)++] = a;
        continue;
      }
      return cli_usage_error(cmd, "unexpected argument '%s'", a);
    }
    const char *name = a + 2;
    const char *eq = strchr(name, '=');
    size_t len = eq ? (size_t)(eq - name) : strlen(name);
    cli_opt *o = find_opt(opts, name, len);
    if (!o) {
      const char *s = suggest(opts, name, len);
      if (s) return cli_usage_error(cmd, "unknown flag --%.*s; did you mean --%s?", (int)len, name, s);
      return cli_usage_error(cmd, "unknown flag --%.*s", (int)len, name);
    }
    if (o->seen && o->kind != CLI_LIST)
      return cli_usage_error(cmd, "--%s given twice", o->name);
    o->seen = 1;
    if (o->kind == CLI_BOOL && !eq) {
      int b;
      if (i + 1 < argc && cli_parse_bool(argv[i + 1], &b) == 0) {
        *(int *)o->dest = b;
        i++;
      } else {
        *(int *)o->dest = 1;
      }
      continue;
    }
    if (o->kind == CLI_LIST && !eq) {
      int got = 0;
      while (i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0) {
        if (set_value(cmd, o, argv[++i])) return CLI_EXIT_USAGE;
        got++;
      }
      if (!got) return cli_usage_error(cmd, "--%s needs at least one value", o->name);
      continue;
    }
    const char *v;
    if (eq) {
      v = eq + 1;
    } else {
      if (i + 1 >= argc) return cli_usage_error(cmd, "--%s needs a value", o->name);
      v = argv[++i];
    }
    if (set_value(cmd, o, v)) return CLI_EXIT_USAGE;
  }
  for (cli_opt *o = opts; o && o->name; o++)
    if (o->required && !o->seen) return cli_usage_error(cmd, "--%s is required", o->name);
  if (g_log_level) {
    cslim_log_level lv;
    if (cslim_log_level_parse(g_log_level, &lv) != 0)
      return cli_usage_error(cmd, "--log_level: '%s' is not error, warn, info or debug",
                             g_log_level);
    cslim_log_set_level(lv);
  }
  if (g_threads_flag < 0) return cli_usage_error(cmd, "--threads must be positive");
  cslim_set_threads(g_threads_flag);
  cslim_set_quiet(g_quiet_flag);
  return 0;
}

static void print_opts(FILE *f, const cli_opt *opts) {
  for (const cli_opt *o = opts; o && o->name; o++) {
    char left[96];
    const char *mv = o->metavar ? o->metavar : "";
    if (o->kind == CLI_BOOL)
      snprintf(left, sizeof left, "--%s [True|False]", o->name);
    else if (o->kind == CLI_LIST)
      snprintf(left, sizeof left, "--%s %s...", o->name, mv);
    else
      snprintf(left, sizeof left, "--%s %s", o->name, mv);
    fprintf(f, "  %-30s %s%s\n", left, o->help ? o->help : "", o->required ? " (required)" : "");
  }
}

void cli_print_help(FILE *f, const cli_command *cmd, const cli_opt *opts) {
  fprintf(f, "usage: %s\n\n%s\n", cmd->usage, cmd->summary);
  if (cmd->description) fprintf(f, "\n%s\n", cmd->description);
  if (opts && opts->name) {
    fprintf(f, "\noptions:\n");
    print_opts(f, opts);
  }
  fprintf(f, "\ncommon options:\n");
  print_opts(f, k_common);
  fprintf(f, "  %-30s %s\n", "--help", "show this help");
}
