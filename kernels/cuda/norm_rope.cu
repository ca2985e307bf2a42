// SPDX-License-Identifier: MIT
// Row-wise GPU ops: RMSNorm, RoPE (with YaRN), KV-cache stores, SwiGLU,
// residual adds and row copies. All memory-bound and cheap; one block per
// token row where a reduction is needed, else a flat grid. Each token's
// result depends only on its own row.
#include "cuda_impl.h"
#include "quant_dev.cuh"
#include "row_dev.cuh"

#include <math.h>

extern "C" {
#include "mesh_err.h"
}

__global__ void k_rms_norm(const float *x, int64_t xs, float *y, int64_t ys, int width,
                           const float *w, float eps) {
    mesh_pdl_begin();
    const float *xr = x + (int64_t)blockIdx.x * xs;
    float ss = 0.0f;
    for (int i = threadIdx.x; i < width; i += blockDim.x)
        ss = fmaf(xr[i], xr[i], ss);
    s_rms_row(xr, y + (int64_t)blockIdx.x * ys, width, w, eps, ss);
}

int mesh_cu_rms_norm(gpuStream_t s, const float *x, int64_t xs, float *y, int64_t ys, int n,
                     int width, const float *w, float eps) {
    if (n <= 0)
        return 0;
    mesh_launch(k_rms_norm, n, 256, 0, s, x, xs, y, ys, width, w, eps);
    return 0;
}

// y += x, then out = rmsnorm(y) * w, one block per token.
__global__ void k_add_rms_norm(float *y, int64_t ys, const float *x, int64_t xs, float *out,
                               int64_t os, int width, const float *w, float eps) {
    mesh_pdl_begin();
    float *yr = y + (int64_t)blockIdx.x * ys;
    const float *xr = x + (int64_t)blockIdx.x * xs;
    float ss = 0.0f;
    for (int i = threadIdx.x; i < width; i += blockDim.x) {
        const float v = yr[i] + xr[i];
        yr[i] = v;
        ss = fmaf(v, v, ss);
    }
    s_rms_row(yr, out + (int64_t)blockIdx.x * os, width, w, eps, ss);
}

int mesh_cu_add_rms_norm(gpuStream_t s, float *y, int64_t ys, const float *x, int64_t xs,
                         float *out, int64_t os, int n, int width, const float *w, float eps) {
    if (n <= 0)
        return 0;
    mesh_launch(k_add_rms_norm, n, 256, 0, s, y, ys, x, xs, out, os, width, w, eps);
    return 0;
}

typedef struct {
    int n_rot;
    float freq_base;
    int neox, yarn;
    float yarn_factor, attn_factor, lo, hi;
} s_rope_t;

// Rotates n_head heads of one token at position ps, the block's threads
// striding over (head, pair).
static __device__ void s_rope_tok(const float *xr0, int64_t xh, float *yr0, int64_t yh,
                                  int n_head, float ps, const s_rope_t &p) {
    const int half = p.n_rot / 2;
    for (int e = threadIdx.x; e < half * n_head; e += blockDim.x) {
        const int h = e / half, i = e % half;
        float inv = 1.0f / powf(p.freq_base, (float)(2 * i) / (float)p.n_rot);
        float theta = ps * inv, msc = 1.0f;
        if (p.yarn) {
            float interp = theta / p.yarn_factor;
            float yv = ((float)i - p.lo) / fmaxf(0.001f, p.hi - p.lo);
            float ramp = 1.0f - fminf(1.0f, fmaxf(0.0f, yv));
            theta = interp * (1.0f - ramp) + theta * ramp;
            msc = p.attn_factor;
        }
        float cs = cosf(theta) * msc, sn = sinf(theta) * msc;
        const float *xr = xr0 + (int64_t)h * xh;
        float *yr = yr0 + (int64_t)h * yh;
        int i0 = p.neox ? i : 2 * i, i1 = p.neox ? i + half : 2 * i + 1;
        float x0 = xr[i0], x1 = xr[i1];
        yr[i0] = x0 * cs - x1 * sn;
        yr[i1] = x0 * sn + x1 * cs;
    }
}

