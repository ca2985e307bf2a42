// SPDX-License-Identifier: MIT
// Fused quantized dot products: activation quantization, the scalar
// reference kernels, and the run-time choice between scalar and SIMD.
//
// The scalar kernels are written for clarity, not speed: per block they form
// the exact integer dot of the codes and add one float expression to the
// element's accumulator (see quant_dot_impl.h). SIMD variants form the same
// integers and the same float expression, in the same block order.
#include "quant_dot.h"

#include "quant_dot_impl.h"

#include <pthread.h>
#include <math.h>
#include <string.h>

mesh_qtype_t mesh_cpu_act_type(uint32_t wtype) {
    switch (wtype) {
    case MESH_QT_F32:
    case MESH_QT_F16:
    case MESH_QT_BF16:
        return MESH_QT_F32;
    case MESH_QT_Q4_0:
    case MESH_QT_Q4_1:
    case MESH_QT_Q5_0:
    case MESH_QT_Q5_1:
    case MESH_QT_Q8_0:
        return MESH_QT_Q8_0;
    case MESH_QT_Q2_K:
    case MESH_QT_Q3_K:
    case MESH_QT_Q4_K:
    case MESH_QT_Q5_K:
    case MESH_QT_Q6_K:
        return MESH_QT_Q8_K;
    default:
        return MESH_QT_COUNT;
    }
}

bool mesh_cpu_gemm_supported(uint32_t wtype) { return mesh_cpu_act_type(wtype) != MESH_QT_COUNT; }

size_t mesh_cpu_act_row_size(uint32_t wtype, int64_t k) {
    mesh_qtype_t a = mesh_cpu_act_type(wtype);
    if (a == MESH_QT_COUNT || mesh_qtype_row_size(wtype, k) == 0)
        return 0;
    return mesh_qtype_row_size(a, k);
}

static mesh_simd_level_t s_level;
static pthread_once_t s_level_once = PTHREAD_ONCE_INIT;
static void s_pick_level(void) { s_level = mesh_cpu_simd_level(); }

static int s_avx2_ok(mesh_simd_level_t level) {
#if defined(MESH_CPU_X86)
    const mesh_cpu_features_t *f = mesh_cpu_features();
    return level >= MESH_SIMD_AVX2 && level != MESH_SIMD_NEON && f->avx2 && f->fma && f->f16c;
#else
    (void)level;
    return 0;
#endif
}

// Q8_0 activations round half to even (lrintf), as the AVX2 quantizer's
// cvtps does: the two must give the same bytes. (The Q8_0 *weight*
// quantizer in quant_ref.c rounds half away from zero instead, as llama.cpp's
// reference does, so our Q8_0 files equal llama.cpp's.)
static void s_q8_0_act(const float *x, void *dst, int64_t n) {
    mesh_block_q8_0_t *b = dst;
    for (int64_t i = 0; i < n / MESH_QK32; i++, x += 32) {
        float amax = 0.0f;
        for (int j = 0; j < 32; j++)
            amax = fmaxf(amax, fabsf(x[j]));
        float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        b[i].d = mesh_f32_to_fp16(d);
        for (int j = 0; j < 32; j++) {
            long q = lrintf(x[j] * id);
            b[i].qs[j] = (int8_t)(q < -127 ? -127 : q > 127 ? 127 : q);
        }
    }
}

void mesh_cpu_quantize_act_level(mesh_simd_level_t level, mesh_qtype_t act_type, const float *x,
                                 void *out, int64_t n) {
    if (act_type == MESH_QT_F32) {
        memcpy(out, x, (size_t)n * sizeof(float));
        return;
    }
#if defined(MESH_CPU_X86)
    if ((act_type == MESH_QT_Q8_0 || act_type == MESH_QT_Q8_K) && s_avx2_ok(level)) {
        mesh__quantize_act_avx2(act_type, x, out, n);
        return;
    }
#else
    (void)level; // no SIMD activation quantizer off x86 yet
#endif
    if (act_type == MESH_QT_Q8_0) {
        s_q8_0_act(x, out, n);
        return;
    }
    const mesh_qtype_traits_t *t = mesh_qtype_traits(act_type);
    t->from_float(x, out, n);
}

