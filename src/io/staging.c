/* Atomic output directories (temp dir beside the target + rename). */
#include "cslim/staging.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct cslim_staging {
  char *target;
  char *tmp;
  int overwrite;
  struct cslim_staging *next;
};

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static cslim_staging *g_open; /* list of open staging dirs */
static unsigned g_counter;

static void unlink_open(cslim_staging *s) {
  pthread_mutex_lock(&g_lock);
  for (cslim_staging **p = &g_open; *p; p = &(*p)->next)
    if (*p == s) {
      *p = s->next;
      break;
    }
  pthread_mutex_unlock(&g_lock);
}

static void staging_free(cslim_staging *s) {
  free(s->target);
  free(s->tmp);
  free(s);
}

static int rm_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)sb;
  (void)ftw;
  return flag == FTW_DP ? rmdir(path) : unlink(path);
}

int cslim_remove_tree(const char *path) {
  struct stat sb;
  if (lstat(path, &sb) != 0) return errno == ENOENT ? 0 : -1;
  if (!S_ISDIR(sb.st_mode)) return unlink(path);
  return nftw(path, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static int dir_is_empty(const char *path) {
  DIR *d = opendir(path);
  if (!d) return 0;
  struct dirent *de;
  int empty = 1;
  while ((de = readdir(d)))
    if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
      empty = 0;
      break;
    }
  closedir(d);
  return empty;
}

cslim_status cslim_staging_open(const char *target, int overwrite, cslim_staging **out) {
  *out = NULL;
  size_t len = strlen(target);
  while (len > 1 && target[len - 1] == '/') len--;
  if (len == 0) return cslim_error(CSLIM_ERR_INVALID, "empty output path");
  char *t = strndup(target, len);
  if (!t) return cslim_error(CSLIM_ERR_NOMEM, "out of memory");
  struct stat sb;
  if (stat(t, &sb) == 0) {
    if (!S_ISDIR(sb.st_mode)) {
      cslim_status rc = cslim_error(CSLIM_ERR_INVALID, "%s: exists and is not a directory", t);
      free(t);
      return rc;
    }
    if (!overwrite && !dir_is_empty(t)) {
      cslim_status rc = cslim_error(
          CSLIM_ERR_INVALID, "%s: exists and is not empty (choose another path or --overwrite)", t);
      free(t);
      return rc;
    }
  }
  const char *slash = strrchr(t, '/');
  char parent[PATH_MAX];
  const char *name = slash ? slash + 1 : t;
  if (slash)
    snprintf(parent, sizeof parent, "%.*s", (int)(slash - t) ? (int)(slash - t) : 1, t);
  else
    snprintf(parent, sizeof parent, ".");
  if (stat(parent, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
    cslim_status rc = cslim_error(CSLIM_ERR_IO, "%s: parent directory %s does not exist", t, parent);
    free(t);
    return rc;
  }
  cslim_staging *s = calloc(1, sizeof *s);
  char tmp[PATH_MAX];
  pthread_mutex_lock(&g_lock);
  unsigned n = g_counter++;
  pthread_mutex_unlock(&g_lock);
  snprintf(tmp, sizeof tmp, "%s/.%s.cslim-tmp-%ld-%u", parent, name, (long)getpid(), n);
  if (!s || !(s->tmp = strdup(tmp))) {
    free(s);
    free(t);
    return cslim_error(CSLIM_ERR_NOMEM, "out of memory");
  }
  s->target = t;
  s->overwrite = overwrite;
  cslim_remove_tree(tmp); /* a stale one from a recycled pid */
  if (mkdir(tmp, 0755) != 0) {
    cslim_status rc = cslim_error(CSLIM_ERR_IO, "%s: cannot create staging directory %s: %s", t,
                                  tmp, strerror(errno));
    staging_free(s);
    return rc;
  }
  pthread_mutex_lock(&g_lock);
  s->next = g_open;
  g_open = s;
  pthread_mutex_unlock(&g_lock);
  *out = s;
  return CSLIM_OK;
}

cslim_status cslim_staging_open_file(const char *target_file, cslim_staging **out) {
  *out = NULL;
  struct stat sb;
  if (stat(target_file, &sb) == 0 && !S_ISREG(sb.st_mode))
    return cslim_error(CSLIM_ERR_INVALID, "%s: exists and is not a regular file", target_file);
  /* stage as if producing a directory named like the file: the staging
   * directory lands beside it; the file itself is moved on commit */
  char probe[PATH_MAX];
  snprintf(probe, sizeof probe, "%s.cslim-out", target_file);
  cslim_status rc = cslim_staging_open(probe, 0, out);
  if (rc) return rc;
  free((*out)->target);
  (*out)->target = strdup(target_file);
  return (*out)->target ? CSLIM_OK : cslim_error(CSLIM_ERR_NOMEM, "out of memory");
}

cslim_status cslim_staging_commit_file(cslim_staging *s, const char *name) {
  unlink_open(s);
  char src[PATH_MAX];
  snprintf(src, sizeof src, "%s/%s", s->tmp, name);
  int fd = open(src, O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    fsync(fd);
    close(fd);
  }
  cslim_status rc = CSLIM_OK;
  if (rename(src, s->target) != 0)
    rc = cslim_error(CSLIM_ERR_IO, "%s: cannot move the output into place: %s", s->target, strerror(errno));
  cslim_remove_tree(s->tmp);
  staging_free(s);
  return rc;
}

const char *cslim_staging_path(const cslim_staging *s) { return s->tmp; }
const char *cslim_staging_target(const cslim_staging *s) { return s->target; }

static int fsync_path(const char *path, int dir) {
  int fd = open(path, (dir ? O_RDONLY | O_DIRECTORY : O_RDONLY) | O_CLOEXEC);
  if (fd < 0) return -1;
  int r = fsync(fd);
  close(fd);
  return r;
}

static int sync_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)ftw;
  if (flag == FTW_F && S_ISREG(sb->st_mode)) fsync_path(path, 0);
  return 0;
}

