// SPDX-License-Identifier: MIT
// CPU matmul with weights of any known type over a batch of f32 rows.
//
// Work split: units of MESH_CPU_MR weight rows (x n_mat matrices) are divided
// evenly among threads; each unit dequantizes its rows once into per-thread
// scratch and multiplies them with every token. Cost: weight bytes are read
// once per call; activations once per tile from cache.
#include "cpu_features.h"
#include "cpu_impl.h"
#include "mesh_err.h"
#include "quant.h"
#include "quant_dot.h"
#include <stdlib.h>

#include <stdbool.h>
#include <string.h>

#define S_CB 48 // tokens per column block (48 rows of x stay in L1/L2)

void mesh__cpu_row_to_f32(uint32_t type, const void *row, float *dst, int64_t k, int simd) {
    (void)simd; // unused where no SIMD conversion is built
    switch (type) {
    case MESH_QT_F32:
        memcpy(dst, row, (size_t)k * sizeof(float));
        return;
#if defined(MESH_CPU_X86)
    case MESH_QT_BF16:
        if (simd >= MESH_SIMD_AVX2) {
            mesh__cpu_bf16_to_f32_avx2(row, dst, k);
            return;
        }
        break;
    case MESH_QT_F16:
        if (simd >= MESH_SIMD_AVX2) {
            mesh__cpu_f16_to_f32_avx2(row, dst, k);
            return;
        }
        break;
#elif defined(MESH_CPU_ARM64)
    case MESH_QT_BF16:
        if (simd == MESH_SIMD_NEON) {
            mesh__cpu_bf16_to_f32_neon(row, dst, k);
            return;
        }
        break;
    case MESH_QT_F16:
        if (simd == MESH_SIMD_NEON) {
            mesh__cpu_f16_to_f32_neon(row, dst, k);
            return;
        }
        break;
#endif
    default:
        break;
    }
    mesh_qtype_traits(type)->to_float(row, dst, k); // load checked to_float exists
}

static void s_dot_tile_scalar(const float *w, int nr, int64_t k, const float *x,
                              int64_t x_stride, int n, float *y, int64_t y_stride) {
    for (int t = 0; t < n; t++)
        for (int i = 0; i < nr; i++) {
            const float *wr = w + (int64_t)i * k, *xr = x + (int64_t)t * x_stride;
            float acc[8] = {0};
            int64_t j = 0;
            for (; j + 8 <= k; j += 8)
                for (int l = 0; l < 8; l++)
                    acc[l] += wr[j + l] * xr[j + l];
            float s = 0;
            for (int l = 0; l < 8; l++)
                s += acc[l];
            for (; j < k; j++)
                s += wr[j] * xr[j];
            y[(int64_t)t * y_stride + i] = s;
        }
}

void mesh__cpu_mm_rows(mesh_cpu_ctx_t *c, const mesh_bweight_t *w, int m, int64_t r0,
                       int64_t r1, const float *x, int64_t x_stride, int n, float *y,
                       int64_t y_stride, float *ws) {
    const int64_t k = w->ne[0];
    const uint8_t *base = (const uint8_t *)mesh__cpu_ptr(w->data) + (size_t)m * w->nb[2];
#if defined(MESH_CPU_X86)
    // Few tokens: bf16 rows are used in place (no conversion pass); same
    // arithmetic as converting first, so results match the blocked path.
    if (c->simd >= MESH_SIMD_AVX2 && k % 8 == 0 && w->type == MESH_QT_BF16 && n <= 2) {
        for (int64_t r = r0; r < r1; r += MESH_CPU_MR) {
            int nr = (int)(r1 - r < MESH_CPU_MR ? r1 - r : MESH_CPU_MR);
            mesh__cpu_dot_tile_bf16_avx2((const uint16_t *)(base + (size_t)r * w->nb[1]),
                                         w->nb[1] / 2, nr, k, x, x_stride, n, y + r, y_stride);
        }
        return;
    }
#endif
    // Blocked: MESH_CPU_RB rows converted once, then column blocks of
    // S_CB tokens so both operands stay in cache; the per-element arithmetic
    // is the same tile kernel as ever, so results do not change.
    for (int64_t rb = r0; rb < r1; rb += MESH_CPU_RB) {
        int64_t re = rb + MESH_CPU_RB < r1 ? rb + MESH_CPU_RB : r1;
        const uint8_t *wr = base + (size_t)rb * w->nb[1];
        const float *wf = ws;
        if (w->type == MESH_QT_F32 && w->nb[1] == (size_t)k * sizeof(float))
            wf = (const float *)wr; // f32 rows are contiguous already
        else
            for (int64_t i = 0; i < re - rb; i++)
                mesh__cpu_row_to_f32(w->type, wr + (size_t)i * w->nb[1], ws + i * k, k, c->simd);
        for (int c0 = 0; c0 < n; c0 += S_CB) {
            int cn = n - c0 < S_CB ? n - c0 : S_CB;
            const float *xc = x + (int64_t)c0 * x_stride;
            float *yc = y + (int64_t)c0 * y_stride;
            for (int64_t r = rb; r < re; r += MESH_CPU_MR) {
                int nr = (int)(re - r < MESH_CPU_MR ? re - r : MESH_CPU_MR);
                const float *wt = wf + (r - rb) * k;
#if defined(MESH_CPU_X86)
                if (c->simd >= MESH_SIMD_AVX2 && k % 8 == 0) {
                    mesh__cpu_dot_tile_avx2(wt, nr, k, xc, x_stride, cn, yc + r, y_stride);
                    continue;
                }
#elif defined(MESH_CPU_ARM64)
                if (c->simd == MESH_SIMD_NEON) {
                    mesh__cpu_dot_tile_neon(wt, nr, k, xc, x_stride, cn, yc + r, y_stride);
                    continue;
                }
#endif
                s_dot_tile_scalar(wt, nr, k, xc, x_stride, cn, yc + r, y_stride);
            }
        }
    }
}

