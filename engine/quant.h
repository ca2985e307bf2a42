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

#endif
