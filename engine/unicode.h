// SPDX-License-Identifier: MIT
// Unicode helpers for the tokenizer: code point classes (letter, number,
// punctuation, symbol, mark, White_Space) from tables generated at build
// time, and tolerant UTF-8 decoding/encoding/validation.
//
// Invalid UTF-8 never stops the tokenizer: mesh_utf8_next() turns each byte
// that does not start a well-formed sequence into a pseudo code point
// MESH_UNI_INVALID_BASE + byte, which has no class flags. Byte-level BPE then
// encodes the original byte, so any byte string round-trips.
//
// Cost: mesh_uni_flags() is two table loads; the tables are ~40 KiB.
#ifndef MESH_UNICODE_H
#define MESH_UNICODE_H

#include <stddef.h>
#include <stdint.h>

enum {
    MESH_UNI_L = 1,   // \p{L}  letters
    MESH_UNI_N = 2,   // \p{N}  numbers
    MESH_UNI_P = 4,   // \p{P}  punctuation
    MESH_UNI_S = 8,   // \p{S}  symbols
    MESH_UNI_M = 16,  // \p{M}  marks
    MESH_UNI_WS = 32, // \s     the White_Space property
};

// Pseudo code points for invalid bytes: base + the byte (0x80..0xFF).
#define MESH_UNI_INVALID_BASE 0x110000u

// Class flags of a code point (0 for pseudo code points and out-of-range values).
unsigned mesh_uni_flags(uint32_t cp);

// Unicode version the tables were generated from, e.g. "14.0.0".
const char *mesh_uni_version(void);

// Decodes one code point from s[0..len) (len >= 1). Returns the number of
// bytes consumed (1..4). A byte that does not start a well-formed sequence
// (overlong, surrogate, > U+10FFFF, truncated) is consumed alone and gives
// MESH_UNI_INVALID_BASE + byte.
size_t mesh_utf8_next(const uint8_t *s, size_t len, uint32_t *cp);

// Writes cp (<= 0x10FFFF) as UTF-8 into out; returns 1..4 (0 if cp is invalid).
size_t mesh_utf8_encode(uint32_t cp, char out[4]);

// Length of the well-formed sequence at s, or 0 when s[0..len) starts with an
// ill-formed one; *need (may be NULL) gets how many more bytes would be needed
// when s[0..len) is a valid but incomplete prefix (then the return is 0 too).
// The length of the maximal ill-formed subpart (what one U+FFFD replaces, as
// in the Unicode standard's recommended practice) goes to *bad when ill-formed.
size_t mesh_utf8_check(const uint8_t *s, size_t len, size_t *need, size_t *bad);

#endif
