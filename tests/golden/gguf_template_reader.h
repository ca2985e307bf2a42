// SPDX-License-Identifier: MIT
// Test helper: reads one string key (tokenizer.chat_template) out of a GGUF
// file with bounds checks, without the engine's GGUF module, so the template
// tests do not depend on it. Header-only: one static function.
#ifndef TEST_GGUF_TEMPLATE_READER_H
#define TEST_GGUF_TEMPLATE_READER_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// Returns a malloc'd copy of the string value of `key` (caller frees), or
// NULL if the file cannot be read, is not GGUF, or has no such string key.
static char *test_gguf_read_str(const char *path, const char *key) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    // The key/value section sits at the start of the file; 32 MiB covers the
    // metadata (vocabulary included) of any model we test with.
    size_t cap = (size_t)32 << 20;
    unsigned char *b = malloc(cap);
    size_t n = b ? fread(b, 1, cap, f) : 0;
    fclose(f);
    char *res = NULL;
    size_t p = 0;
#define NEED(k) if (n - p < (size_t)(k)) goto done
#define U32() (p += 4, (uint32_t)b[p - 4] | (uint32_t)b[p - 3] << 8 | (uint32_t)b[p - 2] << 16 | (uint32_t)b[p - 1] << 24)
    if (!b || n < 24 || memcmp(b, "GGUF", 4))
        goto done;
    p = 8;
    uint64_t n_kv;
    p += 8; // tensor count
    memcpy(&n_kv, b + p, 8);
    p += 8;
    static const size_t sz[13] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    for (uint64_t i = 0; i < n_kv; i++) {
        uint64_t kl;
        NEED(8);
        memcpy(&kl, b + p, 8);
        p += 8;
        NEED(kl);
        const char *k = (const char *)b + p;
        p += kl;
        NEED(4);
        uint32_t t = U32();
        if (t == 8) {
            uint64_t sl;
            NEED(8);
            memcpy(&sl, b + p, 8);
            p += 8;
            NEED(sl);
            if (kl == strlen(key) && !memcmp(k, key, kl)) {
                res = malloc(sl + 1);
                if (res) {
                    memcpy(res, b + p, sl);
                    res[sl] = 0;
                }
                goto done;
            }
            p += sl;
        } else if (t == 9) {
            NEED(12);
            uint32_t at = U32();
            uint64_t cnt;
            memcpy(&cnt, b + p, 8);
            p += 8;
            for (uint64_t j = 0; j < cnt; j++) {
                if (at == 8) {
                    uint64_t sl;
                    NEED(8);
                    memcpy(&sl, b + p, 8);
                    p += 8;
                    NEED(sl);
                    p += sl;
                } else if (at < 13 && sz[at]) {
                    NEED(sz[at]);
                    p += sz[at];
                } else {
                    goto done;
                }
            }
        } else if (t < 13 && sz[t]) {
            NEED(sz[t]);
            p += sz[t];
        } else {
            goto done;
        }
    }
done:
#undef NEED
#undef U32
    free(b);
    return res;
}

#endif
