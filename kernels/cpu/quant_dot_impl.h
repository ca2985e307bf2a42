// SPDX-License-Identifier: MIT
// Private contract between quant_dot.c (scalar + dispatch) and its SIMD
// variants (quant_dot_avx2.c): the gemm function type and the per-block
// scale preparation of the K-quants, shared so that every variant forms the
// same integers and then the same float expression per block (which is what
// makes scalar and SIMD results bit-identical for the block types).
#ifndef MESH_QUANT_DOT_IMPL_H
#define MESH_QUANT_DOT_IMPL_H

#include "quant.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef void (*mesh__gemm_fn)(int64_t k, const void *w, size_t w_row_bytes, int n_rows,
                              const void *x, size_t x_row_bytes, int n_cols, float *y,
                              size_t y_col_stride);

// AVX2 kernel for a weight type, or NULL (quant_dot_avx2.c; absent off x86).
mesh__gemm_fn mesh__gemm_avx2(uint32_t wtype);
// AVX2 activation quantizer for Q8_0 / Q8_K: the same bytes as the scalar
// reference (quant_dot_avx2.c; only called when AVX2 is there).
void mesh__quantize_act_avx2(mesh_qtype_t t, const float *x, void *out, int64_t n);
// AVX-512 kernel (quant_dot_avx512.c, x86 only) and NEON kernel
// (quant_dot_neon.c, arm64 only): NULL where a type has none.
mesh__gemm_fn mesh__gemm_avx512(uint32_t wtype);
// AVX-512 VNNI kernel (quant_dot_avx512vnni.c, x86 only; Q8_0 so far):
// preferred over mesh__gemm_avx512 where the CPU has VNNI.
mesh__gemm_fn mesh__gemm_avx512vnni(uint32_t wtype);
mesh__gemm_fn mesh__gemm_neon(uint32_t wtype);

// K-quant super-block, reduced to one form: element e has an unsigned code
// u[e] and an integer scale sc[e/16]; with the activation's q8 values x and
// bsums b, the block's contribution is
//   kind OFFSET: (d*dx) * (float)(sum sc*u*x - sum mn[j]*b[j])
//   kind MIN:    (d*dx) * (float)(sum sc*u*x) - (dmin*dx) * (float)(sum mn[j]*b[j])
// (OFFSET: Q3_K, Q6_K whose codes carry a fixed offset, mn = offset*sc;
// MIN: Q2_K, Q4_K, Q5_K with a separate min per sub-block).
typedef struct {
    int16_t sc[16]; // per 16 elements
    int16_t mn[16]; // per 16 elements
    float d, dmin;  // dmin is 0 for OFFSET kinds
} mesh__kq_prep_t;

// Exact f16 -> f32 without branches on the normal path: the exponent is
// rebiased by one multiply by 2^112 (exact, subnormals included); inf and
// nan get the all-ones exponent. Same value as mesh_fp16_to_f32, inlined
// because it runs once per block per row on the hot path.
static inline float mesh__h2f(uint16_t h) {
    uint32_t bits = (uint32_t)(h & 0x7fff) << 13;
    float f;
    if ((h & 0x7c00) == 0x7c00) {
        bits |= 0x7f800000u;
        memcpy(&f, &bits, 4);
    } else {
        memcpy(&f, &bits, 4);
        f *= 0x1p112f;
    }
    uint32_t u;
    memcpy(&u, &f, 4);
    u |= (uint32_t)(h & 0x8000) << 16;
    memcpy(&f, &u, 4);
    return f;
}

static inline int mesh__kq_is_min_kind(uint32_t t) {
    return t == MESH_QT_Q2_K || t == MESH_QT_Q4_K || t == MESH_QT_Q5_K;
}

// Scales of one super-block. O(16).
static inline void mesh__kq_prep(uint32_t t, const void *blk, mesh__kq_prep_t *p) {
    switch (t) {
    case MESH_QT_Q2_K: {
        const mesh_block_q2_k_t *b = blk;
        for (int j = 0; j < 16; j++) {
            p->sc[j] = (int16_t)(b->scales[j] & 0xF);
            p->mn[j] = (int16_t)(b->scales[j] >> 4);
        }
        p->d = mesh__h2f(b->d);
        p->dmin = mesh__h2f(b->dmin);
        break;
    }
    case MESH_QT_Q3_K: {
        const mesh_block_q3_k_t *b = blk;
        for (int j = 0; j < 16; j++) {
            p->sc[j] = (int16_t)mesh_q3k_scale(j, b->scales);
            p->mn[j] = (int16_t)(4 * p->sc[j]);
        }
        p->d = mesh__h2f(b->d);
        p->dmin = 0.0f;
        break;
    }
    case MESH_QT_Q4_K:
    case MESH_QT_Q5_K: {
        const uint8_t *s = t == MESH_QT_Q4_K ? ((const mesh_block_q4_k_t *)blk)->scales
                                             : ((const mesh_block_q5_k_t *)blk)->scales;
        uint16_t d = t == MESH_QT_Q4_K ? ((const mesh_block_q4_k_t *)blk)->d
                                       : ((const mesh_block_q5_k_t *)blk)->d;
        uint16_t dm = t == MESH_QT_Q4_K ? ((const mesh_block_q4_k_t *)blk)->dmin
                                        : ((const mesh_block_q5_k_t *)blk)->dmin;
        for (int j = 0; j < 8; j++) {
            uint8_t sc, m;
            mesh_q4k_scale_min(j, s, &sc, &m);
            p->sc[2 * j] = p->sc[2 * j + 1] = sc;
            p->mn[2 * j] = p->mn[2 * j + 1] = m;
        }
        p->d = mesh__h2f(d);
        p->dmin = mesh__h2f(dm);
        break;
    }
    default: { // MESH_QT_Q6_K
        const mesh_block_q6_k_t *b = blk;
        for (int j = 0; j < 16; j++) {
            p->sc[j] = b->scales[j];
            p->mn[j] = (int16_t)(32 * b->scales[j]);
        }
        p->d = mesh__h2f(b->d);
        p->dmin = 0.0f;
        break;
    }
    }
}

// The block's float contribution from its integer sums (the one expression
// every variant uses).
static inline float mesh__kq_block(int min_kind, const mesh__kq_prep_t *p, float dx, int32_t isum,
                                   int32_t imin) {
    if (min_kind)
        return (p->d * dx) * (float)isum - (p->dmin * dx) * (float)imin;
    return (p->d * dx) * (float)(isum - imin);
}

#endif
