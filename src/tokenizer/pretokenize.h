/* The Qwen2/Qwen3 pre-tokenizer split, a hand-written equivalent of
 *   (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}
 *   | ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
 * with leftmost-first alternation and greedy backtracking semantics. */
#ifndef CSLIM_TOKENIZER_PRETOKENIZE_H
#define CSLIM_TOKENIZER_PRETOKENIZE_H

#include <stddef.h>

/* The exact pattern string found in Qwen tokenizer.json files. */
extern const char *const CSLIM_QWEN_SPLIT_PATTERN;

/* End (exclusive byte offset) of the pre-token starting at `pos` of the valid
 * UTF-8 text s[0..n). Always > pos when pos < n. */
size_t cslim_pretok_next(const unsigned char *s, size_t n, size_t pos);

#endif
