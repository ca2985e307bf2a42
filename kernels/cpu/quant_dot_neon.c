// SPDX-License-Identifier: MIT
// NEON (baseline ARMv8-A AdvSIMD, no dot-product extension) fused dot
// products (see quant_dot.h for the contract).
//
// Exactness as in the scalar and x86 kernels: every block's integer dot is
// exact (int8 x int8 widening multiplies, pairwise-added into int32) and
// each output element then takes, block by block, the same float
// expression as the scalar kernel. So y is bit-identical to scalar for the
// block types, whatever n_cols is. f32/f16/bf16 weights use 4-lane FMA
// chains (summation order differs from scalar, as the contract allows).
//
// Shape: one weight row at a time, each block decoded once and multiplied
// with every activation column (the loop order of the scalar kernel; the
// decode is what the vectors speed up). Cost per block and column: 2
// widening multiplies and 2 pairwise adds per 16 elements plus one
// horizontal add. Simple rather than tuned: no micro-tiles yet.
#include "quant_dot_impl.h"

#include <arm_neon.h>
#include <string.h>

// Sum of the 32 products a[i]*b[i] of two signed int8 vectors pairs
// (|a*b| <= 128*128, two of them fit in int16 only when one side is at most
// 127 in magnitude, which holds: activations are quantized to [-127, 127]).
static inline int32_t s_dot32(int8x16_t a0, int8x16_t a1, const int8_t *x) {
    int8x16_t x0 = vld1q_s8(x), x1 = vld1q_s8(x + 16);
    int16x8_t p0 = vmlal_high_s8(vmull_s8(vget_low_s8(a0), vget_low_s8(x0)), a0, x0);
    int16x8_t p1 = vmlal_high_s8(vmull_s8(vget_low_s8(a1), vget_low_s8(x1)), a1, x1);
    return vaddvq_s32(vpadalq_s16(vpaddlq_s16(p0), p1));
}

static inline int32_t s_sum32(const int8_t *x) {
    int16x8_t s = vpaddlq_s8(vld1q_s8(x));
    s = vpadalq_s8(s, vld1q_s8(x + 16));
    return vaddvq_s32(vpaddlq_s16(s));
}

// byte i of the 16 = 0x10 when bit (i + base) of qh is set.
static inline uint8x16_t s_hbit16(uint32_t qh, int base) {
    static const uint8_t bit[16] = {1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128};
    uint8x8_t lo = vdup_n_u8((uint8_t)(qh >> base)), hi = vdup_n_u8((uint8_t)(qh >> (base + 8)));
    uint8x16_t v = vcombine_u8(lo, hi);
    uint8x16_t m = vtstq_u8(v, vld1q_u8(bit));
    return vandq_u8(m, vdupq_n_u8(0x10));
}

