// SPDX-License-Identifier: MIT
// Stop-string matcher over streamed, decoded text.
//
// Generation yields text in pieces (one per token, already UTF-8 complete).
// A stop string may span several pieces, so the matcher holds back any tail
// of the text that could be the start of a stop string and releases it once
// it can no longer become one. When a stop string completes, the text before
// it is released and the stop string itself (and anything after it) never
// is. With several stop strings, the one that completes first wins (ties: the
// one that starts first), so the result does not depend on how the text was
// split into pieces.
//
// Memory: the held-back text is at most (longest stop string - 1) bytes plus
// one piece; the buffer grows only when a piece is longer than any seen
// before, so steady-state feeding does not allocate. Cost per piece:
// O(held * number of stop strings).
//
// Not thread-safe: one matcher per sequence.
#ifndef MESH_STOP_H
#define MESH_STOP_H

#include <stddef.h>

typedef struct mesh_stop mesh_stop_t;

// Creates a matcher for n stop strings (each non-empty, NUL-terminated; n may
// be 0: then every byte is released at once). Copies the strings. Returns 0
// and *out, MESH_EINVAL (empty string, NULL), or MESH_ENOMEM. Caller destroys
// *out with mesh_stop_destroy().
int mesh_stop_new(const char *const *stops, int n, mesh_stop_t **out);

// Frees the matcher and sets *m_p to NULL. NULL or *m_p == NULL is a no-op.
void mesh_stop_destroy(mesh_stop_t **m_p);

// Feeds one piece of text. Sets *text / *len to the text that can be
// released now (pointer into the matcher, valid until the next call; may be
// length 0). Returns 1 when a stop string completed (the matcher then
// releases nothing more: further feeds release nothing and return 1), 0 when
// not, or MESH_ENOMEM.
int mesh_stop_feed(mesh_stop_t *m, const char *piece, size_t piece_len, const char **text,
                   size_t *len);

// At the end of generation for another reason (length, end token): takes
// the last piece (may be empty, e.g. what a text stream flushes), and
// releases it together with everything held back, in order, except what a
// stop string in it cuts off. Same returns as mesh_stop_feed(). After a
// stop, releases nothing.
int mesh_stop_flush(mesh_stop_t *m, const char *piece, size_t piece_len, const char **text,
                    size_t *len);

// Whether a stop string has completed; which one (index into the list given
// to mesh_stop_new), or -1.
int mesh_stop_matched(const mesh_stop_t *m);

// Starts over (nothing held, no stop seen).
void mesh_stop_reset(mesh_stop_t *m);

#endif
