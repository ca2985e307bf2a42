// SPDX-License-Identifier: MIT
// CPU matmul with weights of any known type over a batch of f32 rows.
//
// Work split: units of MESH_CPU_MR weight rows (x n_mat matrices) are divided
// evenly among threads; each unit dequantizes its rows once into per-thread
// scratch and multiplies them with every token. Cost: weight bytes are read
// once per call; activations once per tile from cache.
#include "cpu_features.h"
#include "cpu_impl.h"
#include "quant.h"

#include <string.h>

void mesh__cpu_row_to_f32(uint32_t type, const void *row, float *dst, int64_t k, int simd) {
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
    for (int64_t r = r0; r < r1; r += MESH_CPU_MR) {
        int nr = (int)(r1 - r < MESH_CPU_MR ? r1 - r : MESH_CPU_MR);
        for (int i = 0; i < nr; i++)
            mesh__cpu_row_to_f32(w->type, base + (size_t)(r + i) * w->nb[1], ws + (int64_t)i * k,
                                 k, c->simd);
#if defined(MESH_CPU_X86)
        if (c->simd >= MESH_SIMD_AVX2 && k % 8 == 0) {
            mesh__cpu_dot_tile_avx2(ws, nr, k, x, x_stride, n, y + r, y_stride);
            continue;
        }
#endif
        s_dot_tile_scalar(ws, nr, k, x, x_stride, n, y + r, y_stride);
    }
}

typedef struct {
    mesh_cpu_ctx_t *c;
    const mesh_bweight_t *w;
    int m0, n_mat, n;
    const float *x;
    int64_t x_stride, x_mat, y_stride, y_mat;
    float *y;
} s_mm_args_t;

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
        mesh__cpu_mm_rows(a->c, a->w, a->m0 + (int)mi, r0, r1, a->x + mi * a->x_mat, a->x_stride,
                          a->n, a->y + mi * a->y_mat, a->y_stride, a->c->wscratch[ith]);
        u += t1 - t0;
    }
}

int mesh__cpu_matmul(void *ctx, const mesh_bweight_t *w, int m0, int n_mat, mesh_bptr_t x,
                     int64_t x_stride, int64_t x_mat, int n, mesh_bptr_t y, int64_t y_stride,
                     int64_t y_mat) {
    mesh_cpu_ctx_t *c = ctx;
    s_mm_args_t a = {c, w, m0, n_mat, n, mesh__cpu_ptr(x), x_stride, x_mat, y_stride, y_mat,
                     mesh__cpu_ptr(y)};
    // Tiny products are cheaper on one thread than a wake-up of the others.
    int64_t work = w->ne[0] * w->ne[1] * n_mat * (int64_t)n;
    mesh_tp_run_n(c->tp, work < 16384 ? 1 : c->n_threads, s_mm_task, &a);
    return 0;
}
