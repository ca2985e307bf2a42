// SPDX-License-Identifier: MIT
// A tiny GGUF tensor-table reader for the tensor-type tests only: reads the
// whole file into memory, skips the metadata, and finds tensors by name.
// Bounds-checked enough to fail cleanly on a bad file; the product's real,
// validating reader is engine/gguf.c.
#ifndef TEST_QUANT_GGUF_H
#define TEST_QUANT_GGUF_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    uint8_t *buf;
    size_t len;
    int n_tensors;
    struct tq_tensor {
        char name[96];
        uint32_t n_dims, type;
        uint64_t ne[4];
        uint64_t off; // from the data section
    } *t;
    size_t data_off;
} tq_gguf_t;

static int tq_get(const tq_gguf_t *g, size_t *o, void *dst, size_t n) {
    if (*o + n > g->len)
        return -1;
    memcpy(dst, g->buf + *o, n);
    *o += n;
    return 0;
}

static int tq_skip_val(const tq_gguf_t *g, size_t *o, uint32_t type) {
    static const int sz[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    if (type > 12)
        return -1;
    if (type == 8) {
        uint64_t n;
        if (tq_get(g, o, &n, 8) || n > g->len - *o)
            return -1;
        *o += n;
        return 0;
    }
    if (type == 9) {
        uint32_t et;
        uint64_t n;
        if (tq_get(g, o, &et, 4) || tq_get(g, o, &n, 8))
            return -1;
        for (uint64_t i = 0; i < n; i++)
            if (tq_skip_val(g, o, et))
                return -1;
        return 0;
    }
    if (*o + (size_t)sz[type] > g->len)
        return -1;
    *o += (size_t)sz[type];
    return 0;
}

// Returns 0 or -1 (message on stderr).
static int tq_open(const char *path, tq_gguf_t *g) {
    memset(g, 0, sizeof *g);
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "cannot open %s\n", path);
        return -1;
    }
    fseek(f, 0, SEEK_END);
    g->len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    g->buf = malloc(g->len);
    if (!g->buf || fread(g->buf, 1, g->len, f) != g->len) {
        fclose(f);
        return -1;
    }
    fclose(f);
    size_t o = 0;
    uint32_t magic, ver;
    uint64_t nt, nkv;
    if (tq_get(g, &o, &magic, 4) || memcmp(&magic, "GGUF", 4) || tq_get(g, &o, &ver, 4) ||
        tq_get(g, &o, &nt, 8) || tq_get(g, &o, &nkv, 8) || nt > 100000)
        return -1;
    uint32_t align = 32;
    for (uint64_t i = 0; i < nkv; i++) {
        uint64_t kl;
        uint32_t type;
        if (tq_get(g, &o, &kl, 8) || kl > g->len - o)
            return -1;
        int is_align = kl == 17 && !memcmp(g->buf + o, "general.alignment", 17);
        o += kl;
        if (tq_get(g, &o, &type, 4))
            return -1;
        if (is_align && type == 4) {
            if (tq_get(g, &o, &align, 4))
                return -1;
        } else if (tq_skip_val(g, &o, type)) {
            return -1;
        }
    }
    g->t = calloc(nt ? nt : 1, sizeof *g->t);
    g->n_tensors = (int)nt;
    for (uint64_t i = 0; i < nt; i++) {
        uint64_t nl;
        if (tq_get(g, &o, &nl, 8) || nl >= sizeof g->t[i].name || nl > g->len - o)
            return -1;
        memcpy(g->t[i].name, g->buf + o, nl);
        o += nl;
        if (tq_get(g, &o, &g->t[i].n_dims, 4) || g->t[i].n_dims > 4)
            return -1;
        for (int d = 0; d < 4; d++)
            g->t[i].ne[d] = 1;
        for (uint32_t d = 0; d < g->t[i].n_dims; d++)
            if (tq_get(g, &o, &g->t[i].ne[d], 8))
                return -1;
        if (tq_get(g, &o, &g->t[i].type, 4) || tq_get(g, &o, &g->t[i].off, 8))
            return -1;
    }
    g->data_off = (o + align - 1) / align * align;
    return 0;
}

static const struct tq_tensor *tq_find(const tq_gguf_t *g, const char *name) {
    for (int i = 0; i < g->n_tensors; i++)
        if (!strcmp(g->t[i].name, name))
            return &g->t[i];
    return NULL;
}

static const void *tq_data(const tq_gguf_t *g, const struct tq_tensor *t, size_t n_bytes) {
    size_t at = g->data_off + (size_t)t->off;
    if (at > g->len || n_bytes > g->len - at)
        return NULL;
    return g->buf + at;
}

static void tq_close(tq_gguf_t *g) {
    free(g->buf);
    free(g->t);
    memset(g, 0, sizeof *g);
}

#endif