// Codes of one 32-element block (q[0] elements 0..15, q[1] 16..31):
// signed (q - offset) without a min, unsigned (<= 31) for Q4_1/Q5_1.
static inline void s_decode32(uint32_t t, const uint8_t *blk, int8x16_t q[2], float *d, float *m) {
    switch (t) {
    case MESH_QT_Q8_0: {
        const mesh_block_q8_0_t *b = (const void *)blk;
        q[0] = vld1q_s8(b->qs);
        q[1] = vld1q_s8(b->qs + 16);
        *d = mesh__h2f(b->d);
        break;
    }
    case MESH_QT_Q4_0:
    case MESH_QT_Q4_1: {
        const uint8_t *qs = t == MESH_QT_Q4_0 ? ((const mesh_block_q4_0_t *)blk)->qs
                                              : ((const mesh_block_q4_1_t *)blk)->qs;
        uint8x16_t v = vld1q_u8(qs);
        uint8x16_t lo = vandq_u8(v, vdupq_n_u8(0xF)), hi = vshrq_n_u8(v, 4);
        if (t == MESH_QT_Q4_0) {
            const mesh_block_q4_0_t *b = (const void *)blk;
            q[0] = vsubq_s8(vreinterpretq_s8_u8(lo), vdupq_n_s8(8));
            q[1] = vsubq_s8(vreinterpretq_s8_u8(hi), vdupq_n_s8(8));
            *d = mesh__h2f(b->d);
        } else {
            const mesh_block_q4_1_t *b = (const void *)blk;
            q[0] = vreinterpretq_s8_u8(lo);
            q[1] = vreinterpretq_s8_u8(hi);
            *d = mesh__h2f(b->d);
            *m = mesh__h2f(b->m);
        }
        break;
    }
    case MESH_QT_Q5_0: {
        const mesh_block_q5_0_t *b = (const void *)blk;
        uint32_t qh;
        memcpy(&qh, b->qh, 4);
        uint8x16_t v = vld1q_u8(b->qs);
        uint8x16_t lo = vorrq_u8(vandq_u8(v, vdupq_n_u8(0xF)), s_hbit16(qh, 0));
        uint8x16_t hi = vorrq_u8(vshrq_n_u8(v, 4), s_hbit16(qh, 16));
        q[0] = vsubq_s8(vreinterpretq_s8_u8(lo), vdupq_n_s8(16));
        q[1] = vsubq_s8(vreinterpretq_s8_u8(hi), vdupq_n_s8(16));
        *d = mesh__h2f(b->d);
        break;
    }
    default: { // MESH_QT_Q5_1
        const mesh_block_q5_1_t *b = (const void *)blk;
        uint32_t qh;
        memcpy(&qh, b->qh, 4);
        uint8x16_t v = vld1q_u8(b->qs);
        q[0] = vreinterpretq_s8_u8(vorrq_u8(vandq_u8(v, vdupq_n_u8(0xF)), s_hbit16(qh, 0)));
        q[1] = vreinterpretq_s8_u8(vorrq_u8(vshrq_n_u8(v, 4), s_hbit16(qh, 16)));
        *d = mesh__h2f(b->d);
        *m = mesh__h2f(b->m);
        break;
    }
    }
}

static void s_gemm32(uint32_t t, int64_t k, const void *w, size_t wrb, int nr, const void *x,
                     size_t xrb, int nc, float *y, size_t ys) {
    const size_t bs = mesh_qtype_traits(t)->size;
    const int64_t nb = k / 32;
    const int has_min = t == MESH_QT_Q4_1 || t == MESH_QT_Q5_1;
    for (int r = 0; r < nr; r++) {
        const uint8_t *wr = (const uint8_t *)w + (size_t)r * wrb;
        for (int c = 0; c < nc; c++)
            y[(size_t)c * ys + r] = 0.0f;
        for (int64_t b = 0; b < nb; b++) {
            int8x16_t q[2];
            float dw, mw = 0.0f;
            s_decode32(t, wr + (size_t)b * bs, q, &dw, &mw);
            for (int c = 0; c < nc; c++) {
                const mesh_block_q8_0_t *xb =
                    (const mesh_block_q8_0_t *)((const uint8_t *)x + (size_t)c * xrb) + b;
                int32_t isum = s_dot32(q[0], q[1], xb->qs);
                float dx = mesh__h2f(xb->d);
                float *acc = &y[(size_t)c * ys + r];
                *acc = *acc + (dw * dx) * (float)isum;
                if (has_min)
                    *acc = *acc + (mw * dx) * (float)s_sum32(xb->qs);
            }
        }
    }
}

// ---------------------------------------------------------------- K-quants

// Right shift of every byte by n (0..7).
static inline uint8x16_t s_shr(uint8x16_t v, int n) { return vshlq_u8(v, vdupq_n_s8((int8_t)-n)); }

