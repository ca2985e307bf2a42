// SPDX-License-Identifier: MIT
// Tensor element types as GGUF stores them, and their reference conversions.
//
// Type ids are GGML's on-disk numbers (they are read from files, so they can
// never change). Block layouts follow the published GGML definitions: a row of
// n elements of a block type is n / blck blocks of `size` bytes each.
//
// This file is the scalar reference: to_float (dequantize) and from_float
// (quantize) for every type. Fast fused dot products live in kernels/cpu
// (quant_dot.h) and are checked against these.
#ifndef MESH_QUANT_H
#define MESH_QUANT_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    MESH_QT_F32 = 0,
    MESH_QT_F16 = 1,
    MESH_QT_Q4_0 = 2,
    MESH_QT_Q4_1 = 3,
    MESH_QT_Q5_0 = 6,
    MESH_QT_Q5_1 = 7,
    MESH_QT_Q8_0 = 8,
    MESH_QT_Q8_1 = 9,
    MESH_QT_Q2_K = 10,
    MESH_QT_Q3_K = 11,
    MESH_QT_Q4_K = 12,
    MESH_QT_Q5_K = 13,
    MESH_QT_Q6_K = 14,
    MESH_QT_Q8_K = 15,
    MESH_QT_BF16 = 30,
    MESH_QT_COUNT = 40 // one past the largest id GGUF defines that we know of
} mesh_qtype_t;

// Dequantizes n elements (n a multiple of blck) from src into dst.
typedef void (*mesh_qt_to_float_fn)(const void *src, float *dst, int64_t n);
// Quantizes n elements (n a multiple of blck) from src into dst (reference,
// round-to-nearest with the same scale search the published format implies).
typedef void (*mesh_qt_from_float_fn)(const float *src, void *dst, int64_t n);

typedef struct {
    const char *name;                // GGML's name: "f32", "q8_0", "q4_K", "bf16"
    uint32_t blck;                   // elements per block (1 for f32/f16/bf16)
    uint32_t size;                   // bytes per block
    mesh_qt_to_float_fn to_float;    // never NULL for a known type
    mesh_qt_from_float_fn from_float;// NULL if we cannot quantize to it
} mesh_qtype_traits_t;

// Traits of a type id, or NULL when the id is not a type we know. O(1).
const mesh_qtype_traits_t *mesh_qtype_traits(uint32_t type);

// Name for a type id ("q4_K"), "?" when unknown.
const char *mesh_qtype_name(uint32_t type);

// Parses a user-facing type name, case-insensitive ("q4_k", "Q8_0", "bf16").
// Returns 0 and sets *out, or MESH_EINVAL.
int mesh_qtype_parse(const char *name, mesh_qtype_t *out);

// Bytes for a row of n elements; 0 when the type is unknown or n is not a
// multiple of its block size (callers treat 0 as an error).
size_t mesh_qtype_row_size(uint32_t type, int64_t n);

// Half-precision helpers (IEEE binary16 and bfloat16), exact conversions;
// f32 -> bf16 rounds to nearest even.
float mesh_fp16_to_f32(uint16_t h);
uint16_t mesh_f32_to_fp16(float f);
float mesh_bf16_to_f32(uint16_t h);
uint16_t mesh_f32_to_bf16(float f);

// ---- Block layouts (published GGML definitions, byte-exact) ----
// Halves are stored as raw IEEE binary16 bits (uint16_t); everything is
// little-endian on disk, and we only build for little-endian hosts.
#define MESH_QK32 32  // elements per block of the 32-element types
#define MESH_QK_K 256 // elements per super-block of the K-quants
#define MESH_K_SCALE_SIZE 12

typedef struct {
    uint16_t d;      // f16 scale
    uint8_t qs[16];  // element j in qs[j] & 15, element j+16 in qs[j] >> 4; value (q-8)*d
} mesh_block_q4_0_t;
typedef struct {
    uint16_t d, m;   // f16 scale and min; value q*d + m
    uint8_t qs[16];
} mesh_block_q4_1_t;
typedef struct {
    uint16_t d;
    uint8_t qh[4];   // bit j (little-endian u32) is bit 4 of element j
    uint8_t qs[16];  // low nibbles as in q4_0; value (q-16)*d
} mesh_block_q5_0_t;
typedef struct {
    uint16_t d, m;
    uint8_t qh[4];
    uint8_t qs[16];  // value q*d + m
} mesh_block_q5_1_t;
typedef struct {
    uint16_t d;
    int8_t qs[32];   // value q*d
} mesh_block_q8_0_t;
typedef struct {
    uint16_t d, s;   // s = d * sum(qs)
    int8_t qs[32];
} mesh_block_q8_1_t;
typedef struct {
    uint8_t scales[16]; // per 16 elements: low nibble scale, high nibble min (4 bits each)
    uint8_t qs[64];     // 2-bit quants
    uint16_t d, dmin;   // super-block scales for scales and mins
} mesh_block_q2_k_t;
typedef struct {
    uint8_t hmask[32];  // high bit of each 3-bit quant (set = no -4 offset)
    uint8_t qs[64];     // low 2 bits
    uint8_t scales[12]; // 16 6-bit scales, stored +32
    uint16_t d;
} mesh_block_q3_k_t;
typedef struct {
    uint16_t d, dmin;
    uint8_t scales[MESH_K_SCALE_SIZE]; // 8 6-bit scales and 8 6-bit mins, packed
    uint8_t qs[128];                   // 4-bit quants, 64 elements per 32 bytes
} mesh_block_q4_k_t;
typedef struct {
    uint16_t d, dmin;
    uint8_t scales[MESH_K_SCALE_SIZE];
    uint8_t qh[32];                    // bit 4 of each quant
    uint8_t qs[128];
} mesh_block_q5_k_t;
typedef struct {
    uint8_t ql[128];    // low 4 bits
    uint8_t qh[64];     // high 2 bits
    int8_t scales[16];  // per 16 elements
    uint16_t d;
} mesh_block_q6_k_t;
typedef struct {
    float d;            // f32 scale (activation type of the K-quants)
    int8_t qs[256];
    int16_t bsums[16];  // sum of qs per 16 elements
} mesh_block_q8_k_t;

// 6-bit scale and min j (0..7) of a Q4_K/Q5_K super-block's packed scales.
static inline void mesh_q4k_scale_min(int j, const uint8_t *q, uint8_t *sc, uint8_t *m) {
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *m = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

// Signed scale j (0..15) of a Q3_K super-block's packed scales (-32..31).
static inline int mesh_q3k_scale(int j, const uint8_t *s) {
    int lo = j < 8 ? (s[j] & 0xF) : (s[j - 8] >> 4);
    int hi = (s[8 + (j & 3)] >> (2 * (j >> 2))) & 3;
    return (lo | (hi << 4)) - 32;
}

#endif
