// SPDX-License-Identifier: MIT
// Byte-level BPE tokenizer (GGUF `tokenizer.ggml.model = gpt2`), as used by
// GLM-4.x, Llama 3, Qwen2 and DeepSeek-V3.
//
// Encoding: special tokens in the text (types CONTROL and USER_DEFINED, e.g.
// `[gMASK]`, `<|user|>`, `<think>`) are cut out first (longest match wins)
// when parse_special is on; the text between them is split into pieces by
// the model's pre-tokenizer (`tokenizer.ggml.pre`: a hand-written matcher per
// published regex family, over generated Unicode tables), and each piece's
// bytes are merged by BPE (lowest merge rank first, leftmost on ties).
// Any byte string is accepted: invalid UTF-8 is carried byte by byte, so
// decode(encode(x)) == x for every x.
//
// Decoding: precomputed bytes per token (the GPT-2 byte-to-unicode mapping
// reversed); CONTROL tokens decode to their text, or to nothing with
// skip_special. The streaming decoder returns only complete UTF-8.
//
// Thread safety: a mesh_tok_t is immutable after creation; encode/decode may
// run on many threads at once. A stream is for one thread at a time.
//
// Cost: create is O(vocab + merges) (two hash tables, one copy of every
// token string); encode is O(n log n) per pre-tokenized piece of n bytes;
// decode and stream push are a memcpy per token and never allocate.
#ifndef MESH_TOKENIZER_H
#define MESH_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gguf.h"

typedef struct mesh_tok mesh_tok_t;
typedef struct mesh_tok_stream mesh_tok_stream_t;

// GGUF `tokenizer.ggml.token_type` values.
typedef enum {
    MESH_TOK_TYPE_UNDEFINED = 0,
    MESH_TOK_TYPE_NORMAL = 1,
    MESH_TOK_TYPE_UNKNOWN = 2,
    MESH_TOK_TYPE_CONTROL = 3,
    MESH_TOK_TYPE_USER_DEFINED = 4,
    MESH_TOK_TYPE_UNUSED = 5,
    MESH_TOK_TYPE_BYTE = 6,
    MESH_TOK_TYPE_COUNT
} mesh_tok_type_t;

// A vocabulary given directly (tests, non-GGUF sources). Everything is
// borrowed for the duration of mesh_tok_new only: the tokenizer copies it.
typedef struct {
    const char *model;          // "gpt2" (the only model supported)
    const char *pre;            // pre-tokenizer name; NULL means "default"
    const char *const *tokens;  // [n_tokens] token strings (byte-to-unicode mapped)
    const size_t *token_lens;   // [n_tokens] byte lengths, or NULL to use strlen
    const int32_t *token_types; // [n_tokens] mesh_tok_type_t, or NULL for all NORMAL
    size_t n_tokens;
    const char *const *merges;  // [n_merges] "left right"; rank = index
    const size_t *merge_lens;   // [n_merges] byte lengths, or NULL to use strlen
    size_t n_merges;
    int32_t bos, eos, eot, eom, unk, pad; // token ids, -1 when the model has none
    bool add_bos;               // the model's default for add_bos
} mesh_tok_vocab_t;

// Names accepted for `pre`, comma separated (for error messages and --help).
const char *mesh_tok_supported_pre(void);

// Builds a tokenizer. On success *out is owned by the caller (destroy with
// mesh_tok_destroy). On failure returns a negative MESH_E* code, *out is
// NULL, and err (if not NULL) holds one line naming the problem.
int mesh_tok_new(const mesh_tok_vocab_t *v, mesh_tok_t **out, char *err, size_t err_len);

// Builds a tokenizer from a GGUF file's `tokenizer.ggml.*` keys. The
// tokenizer copies what it needs: the reader may be closed afterwards.
int mesh_tok_new_from_gguf(const mesh_gguf_t *g, mesh_tok_t **out, char *err,
                           size_t err_len);

// Frees; sets *t to NULL. Safe on NULL. Streams made from it must be gone.
void mesh_tok_destroy(mesh_tok_t **t);

size_t mesh_tok_n_vocab(const mesh_tok_t *t);
const char *mesh_tok_pre(const mesh_tok_t *t); // pre-tokenizer name as given
int32_t mesh_tok_bos(const mesh_tok_t *t);     // -1 when absent (same below)
int32_t mesh_tok_eos(const mesh_tok_t *t);
int32_t mesh_tok_eot(const mesh_tok_t *t);
int32_t mesh_tok_eom(const mesh_tok_t *t);
int32_t mesh_tok_unk(const mesh_tok_t *t);
int32_t mesh_tok_pad(const mesh_tok_t *t);
bool mesh_tok_add_bos_default(const mesh_tok_t *t);
// True for eos, eot and eom (generation stops there).
bool mesh_tok_is_end_of_generation(const mesh_tok_t *t, int32_t id);

// Token string as stored in the vocabulary (byte-to-unicode mapped for
// normal tokens), NUL-terminated, owned by the tokenizer; NULL when id is
// out of range. *len (may be NULL) gets its byte length.
const char *mesh_tok_token_text(const mesh_tok_t *t, int32_t id, size_t *len);
mesh_tok_type_t mesh_tok_token_type(const mesh_tok_t *t, int32_t id);
// Id of an exact token string, or -1. O(len) average.
int32_t mesh_tok_find(const mesh_tok_t *t, const char *text, size_t len);

// Encodes text[0..len) (any bytes). add_bos prepends bos (nothing when the
// model has none). Writes up to cap ids; *n_out gets the number of ids the
// text needs. Returns 0, or MESH_ENOSPACE when cap < *n_out (ids then holds
// the first cap of them), or MESH_ENOMEM.
int mesh_tok_encode(const mesh_tok_t *t, const char *text, size_t len, bool parse_special,
                    bool add_bos, int32_t *ids, size_t cap, size_t *n_out);

// Same, into a new array: on success *ids_out is owned by the caller (free()).
int mesh_tok_encode_alloc(const mesh_tok_t *t, const char *text, size_t len,
                          bool parse_special, bool add_bos, int32_t **ids_out,
                          size_t *n_out);

// Decodes ids to their bytes (raw: a cut in the middle of a character gives
// a partial UTF-8 sequence; use a stream for display). Writes up to cap
// bytes and a NUL when there is room for it; *n_out gets the byte count the
// ids need (without the NUL). Returns 0, MESH_ENOSPACE when cap < *n_out, or
// MESH_ERANGE for an id outside the vocabulary.
int mesh_tok_decode(const mesh_tok_t *t, const int32_t *ids, size_t n, bool skip_special,
                    char *buf, size_t cap, size_t *n_out);

// ---- streaming decoder ----
// Push ids one at a time; each push returns only complete, valid UTF-8.
// Bytes that can never become valid UTF-8 are replaced by U+FFFD (one per
// maximal ill-formed subpart); an incomplete character waits for the next
// ids, and flush replaces whatever is left with U+FFFD.

// Caller destroys. The tokenizer must outlive the stream. NULL on no memory.
mesh_tok_stream_t *mesh_tok_stream_new(const mesh_tok_t *t, bool skip_special);
void mesh_tok_stream_destroy(mesh_tok_stream_t **s);
// *out points into the stream (valid until its next call) and holds *len
// bytes, possibly 0. Never allocates. MESH_ERANGE for an id outside the vocabulary.
int mesh_tok_stream_push(mesh_tok_stream_t *s, int32_t id, const char **out, size_t *len);
// Emits what is held back and resets the stream for reuse.
int mesh_tok_stream_flush(mesh_tok_stream_t *s, const char **out, size_t *len);

#endif