void mesh_cpu_quantize_act(mesh_qtype_t act_type, const float *x, void *out, int64_t n) {
    pthread_once(&s_level_once, s_pick_level);
    mesh_cpu_quantize_act_level(s_level, act_type, x, out, n);
}

// ---------------------------------------------------------------- scalar kernels

static inline uint32_t s_le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

// Signed codes of a 32-element weight block (q - offset), and whether the
// type carries a min (then the codes are unsigned and *m is the min).
static void s_codes32(uint32_t t, const uint8_t *blk, int8_t q[32], float *d, float *m) {
    *m = 0.0f;
    switch (t) {
    case MESH_QT_Q8_0: {
        const mesh_block_q8_0_t *b = (const void *)blk;
        memcpy(q, b->qs, 32);
        *d = mesh__h2f(b->d);
        break;
    }
    case MESH_QT_Q4_0: {
        const mesh_block_q4_0_t *b = (const void *)blk;
        for (int j = 0; j < 16; j++) {
            q[j] = (int8_t)((b->qs[j] & 0xF) - 8);
            q[j + 16] = (int8_t)((b->qs[j] >> 4) - 8);
        }
        *d = mesh__h2f(b->d);
        break;
    }
    case MESH_QT_Q4_1: {
        const mesh_block_q4_1_t *b = (const void *)blk;
        for (int j = 0; j < 16; j++) {
            q[j] = (int8_t)(b->qs[j] & 0xF);
            q[j + 16] = (int8_t)(b->qs[j] >> 4);
        }
        *d = mesh__h2f(b->d);
        *m = mesh__h2f(b->m);
        break;
    }
    case MESH_QT_Q5_0: {
        const mesh_block_q5_0_t *b = (const void *)blk;
        uint32_t qh = s_le32(b->qh);
        for (int j = 0; j < 16; j++) {
            q[j] = (int8_t)(((b->qs[j] & 0xF) | ((qh >> j) & 1) << 4) - 16);
            q[j + 16] = (int8_t)(((b->qs[j] >> 4) | ((qh >> (j + 16)) & 1) << 4) - 16);
        }
        *d = mesh__h2f(b->d);
        break;
    }
    default: { // MESH_QT_Q5_1
        const mesh_block_q5_1_t *b = (const void *)blk;
        uint32_t qh = s_le32(b->qh);
        for (int j = 0; j < 16; j++) {
            q[j] = (int8_t)((b->qs[j] & 0xF) | ((qh >> j) & 1) << 4);
            q[j + 16] = (int8_t)((b->qs[j] >> 4) | ((qh >> (j + 16)) & 1) << 4);
        }
        *d = mesh__h2f(b->d);
        *m = mesh__h2f(b->m);
        break;
    }
    }
}

static void s_gemm32(uint32_t t, int64_t k, const void *w, size_t wrb, int nr, const void *x,
                     size_t xrb, int nc, float *y, size_t ys) {
    const mesh_qtype_traits_t *tr = mesh_qtype_traits(t);
    int64_t nb = k / 32;
    int has_min = t == MESH_QT_Q4_1 || t == MESH_QT_Q5_1;
    for (int r = 0; r < nr; r++) {
        const uint8_t *wr = (const uint8_t *)w + (size_t)r * wrb;
        for (int c = 0; c < nc; c++)
            y[(size_t)c * ys + r] = 0.0f;
        for (int64_t b = 0; b < nb; b++) {
            int8_t q[32];
            float dw, mw;
            s_codes32(t, wr + (size_t)b * tr->size, q, &dw, &mw);
            for (int c = 0; c < nc; c++) {
                const mesh_block_q8_0_t *xb =
                    (const mesh_block_q8_0_t *)((const uint8_t *)x + (size_t)c * xrb) + b;
                int32_t isum = 0, sx = 0;
                for (int j = 0; j < 32; j++) {
                    isum += q[j] * xb->qs[j];
                    sx += xb->qs[j];
                }
                float dx = mesh__h2f(xb->d);
                float *acc = &y[(size_t)c * ys + r];
                *acc = *acc + (dw * dx) * (float)isum;
                if (has_min)
                    *acc = *acc + (mw * dx) * (float)sx;
            }
        }
    }
}