__global__ void k_rope(const float *x, int64_t xs, int64_t xh, float *y, int64_t ys, int64_t yh,
                       int n_head, const int32_t *pos, s_rope_t p) {
    mesh_pdl_begin();
    const int t = blockIdx.x;
    s_rope_tok(x + (int64_t)t * xs, xh, y + (int64_t)t * ys, yh, n_head, (float)pos[t], p);
}

static float s_corr_dim(int n_rot, int n_ctx_orig, float beta, float base) {
    return (float)n_rot * logf((float)n_ctx_orig / (beta * 2.0f * (float)M_PI)) /
           (2.0f * logf(base));
}

static s_rope_t s_rope_of(const mesh_rope_params_t *p) {
    s_rope_t r = {p->n_rot, p->freq_base, p->neox, p->yarn, p->yarn_factor,
                  p->yarn_attn_factor, 0.0f, 0.0f};
    if (p->yarn) {
        // Same corrections as the CPU reference (kernels/cpu/norm_rope.c).
        r.lo = floorf(s_corr_dim(p->n_rot, p->yarn_orig_ctx, p->yarn_beta_fast, p->freq_base));
        r.hi = ceilf(s_corr_dim(p->n_rot, p->yarn_orig_ctx, p->yarn_beta_slow, p->freq_base));
        if (r.lo < 0)
            r.lo = 0;
        if (r.hi > p->n_rot - 1)
            r.hi = (float)(p->n_rot - 1);
    }
    return r;
}

int mesh_cu_rope(gpuStream_t s, const float *x, int64_t xs, int64_t xh, float *y, int64_t ys,
                 int64_t yh, int n, int n_head, const int32_t *pos, const mesh_rope_params_t *p) {
    if (n <= 0)
        return 0;
    mesh_launch(k_rope, n, 128, 0, s, x, xs, xh, y, ys, yh, n_head, pos, s_rope_of(p));
    return 0;
}

// Token row src[0:d_kv] into the cache at physical slot sl of layer `layer`.
static __device__ void s_kv_row(uint8_t *cache, int f16, int n_layer, int layer,
                                int block_tokens, int d_kv, const float *src, int32_t sl) {
    const size_t blk = (size_t)sl / (size_t)block_tokens, i = (size_t)sl % (size_t)block_tokens;
    const size_t row = (blk * (size_t)n_layer + (size_t)layer) * (size_t)block_tokens + i;
    for (int j = threadIdx.x; j < d_kv; j += blockDim.x) {
        if (f16)
            ((__half *)cache)[row * (size_t)d_kv + j] = __float2half_rn(src[j]);
        else
            ((float *)cache)[row * (size_t)d_kv + j] = src[j];
    }
}

__global__ void k_kv_store(uint8_t *cache, int f16, int n_layer, int layer, int block_tokens,
                           int d_kv, const float *x, int64_t xs, const int32_t *slot) {
    mesh_pdl_begin();
    const int t = blockIdx.x;
    s_kv_row(cache, f16, n_layer, layer, block_tokens, d_kv, x + (int64_t)t * xs, slot[t]);
}

int mesh_cu_kv_store(gpuStream_t s, uint8_t *cache, uint32_t cache_type, int n_layer, int layer,
                     int block_tokens, int d_kv, const float *x, int64_t xs, const int32_t *slot,
                     int n) {
    if (n <= 0)
        return 0;
    mesh_launch(k_kv_store, n, 256, 0, s, cache, cache_type == 1, n_layer, layer, block_tokens,
                d_kv, x, xs, slot);
    return 0;
}