// Unsigned codes (<= 63) of elements 32*G .. 32*G+31 of a super-block, as
// two 16-byte halves (layouts as in quant_dot.c s_codes_k).
static inline void s_decode_k(uint32_t t, const uint8_t *blk, int G, uint8x16_t u[2]) {
    const int h = G >> 2, g = G & 3;
    const uint8x16_t m4 = vdupq_n_u8(0xF), m3 = vdupq_n_u8(3), m1 = vdupq_n_u8(1);
    for (int half = 0; half < 2; half++) {
        const int l = 16 * half;
        switch (t) {
        case MESH_QT_Q2_K: {
            const mesh_block_q2_k_t *b = (const void *)blk;
            u[half] = vandq_u8(s_shr(vld1q_u8(b->qs + 32 * h + l), 2 * g), m3);
            break;
        }
        case MESH_QT_Q3_K: {
            const mesh_block_q3_k_t *b = (const void *)blk;
            uint8x16_t lo = vandq_u8(s_shr(vld1q_u8(b->qs + 32 * h + l), 2 * g), m3);
            uint8x16_t hb = vandq_u8(s_shr(vld1q_u8(b->hmask + l), 4 * h + g), m1);
            u[half] = vorrq_u8(lo, vshlq_n_u8(hb, 2));
            break;
        }
        case MESH_QT_Q4_K: {
            const mesh_block_q4_k_t *b = (const void *)blk;
            u[half] = vandq_u8(s_shr(vld1q_u8(b->qs + 32 * (G >> 1) + l), 4 * (G & 1)), m4);
            break;
        }
        case MESH_QT_Q5_K: {
            const mesh_block_q5_k_t *b = (const void *)blk;
            uint8x16_t lo = vandq_u8(s_shr(vld1q_u8(b->qs + 32 * (G >> 1) + l), 4 * (G & 1)), m4);
            uint8x16_t hb = vandq_u8(s_shr(vld1q_u8(b->qh + l), G), m1);
            u[half] = vorrq_u8(lo, vshlq_n_u8(hb, 4));
            break;
        }
        default: { // MESH_QT_Q6_K
            const mesh_block_q6_k_t *b = (const void *)blk;
            uint8x16_t lo =
                vandq_u8(s_shr(vld1q_u8(b->ql + 64 * h + 32 * (g & 1) + l), 4 * (g >> 1)), m4);
            uint8x16_t hi = vandq_u8(s_shr(vld1q_u8(b->qh + 32 * h + l), 2 * g), m3);
            u[half] = vorrq_u8(lo, vshlq_n_u8(hi, 4));
            break;
        }
        }
    }
}

// Sum of 16 products u*x (u <= 63, |x| <= 127: pairs fit in int16).
static inline int32_t s_dot16u(uint8x16_t u, const int8_t *x) {
    int8x16_t a = vreinterpretq_s8_u8(u), xv = vld1q_s8(x);
    int16x8_t p = vmlal_high_s8(vmull_s8(vget_low_s8(a), vget_low_s8(xv)), a, xv);
    return vaddvq_s32(vpaddlq_s16(p));
}

static void s_gemm_k(uint32_t t, int64_t k, const void *w, size_t wrb, int nr, const void *x,
                     size_t xrb, int nc, float *y, size_t ys) {
    const size_t bs = mesh_qtype_traits(t)->size;
    const int64_t nb = k / 256;
    const int min_kind = mesh__kq_is_min_kind(t);
    for (int r = 0; r < nr; r++) {
        const uint8_t *wr = (const uint8_t *)w + (size_t)r * wrb;
        for (int c = 0; c < nc; c++)
            y[(size_t)c * ys + r] = 0.0f;
        for (int64_t b = 0; b < nb; b++) {
            const uint8_t *blk = wr + (size_t)b * bs;
            mesh__kq_prep_t p;
            mesh__kq_prep(t, blk, &p);
            uint8x16_t u[16];
            for (int G = 0; G < 8; G++)
                s_decode_k(t, blk, G, &u[2 * G]);
            int16x8_t mn0 = vld1q_s16(p.mn), mn1 = vld1q_s16(p.mn + 8);
            for (int c = 0; c < nc; c++) {
                const mesh_block_q8_k_t *xb =
                    (const mesh_block_q8_k_t *)((const uint8_t *)x + (size_t)c * xrb) + b;
                int32_t isum = 0;
                for (int j = 0; j < 16; j++)
                    isum += p.sc[j] * s_dot16u(u[j], xb->qs + 16 * j);
                int16x8_t b0 = vld1q_s16(xb->bsums), b1 = vld1q_s16(xb->bsums + 8);
                int32x4_t mm = vmull_s16(vget_low_s16(mn0), vget_low_s16(b0));
                mm = vmlal_high_s16(mm, mn0, b0);
                mm = vmlal_s16(mm, vget_low_s16(mn1), vget_low_s16(b1));
                mm = vmlal_high_s16(mm, mn1, b1);
                int32_t imin = vaddvq_s32(mm);
                float *acc = &y[(size_t)c * ys + r];
                *acc = *acc + mesh__kq_block(min_kind, &p, xb->d, isum, imin);
            }
        }
    }
}

// ---------------------------------------------------------------- f32 / f16 / bf16 weights