// Unsigned codes of a K-quant super-block (see quant_dot_impl.h).
static void s_codes_k(uint32_t t, const uint8_t *blk, uint8_t u[256]) {
    for (int e = 0; e < 256; e++) {
        int h = e / 128, g = (e % 128) / 32, l = e % 32;
        switch (t) {
        case MESH_QT_Q2_K: {
            const mesh_block_q2_k_t *b = (const void *)blk;
            u[e] = (uint8_t)((b->qs[32 * h + l] >> (2 * g)) & 3);
            break;
        }
        case MESH_QT_Q3_K: {
            const mesh_block_q3_k_t *b = (const void *)blk;
            u[e] = (uint8_t)(((b->qs[32 * h + l] >> (2 * g)) & 3) |
                             ((b->hmask[l] >> (4 * h + g)) & 1) << 2);
            break;
        }
        case MESH_QT_Q4_K: {
            const mesh_block_q4_k_t *b = (const void *)blk;
            u[e] = (uint8_t)((b->qs[32 * (e / 64) + l] >> (4 * ((e / 32) & 1))) & 0xF);
            break;
        }
        case MESH_QT_Q5_K: {
            const mesh_block_q5_k_t *b = (const void *)blk;
            u[e] = (uint8_t)(((b->qs[32 * (e / 64) + l] >> (4 * ((e / 32) & 1))) & 0xF) |
                             ((b->qh[l] >> (e / 32)) & 1) << 4);
            break;
        }
        default: { // MESH_QT_Q6_K
            const mesh_block_q6_k_t *b = (const void *)blk;
            int lo = (b->ql[64 * h + 32 * (g & 1) + l] >> (4 * (g >> 1))) & 0xF;
            int hi = (b->qh[32 * h + l] >> (2 * g)) & 3;
            u[e] = (uint8_t)(lo | hi << 4);
            break;
        }
        }
    }
}

static void s_gemm_k(uint32_t t, int64_t k, const void *w, size_t wrb, int nr, const void *x,
                     size_t xrb, int nc, float *y, size_t ys) {
    const mesh_qtype_traits_t *tr = mesh_qtype_traits(t);
    int64_t nb = k / 256;
    int min_kind = mesh__kq_is_min_kind(t);
    for (int r = 0; r < nr; r++) {
        const uint8_t *wr = (const uint8_t *)w + (size_t)r * wrb;
        for (int c = 0; c < nc; c++)
            y[(size_t)c * ys + r] = 0.0f;
        for (int64_t b = 0; b < nb; b++) {
            const uint8_t *blk = wr + (size_t)b * tr->size;
            uint8_t u[256];
            mesh__kq_prep_t p;
            mesh__kq_prep(t, blk, &p);
            s_codes_k(t, blk, u);
            for (int c = 0; c < nc; c++) {
                const mesh_block_q8_k_t *xb =
                    (const mesh_block_q8_k_t *)((const uint8_t *)x + (size_t)c * xrb) + b;
                int32_t isum = 0, imin = 0;
                for (int j = 0; j < 16; j++) {
                    int32_t s = 0;
                    for (int l = 0; l < 16; l++)
                        s += u[16 * j + l] * xb->qs[16 * j + l];
                    isum += p.sc[j] * s;
                    imin += p.mn[j] * xb->bsums[j];
                }
                float *acc = &y[(size_t)c * ys + r];
                *acc = *acc + mesh__kq_block(min_kind, &p, xb->d, isum, imin);
            }
        }
    }
}