bool mesh__cpu_fused(const mesh_bweight_t *w) {
    if (w->type == MESH_QT_F32 || w->type == MESH_QT_F16 || w->type == MESH_QT_BF16)
        return false; // the f32 tile path above is exact for these
    return mesh_cpu_gemm_supported(w->type) && mesh_cpu_act_row_size(w->type, w->ne[0]) > 0;
}

int mesh__cpu_act_reserve(mesh_cpu_ctx_t *c, size_t bytes) {
    if (bytes <= c->act_cap)
        return 0;
    // Grows to the largest batch seen (first prompt), never again after.
    void *p = realloc(c->act, bytes);
    if (!p)
        return MESH_ENOMEM;
    c->act = p;
    c->act_cap = bytes;
    return 0;
}

void mesh__cpu_quant_rows(const mesh_bweight_t *w, const float *x, int64_t x_stride, int n,
                          uint8_t *dst, int ith, int nth) {
    const size_t arow = mesh_cpu_act_row_size(w->type, w->ne[0]);
    const mesh_qtype_t at = mesh_cpu_act_type(w->type);
    for (int t = (int)((int64_t)n * ith / nth); t < (int)((int64_t)n * (ith + 1) / nth); t++)
        mesh_cpu_quantize_act(at, x + (int64_t)t * x_stride, dst + (size_t)t * arow, w->ne[0]);
}

void mesh__cpu_mm_rows_q(const mesh_bweight_t *w, int m, int64_t r0, int64_t r1,
                         const uint8_t *act, size_t arow, int n, float *y, int64_t y_stride) {
    const uint8_t *base = (const uint8_t *)mesh__cpu_ptr(w->data) + (size_t)m * w->nb[2];
    // One call for the whole range: the kernels block rows and columns for
    // the caches themselves, and per-call set-up (the VNNI kernel prepares
    // each column's block sums) is then paid once.
    if (r1 > r0)
        mesh_cpu_gemm_tile(w->type, w->ne[0], base + (size_t)r0 * w->nb[1], w->nb[1],
                           (int)(r1 - r0), act, arow, n, y + r0, (size_t)y_stride);
}

typedef struct {
    mesh_cpu_ctx_t *c;
    const mesh_bweight_t *w;
    int m0, n_mat, n;
    const float *x;
    int64_t x_stride, x_mat, y_stride, y_mat;
    float *y;
    bool fused;  // quantized activations + mesh_cpu_gemm_tile
    size_t arow; // activation row bytes (fused)
} s_mm_args_t;

// Quantizes each matrix's activations once, shared by all threads after.
static void s_quant_task(void *p, int ith, int nth) {
    s_mm_args_t *a = p;
    for (int mi = 0; mi < a->n_mat; mi++)
        mesh__cpu_quant_rows(a->w, a->x + mi * a->x_mat, a->x_stride, a->n,
                             a->c->act + (size_t)mi * (size_t)a->n * a->arow, ith, nth);
}

static void s_mm_task(void *p, int ith, int nth) {
    s_mm_args_t *a = p;
    int64_t tiles = (a->w->ne[1] + MESH_CPU_MR - 1) / MESH_CPU_MR;
    int64_t units = tiles * a->n_mat;
    int64_t u0 = units * ith / nth, u1 = units * (ith + 1) / nth;
    for (int64_t u = u0; u < u1;) {
        int64_t mi = u / tiles, t0 = u % tiles;
        int64_t t1 = t0 + (u1 - u);
        if (t1 > tiles)
            t1 = tiles;
        int64_t r0 = t0 * MESH_CPU_MR, r1 = t1 * MESH_CPU_MR;
        if (r1 > a->w->ne[1])
            r1 = a->w->ne[1];
        if (a->fused)
            mesh__cpu_mm_rows_q(a->w, a->m0 + (int)mi, r0, r1,
                                a->c->act + (size_t)mi * (size_t)a->n * a->arow, a->arow, a->n,
                                a->y + mi * a->y_mat, a->y_stride);
        else
            mesh__cpu_mm_rows(a->c, a->w, a->m0 + (int)mi, r0, r1, a->x + mi * a->x_mat,
                              a->x_stride, a->n, a->y + mi * a->y_mat, a->y_stride,
                              a->c->wscratch[ith]);
        u += t1 - t0;
    }
}

int mesh__cpu_matmul(void *ctx, const mesh_bweight_t *w, int m0, int n_mat, mesh_bptr_t x,
                     int64_t x_stride, int64_t x_mat, int n, mesh_bptr_t y, int64_t y_stride,
                     int64_t y_mat) {
    mesh_cpu_ctx_t *c = ctx;
    s_mm_args_t a = {c, w, m0, n_mat, n, mesh__cpu_ptr(x), x_stride, x_mat, y_stride, y_mat,
                     mesh__cpu_ptr(y), mesh__cpu_fused(w), 0};
    if (a.fused) {
        a.arow = mesh_cpu_act_row_size(w->type, w->ne[0]);
        int rc = mesh__cpu_act_reserve(c, a.arow * (size_t)n * (size_t)n_mat);
        if (rc)
            return rc;
        mesh_tp_run_n(c->tp, n * n_mat >= 32 ? c->n_threads : 1, s_quant_task, &a);
    }
    // Tiny products are cheaper on one thread than a wake-up of the others.
    int64_t work = w->ne[0] * w->ne[1] * n_mat * (int64_t)n;
    mesh_tp_run_n(c->tp, work < 16384 ? 1 : c->n_threads, s_mm_task, &a);
    return 0;
}
