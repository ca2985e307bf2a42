// SPDX-License-Identifier: MIT
// A small byte-level BPE vocabulary built in the tests: the 256 byte tokens
// (ids 0..255, id = byte value) written with GPT-2's byte-to-unicode mapping,
// then the caller's extra tokens and merges. Shared by the tokenizer tests.
#ifndef TOK_TEST_VOCAB_H
#define TOK_TEST_VOCAB_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer.h"

// GPT-2's mapping: printable Latin-1 stays, the other 68 bytes go to U+0100.. in order.
static inline bool tv_printable(unsigned b) {
    return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
}

static inline unsigned tv_byte_cp(unsigned b) {
    if (tv_printable(b))
        return b;
    unsigned n = 0;
    for (unsigned x = 0; x < b; x++)
        n += !tv_printable(x);
    return 256 + n;
}

// Writes the mapped form of bytes s[0..n) into out (NUL-terminated).
static inline void tv_map(const char *s, size_t n, char *out) {
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned cp = tv_byte_cp((uint8_t)s[i]);
        if (cp < 0x80) {
            out[o++] = (char)cp;
        } else {
            out[o++] = (char)(0xC0 | (cp >> 6));
            out[o++] = (char)(0x80 | (cp & 0x3F));
        }
    }
    out[o] = 0;
}

typedef struct {
    char *tok[512];
    int32_t type[512];
    size_t n;
    char *merge[512];
    size_t n_merges;
} tv_vocab_t;

static inline void tv_init(tv_vocab_t *v) {
    memset(v, 0, sizeof *v);
    for (unsigned b = 0; b < 256; b++) {
        char c = (char)b, buf[8];
        tv_map(&c, 1, buf);
        v->tok[v->n] = strdup(buf);
        v->type[v->n++] = MESH_TOK_TYPE_NORMAL;
    }
}

// Adds a token given as raw bytes (mapped for NORMAL, verbatim otherwise); returns its id.
static inline int32_t tv_add(tv_vocab_t *v, const char *raw, int32_t type) {
    char buf[256];
    if (type == MESH_TOK_TYPE_NORMAL)
        tv_map(raw, strlen(raw), buf);
    else
        snprintf(buf, sizeof buf, "%s", raw);
    v->tok[v->n] = strdup(buf);
    v->type[v->n] = type;
    return (int32_t)v->n++;
}

// Adds a merge of two raw byte strings (mapped), and the merged token.
static inline int32_t tv_merge(tv_vocab_t *v, const char *a, const char *b) {
    char ma[128], mb[128], m[260], ab[128];
    tv_map(a, strlen(a), ma);
    tv_map(b, strlen(b), mb);
    snprintf(m, sizeof m, "%s %s", ma, mb);
    v->merge[v->n_merges++] = strdup(m);
    snprintf(ab, sizeof ab, "%s%s", a, b);
    return tv_add(v, ab, MESH_TOK_TYPE_NORMAL);
}

static inline int tv_build(tv_vocab_t *v, const char *pre, int32_t bos, mesh_tok_t **out,
                           char *err, size_t err_len) {
    mesh_tok_vocab_t d = {0};
    d.model = "gpt2";
    d.pre = pre;
    d.tokens = (const char *const *)v->tok;
    d.token_types = v->type;
    d.n_tokens = v->n;
    d.merges = (const char *const *)v->merge;
    d.n_merges = v->n_merges;
    d.bos = bos, d.eos = -1, d.eot = -1, d.eom = -1, d.unk = -1, d.pad = -1;
    return mesh_tok_new(&d, out, err, err_len);
}

static inline void tv_free(tv_vocab_t *v) {
    for (size_t i = 0; i < v->n; i++)
        free(v->tok[i]);
    for (size_t i = 0; i < v->n_merges; i++)
        free(v->merge[i]);
}

#endif
