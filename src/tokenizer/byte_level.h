/* GPT-2's byte-to-unicode mapping used by byte-level BPE vocabularies:
 * bytes 33-126, 161-172 and 174-255 map to themselves, the other 68 bytes to
 * U+0100.. in increasing byte order (space -> U+0120 'Ġ', '\n' -> U+010A 'Ċ'). */
#ifndef CSLIM_TOKENIZER_BYTE_LEVEL_H
#define CSLIM_TOKENIZER_BYTE_LEVEL_H

#include <stddef.h>
#include <stdint.h>

/* Code point that stands for byte b. */
uint32_t cslim_bytelevel_char(unsigned b);
/* Decode a byte-level string (UTF-8 of mapped characters) into raw bytes.
 * out must hold n bytes. Returns the byte count, or -1 if a character is not
 * in the mapping. */
long cslim_bytelevel_decode(const char *s, size_t n, unsigned char *out);

#endif
