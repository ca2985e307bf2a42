// SPDX-License-Identifier: MIT
// Unicode class lookup over the generated two-stage tables, and UTF-8
// decoding that never fails (see unicode.h).
#include "unicode.h"

#include "mesh_unicode_tables.h"

unsigned mesh_uni_flags(uint32_t cp) {
    if (cp >= 0x110000u)
        return 0;
    return mesh_unicode_stage2[((uint32_t)mesh_unicode_stage1[cp >> 8] << 8) | (cp & 0xFF)];
}

const char *mesh_uni_version(void) { return MESH_UNICODE_TABLES_VERSION; }

// Second-byte range of a lead byte: [lo, hi] (excludes overlongs, surrogates
// and code points above U+10FFFF); returns the sequence length or 0 when the
// byte cannot start a sequence.
static size_t s_lead(uint8_t b, uint8_t *lo, uint8_t *hi) {
    *lo = 0x80;
    *hi = 0xBF;
    if (b < 0x80)
        return 1;
    if (b < 0xC2)
        return 0;
    if (b < 0xE0)
        return 2;
    if (b < 0xF0) {
        if (b == 0xE0)
            *lo = 0xA0;
        else if (b == 0xED)
            *hi = 0x9F;
        return 3;
    }
    if (b < 0xF5) {
        if (b == 0xF0)
            *lo = 0x90;
        else if (b == 0xF4)
            *hi = 0x8F;
        return 4;
    }
    return 0;
}

size_t mesh_utf8_check(const uint8_t *s, size_t len, size_t *need, size_t *bad) {
    uint8_t lo, hi;
    if (need)
        *need = 0;
    if (bad)
        *bad = 0;
    if (len == 0)
        return 0;
    size_t n = s_lead(s[0], &lo, &hi);
    if (n == 0) {
        if (bad)
            *bad = 1;
        return 0;
    }
    for (size_t i = 1; i < n; i++) {
        if (i >= len) {
            if (need)
                *need = n - i;
            return 0;
        }
        uint8_t l = i == 1 ? lo : 0x80, h = i == 1 ? hi : 0xBF;
        if (s[i] < l || s[i] > h) {
            if (bad)
                *bad = i;
            return 0;
        }
    }
    return n;
}

size_t mesh_utf8_next(const uint8_t *s, size_t len, uint32_t *cp) {
    uint8_t b = s[0];
    if (b < 0x80) {
        *cp = b;
        return 1;
    }
    size_t n = mesh_utf8_check(s, len, NULL, NULL);
    switch (n) {
    case 2:
        *cp = ((uint32_t)(b & 0x1F) << 6) | (s[1] & 0x3F);
        return 2;
    case 3:
        *cp = ((uint32_t)(b & 0x0F) << 12) | ((uint32_t)(s[1] & 0x3F) << 6) | (s[2] & 0x3F);
        return 3;
    case 4:
        *cp = ((uint32_t)(b & 0x07) << 18) | ((uint32_t)(s[1] & 0x3F) << 12) |
              ((uint32_t)(s[2] & 0x3F) << 6) | (s[3] & 0x3F);
        return 4;
    default:
        *cp = MESH_UNI_INVALID_BASE + b;
        return 1;
    }
}

size_t mesh_utf8_encode(uint32_t cp, char out[4]) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        if (cp >= 0xD800 && cp <= 0xDFFF)
            return 0;
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    if (cp < 0x110000) {
        out[0] = (char)(0xF0 | (cp >> 18));
        out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[3] = (char)(0x80 | (cp & 0x3F));
        return 4;
    }
    return 0;
}
