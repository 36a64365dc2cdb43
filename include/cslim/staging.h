/* Atomic output directories: everything is written into a temporary
 * directory beside the target and renamed into place only when complete.
 * An interrupted or failed run leaves no partial output. */
#ifndef CSLIM_STAGING_H
#define CSLIM_STAGING_H

#include "cslim/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cslim_staging cslim_staging;

/* Prepare to produce directory `target`. Fails if `target` exists and is not
 * an empty directory, unless `overwrite` is set. The staging directory is
 * `<parent>/.<name>.cslim-tmp-<pid>-<n>`. */
cslim_status cslim_staging_open(const char *target, int overwrite, cslim_staging **out);
/* Where to write. */
const char *cslim_staging_path(const cslim_staging *s);
const char *cslim_staging_target(const cslim_staging *s);
/* fsync the staged files and rename the directory onto the target (an
 * existing target is replaced). Frees `s`. */
cslim_status cslim_staging_commit(cslim_staging *s);
/* Remove the staging directory and everything in it. Frees `s`. */
void cslim_staging_abort(cslim_staging *s);
/* For a single output file: a staging directory beside `target_file` (an
 * existing regular file there is replaced on commit, never touched before). */
cslim_status cslim_staging_open_file(const char *target_file, cslim_staging **out);
/* Rename `name` (a file written in the staging directory) onto the target
 * file and remove the staging directory. Frees `s`. */
cslim_status cslim_staging_commit_file(cslim_staging *s, const char *name);
/* Abort every staging directory still open (for atexit and fatal paths). */
void cslim_staging_abort_all(void);

/* rm -rf. Returns 0 on success. */
int cslim_remove_tree(const char *path);
/* Copy a file (contents and mode bits). */
cslim_status cslim_copy_file(const char *src, const char *dst);

#ifdef __cplusplus
}
#endif
#endif
