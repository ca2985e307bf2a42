// SPDX-License-Identifier: MIT
// CPU RMSNorm and RoPE (normal/pairwise and NeoX layouts, optional YaRN).
// Both are O(n * width); they run on one thread for small batches, where a
// wake-up of the pool would cost more than the work.
#include "cpu_impl.h"

#include <math.h>
#include <stdbool.h>

typedef struct {
    const float *x;
    float *y;
    int64_t xs, ys;
    int n, width;
    const float *w;
    float eps;
} s_norm_args_t;

// Each row's sum of squares is one serial chain of double adds (kept: the
// order fixes the rounding); four rows run side by side so their chains
// overlap instead of each waiting on its own add latency.
static void s_norm_rows(const s_norm_args_t *a, int t, int nr) {
    double ss[4] = {0, 0, 0, 0};
    const float *x[4];
    for (int r = 0; r < nr; r++)
        x[r] = a->x + (int64_t)(t + r) * a->xs;
    if (nr == 4) {
        for (int i = 0; i < a->width; i++) {
            ss[0] += (double)x[0][i] * x[0][i];
            ss[1] += (double)x[1][i] * x[1][i];
            ss[2] += (double)x[2][i] * x[2][i];
            ss[3] += (double)x[3][i] * x[3][i];
        }
    } else {
        for (int r = 0; r < nr; r++)
            for (int i = 0; i < a->width; i++)
                ss[r] += (double)x[r][i] * x[r][i];
    }
    for (int r = 0; r < nr; r++) {
        float *y = a->y + (int64_t)(t + r) * a->ys;
        float inv = (float)(1.0 / sqrt(ss[r] / a->width + a->eps));
        for (int i = 0; i < a->width; i++)
            y[i] = a->w ? (x[r][i] * inv) * a->w[i] : x[r][i] * inv;
    }
}

static void s_norm_task(void *p, int ith, int nth) {
    s_norm_args_t *a = p;
    int t0 = (int)((int64_t)a->n * ith / nth), t1 = (int)((int64_t)a->n * (ith + 1) / nth);
    for (int t = t0; t < t1; t += 4)
        s_norm_rows(a, t, t1 - t < 4 ? t1 - t : 4);
}

int mesh__cpu_rms_norm(void *ctx, mesh_bptr_t x, int64_t x_stride, mesh_bptr_t y,
                       int64_t y_stride, int n, int width, const mesh_bweight_t *w, float eps) {
    mesh_cpu_ctx_t *c = ctx;
    s_norm_args_t a = {mesh__cpu_ptr(x), mesh__cpu_ptr(y), x_stride, y_stride, n, width,
                       w ? mesh__cpu_ptr(w->data) : NULL, eps};
    mesh_tp_run_n(c->tp, n >= 32 ? c->n_threads : 1, s_norm_task, &a);
    return 0;
}

// YaRN: dims whose wavelength is short keep the original angle
// (extrapolation), long ones are interpolated by the factor; a linear ramp
// between the "beta_fast" and "beta_slow" correction dims.
static float s_corr_dim(int n_rot, int n_ctx_orig, float beta, float base) {
    return (float)n_rot * logf((float)n_ctx_orig / (beta * 2.0f * (float)M_PI)) /
           (2.0f * logf(base));
}

typedef struct {
    const float *x;
    float *y;
    int64_t xs, xh, ys, yh;
    int n, n_head;
    const int32_t *pos;
    const mesh_rope_params_t *p;
} s_rope_args_t;

static void s_rope_task(void *pp, int ith, int nth) {
    s_rope_args_t *a = pp;
    const mesh_rope_params_t *p = a->p;
    const int half = p->n_rot / 2;
    float lo = 0, hi = 0;
    if (p->yarn) {
        lo = floorf(s_corr_dim(p->n_rot, p->yarn_orig_ctx, p->yarn_beta_fast, p->freq_base));
        hi = ceilf(s_corr_dim(p->n_rot, p->yarn_orig_ctx, p->yarn_beta_slow, p->freq_base));
        if (lo < 0)
            lo = 0;
        if (hi > p->n_rot - 1)
            hi = (float)(p->n_rot - 1);
    }
    // inv_freq in f32 as the reference implementations compute it, once per
    // run instead of once per token (a powf each)
    float invf[256];
    const bool tab = half <= 256;
    for (int i = 0; tab && i < half; i++)
        invf[i] = 1.0f / powf(p->freq_base, (float)(2 * i) / (float)p->n_rot);
    int t0 = (int)((int64_t)a->n * ith / nth), t1 = (int)((int64_t)a->n * (ith + 1) / nth);
    for (int t = t0; t < t1; t++) {
        float pos = (float)a->pos[t];
        for (int i = 0; i < half; i++) {
            float inv = tab ? invf[i] : 1.0f / powf(p->freq_base, (float)(2 * i) / (float)p->n_rot);
            float theta = pos * inv;
            float msc = 1.0f;
            if (p->yarn) {
                float interp = theta / p->yarn_factor;
                float yv = ((float)i - lo) / fmaxf(0.001f, hi - lo);
                float ramp = 1.0f - fminf(1.0f, fmaxf(0.0f, yv));
                theta = interp * (1.0f - ramp) + theta * ramp;
                msc = p->yarn_attn_factor;
            }
            float cs = cosf(theta) * msc, sn = sinf(theta) * msc;
            for (int h = 0; h < a->n_head; h++) {
                const float *x = a->x + (int64_t)t * a->xs + (int64_t)h * a->xh;
                float *y = a->y + (int64_t)t * a->ys + (int64_t)h * a->yh;
                int i0 = p->neox ? i : 2 * i, i1 = p->neox ? i + half : 2 * i + 1;
                float x0 = x[i0], x1 = x[i1];
                y[i0] = x0 * cs - x1 * sn;
                y[i1] = x0 * sn + x1 * cs;
            }
        }
    }
}

int mesh__cpu_rope(void *ctx, mesh_bptr_t x, int64_t x_stride, int64_t x_head, mesh_bptr_t y,
                   int64_t y_stride, int64_t y_head, int n, int n_head, mesh_bptr_t pos,
                   const mesh_rope_params_t *p) {
    mesh_cpu_ctx_t *c = ctx;
    s_rope_args_t a = {mesh__cpu_ptr(x), mesh__cpu_ptr(y), x_stride, x_head, y_stride, y_head,
                       n, n_head, mesh__cpu_ptr(pos), p};
    mesh_tp_run_n(c->tp, n >= 32 ? c->n_threads : 1, s_rope_task, &a);
    return 0;
}
