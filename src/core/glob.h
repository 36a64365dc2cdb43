/* Glob patterns for module names, as msModelSlim's mix_cfg uses them
 * (Python fnmatchcase: '*' any run of characters including '.', '?' one
 * character, '[abc]' / '[!abc]' a set), plus '{a,b}' alternatives. */
#ifndef CSLIM_CORE_GLOB_H
#define CSLIM_CORE_GLOB_H

/* 1 when `name` matches `pattern` entirely. */
int cslim_glob_match(const char *pattern, const char *name);

#endif