// MLA's per-token step before attention (mesh_mla_prep_t): block (t, 0)
// normalises, ropes and stores token t's kv row; block (t, 1) ropes its q.
__global__ void k_mla_prep(mesh_cu_mla_prep_t a, s_rope_t rp) {
    mesh_pdl_begin();
    const int t = blockIdx.x;
    const float ps = (float)a.pos[t];
    if (blockIdx.y == 1) {
        s_rope_tok(a.q + (int64_t)t * a.qs, a.qh, a.qc + (int64_t)t * a.qcs, a.qch, a.n_head, ps,
                   rp);
        return;
    }
    float *kr = a.kv + (int64_t)t * a.kvs;
    float ss = 0.0f;
    for (int i = threadIdx.x; i < a.kv_lora; i += blockDim.x)
        ss = fmaf(kr[i], kr[i], ss);
    s_rms_row(kr, kr, a.kv_lora, a.w, a.eps, ss);
    s_rope_tok(kr + a.kv_lora, 0, kr + a.kv_lora, 0, 1, ps, rp);
    __syncthreads(); // the row is whole before it is stored
    s_kv_row(a.cache, a.f16, a.n_layer, a.layer, a.block_tokens, a.kv_lora + rp.n_rot, kr,
             a.slot[t]);
}

int mesh_cu_mla_prep(gpuStream_t s, const mesh_cu_mla_prep_t *a, const mesh_rope_params_t *p) {
    if (a->n <= 0)
        return 0;
    mesh_launch(k_mla_prep, dim3((unsigned)a->n, 2), 256, 0, s, *a, s_rope_of(p));
    return 0;
}

__global__ void k_swiglu(const float *g, int64_t gs, const float *u, int64_t us, float *y,
                         int64_t ys, int width) {
    mesh_pdl_begin();
    const int t = blockIdx.y;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < width; i += gridDim.x * blockDim.x) {
        float a = g[(int64_t)t * gs + i];
        y[(int64_t)t * ys + i] = a / (1.0f + expf(-a)) * u[(int64_t)t * us + i];
    }
}

int mesh_cu_swiglu(gpuStream_t s, const float *g, int64_t gs, const float *u, int64_t us,
                   float *y, int64_t ys, int n, int width) {
    if (n <= 0 || width <= 0)
        return 0;
    dim3 grid((width + 255) / 256 < 64 ? (width + 255) / 256 : 64, n);
    mesh_launch(k_swiglu, grid, 256, 0, s, g, gs, u, us, y, ys, width);
    return 0;
}

__global__ void k_add(float *y, int64_t ys, const float *x, int64_t xs, int width) {
    mesh_pdl_begin();
    const int t = blockIdx.y;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < width; i += gridDim.x * blockDim.x)
        y[(int64_t)t * ys + i] += x[(int64_t)t * xs + i];
}

int mesh_cu_add(gpuStream_t s, float *y, int64_t ys, const float *x, int64_t xs, int n,
                int width) {
    if (n <= 0 || width <= 0)
        return 0;
    dim3 grid((width + 255) / 256 < 64 ? (width + 255) / 256 : 64, n);
    mesh_launch(k_add, grid, 256, 0, s, y, ys, x, xs, width);
    return 0;
}

__global__ void k_copy_rows(const float *x, int64_t xs, const int32_t *idx, float *y, int64_t ys,
                            int width) {
    mesh_pdl_begin();
    const int j = blockIdx.x;
    const float *src = x + (int64_t)idx[j] * xs;
    float *dst = y + (int64_t)j * ys;
    for (int i = threadIdx.x; i < width; i += blockDim.x)
        dst[i] = src[i];
}

int mesh_cu_copy_rows(gpuStream_t s, const float *x, int64_t xs, const int32_t *idx, int n,
                      float *y, int64_t ys, int width) {
    if (n <= 0)
        return 0;
    mesh_launch(k_copy_rows, n, 256, 0, s, x, xs, idx, y, ys, width);
    return 0;
}