static inline float32x4_t s_load_w4(uint32_t t, const uint8_t *row, int64_t i) {
    if (t == MESH_QT_F32)
        return vld1q_f32((const float *)row + i);
    uint16x4_t h = vld1_u16((const uint16_t *)(row + 2 * i));
    if (t == MESH_QT_F16)
        return vcvt_f32_f16(vreinterpret_f16_u16(h));
    return vreinterpretq_f32_u32(vshll_n_u16(h, 16));
}

static inline float s_load_w1(uint32_t t, const uint8_t *row, int64_t i) {
    if (t == MESH_QT_F32) {
        float f;
        memcpy(&f, row + 4 * i, 4);
        return f;
    }
    uint16_t h;
    memcpy(&h, row + 2 * i, 2);
    return t == MESH_QT_F16 ? mesh__h2f(h) : mesh_bf16_to_f32(h);
}

static void s_gemm_float(uint32_t t, int64_t k, const void *w, size_t wrb, int nr, const void *x,
                         size_t xrb, int nc, float *y, size_t ys) {
    const int64_t k4 = k & ~(int64_t)3;
    for (int r = 0; r < nr; r++) {
        const uint8_t *wr = (const uint8_t *)w + (size_t)r * wrb;
        for (int c = 0; c < nc; c++) {
            const float *xc = (const float *)((const uint8_t *)x + (size_t)c * xrb);
            float32x4_t acc = vdupq_n_f32(0.0f);
            for (int64_t i = 0; i < k4; i += 4)
                acc = vfmaq_f32(acc, s_load_w4(t, wr, i), vld1q_f32(xc + i));
            float s = vaddvq_f32(acc);
            for (int64_t i = k4; i < k; i++)
                s += s_load_w1(t, wr, i) * xc[i];
            y[(size_t)c * ys + r] = s;
        }
    }
}

// ---------------------------------------------------------------- dispatch

#define S_WRAP(NAME, FN, T)                                                                      \
    static void NAME(int64_t k, const void *w, size_t wrb, int nr, const void *x, size_t xrb,     \
                     int nc, float *y, size_t ys) {                                               \
        FN(T, k, w, wrb, nr, x, xrb, nc, y, ys);                                                  \
    }

S_WRAP(s_gemm_q8_0, s_gemm32, MESH_QT_Q8_0)
S_WRAP(s_gemm_q4_0, s_gemm32, MESH_QT_Q4_0)
S_WRAP(s_gemm_q4_1, s_gemm32, MESH_QT_Q4_1)
S_WRAP(s_gemm_q5_0, s_gemm32, MESH_QT_Q5_0)
S_WRAP(s_gemm_q5_1, s_gemm32, MESH_QT_Q5_1)
S_WRAP(s_gemm_q2_k, s_gemm_k, MESH_QT_Q2_K)
S_WRAP(s_gemm_q3_k, s_gemm_k, MESH_QT_Q3_K)
S_WRAP(s_gemm_q4_k, s_gemm_k, MESH_QT_Q4_K)
S_WRAP(s_gemm_q5_k, s_gemm_k, MESH_QT_Q5_K)
S_WRAP(s_gemm_q6_k, s_gemm_k, MESH_QT_Q6_K)
S_WRAP(s_gemm_f32, s_gemm_float, MESH_QT_F32)
S_WRAP(s_gemm_f16, s_gemm_float, MESH_QT_F16)
S_WRAP(s_gemm_bf16, s_gemm_float, MESH_QT_BF16)

mesh__gemm_fn mesh__gemm_neon(uint32_t wtype) {
    switch (wtype) {
    case MESH_QT_Q8_0: return s_gemm_q8_0;
    case MESH_QT_Q4_0: return s_gemm_q4_0;
    case MESH_QT_Q4_1: return s_gemm_q4_1;
    case MESH_QT_Q5_0: return s_gemm_q5_0;
    case MESH_QT_Q5_1: return s_gemm_q5_1;
    case MESH_QT_Q2_K: return s_gemm_q2_k;
    case MESH_QT_Q3_K: return s_gemm_q3_k;
    case MESH_QT_Q4_K: return s_gemm_q4_k;
    case MESH_QT_Q5_K: return s_gemm_q5_k;
    case MESH_QT_Q6_K: return s_gemm_q6_k;
    case MESH_QT_F32: return s_gemm_f32;
    case MESH_QT_F16: return s_gemm_f16;
    case MESH_QT_BF16: return s_gemm_bf16;
    default: return NULL;
    }
}