static inline float s_wf(uint32_t t, const uint8_t *row, int64_t i) {
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
    for (int r = 0; r < nr; r++) {
        const uint8_t *wr = (const uint8_t *)w + (size_t)r * wrb;
        for (int c = 0; c < nc; c++) {
            const float *xc = (const float *)((const uint8_t *)x + (size_t)c * xrb);
            float acc = 0.0f;
            for (int64_t i = 0; i < k; i++)
                acc += s_wf(t, wr, i) * xc[i];
            y[(size_t)c * ys + r] = acc;
        }
    }
}

static void s_gemm_scalar(uint32_t t, int64_t k, const void *w, size_t wrb, int nr, const void *x,
                          size_t xrb, int nc, float *y, size_t ys) {
    switch (mesh_cpu_act_type(t)) {
    case MESH_QT_F32:
        s_gemm_float(t, k, w, wrb, nr, x, xrb, nc, y, ys);
        break;
    case MESH_QT_Q8_0:
        s_gemm32(t, k, w, wrb, nr, x, xrb, nc, y, ys);
        break;
    case MESH_QT_Q8_K:
        s_gemm_k(t, k, w, wrb, nr, x, xrb, nc, y, ys);
        break;
    default:
        break; // unsupported: callers check mesh_cpu_gemm_supported first
    }
}

#if !defined(MESH_CPU_X86)
mesh__gemm_fn mesh__gemm_avx2(uint32_t wtype) {
    (void)wtype;
    return NULL;
}
#endif

void mesh_cpu_gemm_tile_level(mesh_simd_level_t level, uint32_t wtype, int64_t k, const void *w,
                              size_t w_row_bytes, int n_rows, const void *x, size_t x_row_bytes,
                              int n_cols, float *y, size_t y_col_stride) {
    if (n_rows <= 0 || n_cols <= 0)
        return;
    // AVX-512 / NEON first (self-contained block: the level names the set,
    // the CPU must have it; a type without such a kernel goes on below).
#if defined(MESH_CPU_X86) || defined(MESH_CPU_ARM64)
    {
        const mesh_cpu_features_t *fs = mesh_cpu_features();
#if defined(MESH_CPU_X86)
        const bool avx512 = level == MESH_SIMD_AVX512 && fs->avx2 && fs->fma && fs->f16c &&
                            fs->avx512f && fs->avx512bw && fs->avx512vl && fs->avx512dq;
        // VNNI (rows in lanes, quant_dot_avx512vnni.c) where the type has it
        mesh__gemm_fn fn = avx512 && fs->avx512vnni ? mesh__gemm_avx512vnni(wtype) : NULL;
        if (!fn && avx512)
            fn = mesh__gemm_avx512(wtype);
#else
        mesh__gemm_fn fn = level == MESH_SIMD_NEON && fs->neon ? mesh__gemm_neon(wtype) : NULL;
#endif
        if (fn) {
            fn(k, w, w_row_bytes, n_rows, x, x_row_bytes, n_cols, y, y_col_stride);
            return;
        }
    }
#endif
    if (s_avx2_ok(level)) {
        mesh__gemm_fn fn = mesh__gemm_avx2(wtype);
        if (fn) {
            fn(k, w, w_row_bytes, n_rows, x, x_row_bytes, n_cols, y, y_col_stride);
            return;
        }
    }
    s_gemm_scalar(wtype, k, w, w_row_bytes, n_rows, x, x_row_bytes, n_cols, y, y_col_stride);
}

void mesh_cpu_gemm_tile(uint32_t wtype, int64_t k, const void *w, size_t w_row_bytes, int n_rows,
                        const void *x, size_t x_row_bytes, int n_cols, float *y,
                        size_t y_col_stride) {
    pthread_once(&s_level_once, s_pick_level);
    mesh_cpu_gemm_tile_level(s_level, wtype, k, w, w_row_bytes, n_rows, x, x_row_bytes, n_cols, y,
                             y_col_stride);
}
