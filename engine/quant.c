// SPDX-License-Identifier: MIT
// The table of tensor element types (names, block sizes, byte sizes) and the
// half-precision helpers. The block-type converters (to_float/from_float)
// are filled in by quant_ref.c; this file stays a plain lookup table.
#include "quant.h"

#include "mesh_err.h"

#include <ctype.h>
#include <string.h>

float mesh_fp16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t mant = h & 0x3ff;
    uint32_t bits;
    if (exp == 0) {
        if (mant == 0) {
            bits = sign;
        } else { // subnormal: normalise
            int e = -1;
            do {
                e++;
                mant <<= 1;
            } while (!(mant & 0x400));
            mant &= 0x3ff;
            bits = sign | ((uint32_t)(127 - 15 - e) << 23) | (mant << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (mant << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t mesh_f32_to_fp16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000;
    int32_t exp = (int32_t)((x >> 23) & 0xff);
    uint32_t mant = x & 0x7fffff;
    if (exp == 0xff) // inf or nan (keep nan quiet)
        return (uint16_t)(sign | 0x7c00 | (mant ? 0x200 : 0));
    int32_t e = exp - 127 + 15;
    if (e >= 31)
        return (uint16_t)(sign | 0x7c00);
    if (e <= 0) { // subnormal or zero in half
        if (e < -10)
            return (uint16_t)sign;
        mant |= 0x800000;
        uint32_t shift = (uint32_t)(14 - e);
        uint32_t half = mant >> shift;
        uint32_t rem = mant & ((1u << shift) - 1);
        uint32_t mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1)))
            half++;
        return (uint16_t)(sign | half);
    }
    uint32_t half = sign | ((uint32_t)e << 10) | (mant >> 13);
    uint32_t rem = mant & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (half & 1)))
        half++; // may carry into the exponent, which is the right rounding
    return (uint16_t)half;
}

float mesh_bf16_to_f32(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t mesh_f32_to_bf16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffff) > 0x7f800000) // nan: keep it a quiet nan
        return (uint16_t)((x >> 16) | 0x40);
    x += 0x7fff + ((x >> 16) & 1); // round to nearest even
    return (uint16_t)(x >> 16);
}

static void s_f32_to_float(const void *src, float *dst, int64_t n) {
    memcpy(dst, src, (size_t)n * sizeof(float));
}
static void s_f32_from_float(const float *src, void *dst, int64_t n) {
    memcpy(dst, src, (size_t)n * sizeof(float));
}
static void s_f16_to_float(const void *src, float *dst, int64_t n) {
    const uint8_t *p = src;
    for (int64_t i = 0; i < n; i++) {
        uint16_t h;
        memcpy(&h, p + 2 * i, 2);
        dst[i] = mesh_fp16_to_f32(h);
    }
}
static void s_f16_from_float(const float *src, void *dst, int64_t n) {
    uint8_t *p = dst;
    for (int64_t i = 0; i < n; i++) {
        uint16_t h = mesh_f32_to_fp16(src[i]);
        memcpy(p + 2 * i, &h, 2);
    }
}
static void s_bf16_to_float(const void *src, float *dst, int64_t n) {
    const uint8_t *p = src;
    for (int64_t i = 0; i < n; i++) {
        uint16_t h;
        memcpy(&h, p + 2 * i, 2);
        dst[i] = mesh_bf16_to_f32(h);
    }
}
static void s_bf16_from_float(const float *src, void *dst, int64_t n) {
    uint8_t *p = dst;
    for (int64_t i = 0; i < n; i++) {
        uint16_t h = mesh_f32_to_bf16(src[i]);
        memcpy(p + 2 * i, &h, 2);
    }
}

// Block types: sizes from the published GGML layouts. QK_K = 256.
// Converters for block types are attached by quant_ref.c (see mesh__quant_ref_fill).
static mesh_qtype_traits_t s_traits[MESH_QT_COUNT] = {
    [MESH_QT_F32] = {"f32", 1, 4, s_f32_to_float, s_f32_from_float},
    [MESH_QT_F16] = {"f16", 1, 2, s_f16_to_float, s_f16_from_float},
    [MESH_QT_BF16] = {"bf16", 1, 2, s_bf16_to_float, s_bf16_from_float},
    [MESH_QT_Q4_0] = {"q4_0", 32, 18, NULL, NULL},   // f16 d, 16 B nibbles
    [MESH_QT_Q4_1] = {"q4_1", 32, 20, NULL, NULL},   // f16 d, f16 m, 16 B nibbles
    [MESH_QT_Q5_0] = {"q5_0", 32, 22, NULL, NULL},   // f16 d, 4 B high bits, 16 B nibbles
    [MESH_QT_Q5_1] = {"q5_1", 32, 24, NULL, NULL},   // f16 d, f16 m, 4 B high bits, 16 B
    [MESH_QT_Q8_0] = {"q8_0", 32, 34, NULL, NULL},   // f16 d, 32 int8
    [MESH_QT_Q8_1] = {"q8_1", 32, 36, NULL, NULL},   // f16 d, f16 s, 32 int8
    [MESH_QT_Q2_K] = {"q2_K", 256, 84, NULL, NULL},  // 16 B scales, 64 B q, f16 d, f16 dmin
    [MESH_QT_Q3_K] = {"q3_K", 256, 110, NULL, NULL}, // 32 B hmask, 64 B q, 12 B scales, f16 d
    [MESH_QT_Q4_K] = {"q4_K", 256, 144, NULL, NULL}, // f16 d, f16 dmin, 12 B scales, 128 B q
    [MESH_QT_Q5_K] = {"q5_K", 256, 176, NULL, NULL}, // d, dmin, 12 B scales, 32 B qh, 128 B qs
    [MESH_QT_Q6_K] = {"q6_K", 256, 210, NULL, NULL}, // 128 B ql, 64 B qh, 16 int8 scales, f16 d
    [MESH_QT_Q8_K] = {"q8_K", 256, 292, NULL, NULL}, // f32 d, 256 int8, 16 int16 bsums
};

void mesh__quant_ref_fill(mesh_qtype_traits_t *traits, int n); // quant_ref.c

static mesh_qtype_traits_t *s_table(void) {
    static int filled;
    if (!__atomic_load_n(&filled, __ATOMIC_ACQUIRE)) {
        // Idempotent: concurrent first calls write the same pointers.
        mesh__quant_ref_fill(s_traits, MESH_QT_COUNT);
        __atomic_store_n(&filled, 1, __ATOMIC_RELEASE);
    }
    return s_traits;
}

const mesh_qtype_traits_t *mesh_qtype_traits(uint32_t type) {
    if (type >= MESH_QT_COUNT)
        return NULL;
    const mesh_qtype_traits_t *t = &s_table()[type];
    return t->name ? t : NULL;
}

const char *mesh_qtype_name(uint32_t type) {
    const mesh_qtype_traits_t *t = mesh_qtype_traits(type);
    return t ? t->name : "?";
}

int mesh_qtype_parse(const char *name, mesh_qtype_t *out) {
    if (!name)
        return MESH_EINVAL;
    for (uint32_t i = 0; i < MESH_QT_COUNT; i++) {
        const char *n = s_traits[i].name;
        if (n && strcasecmp(n, name) == 0) {
            *out = (mesh_qtype_t)i;
            return 0;
        }
    }
    return MESH_EINVAL;
}

size_t mesh_qtype_row_size(uint32_t type, int64_t n) {
    const mesh_qtype_traits_t *t = mesh_qtype_traits(type);
    if (!t || n < 0 || n % t->blck)
        return 0;
    return (size_t)(n / t->blck) * t->size;
}