cslim_status cslim_staging_commit(cslim_staging *s) {
  unlink_open(s);
  nftw(s->tmp, sync_cb, 16, FTW_PHYS);
  fsync_path(s->tmp, 1);
  char trash[PATH_MAX];
  int had_old = 0;
  struct stat sb;
  if (stat(s->target, &sb) == 0) {
    snprintf(trash, sizeof trash, "%s.cslim-old-%ld", s->tmp, (long)getpid());
    if (rename(s->target, trash) != 0) {
      cslim_status rc = cslim_error(CSLIM_ERR_IO, "%s: cannot move the old directory aside: %s",
                                    s->target, strerror(errno));
      cslim_remove_tree(s->tmp);
      staging_free(s);
      return rc;
    }
    had_old = 1;
  }
  if (rename(s->tmp, s->target) != 0) {
    cslim_status rc =
        cslim_error(CSLIM_ERR_IO, "%s: cannot rename %s into place: %s", s->target, s->tmp,
                    strerror(errno));
    if (had_old) rename(trash, s->target);
    cslim_remove_tree(s->tmp);
    staging_free(s);
    return rc;
  }
  if (had_old) cslim_remove_tree(trash);
  staging_free(s);
  return CSLIM_OK;
}

void cslim_staging_abort(cslim_staging *s) {
  if (!s) return;
  unlink_open(s);
  cslim_remove_tree(s->tmp);
  staging_free(s);
}

void cslim_staging_abort_all(void) {
  for (;;) {
    pthread_mutex_lock(&g_lock);
    cslim_staging *s = g_open;
    pthread_mutex_unlock(&g_lock);
    if (!s) break;
    cslim_staging_abort(s);
  }
}

cslim_status cslim_copy_file(const char *src, const char *dst) {
  int in = open(src, O_RDONLY | O_CLOEXEC);
  if (in < 0) return cslim_error(CSLIM_ERR_IO, "%s: cannot open: %s", src, strerror(errno));
  struct stat sb;
  fstat(in, &sb);
  int out = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, (sb.st_mode & 0777) | 0600);
  if (out < 0) {
    int e = errno;
    close(in);
    return cslim_error(CSLIM_ERR_IO, "%s: cannot create: %s", dst, strerror(e));
  }
  char buf[1 << 16];
  cslim_status rc = CSLIM_OK;
  for (;;) {
    ssize_t k = read(in, buf, sizeof buf);
    if (k == 0) break;
    if (k < 0) {
      if (errno == EINTR) continue;
      rc = cslim_error(CSLIM_ERR_IO, "%s: read failed: %s", src, strerror(errno));
      break;
    }
    for (ssize_t o = 0; o < k;) {
      ssize_t m = write(out, buf + o, (size_t)(k - o));
      if (m < 0) {
        if (errno == EINTR) continue;
        rc = cslim_error(CSLIM_ERR_IO, "%s: write failed: %s", dst, strerror(errno));
        break;
      }
      o += m;
    }
    if (rc) break;
  }
  close(in);
  if (close(out) != 0 && !rc) rc = cslim_error(CSLIM_ERR_IO, "%s: close failed", dst);
  return rc;
}
