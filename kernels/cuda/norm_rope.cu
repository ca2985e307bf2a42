// SPDX-License-Identifier: MIT
// Row-wise GPU ops: RMSNorm, RoPE (with YaRN), KV-cache stores, SwiGLU,
// residual adds and row copies. All memory-bound and cheap; one block per
// token row where a reduction is needed, else a flat grid. Each token's
// result depends only on its own row.
#include "cuda_impl.h"
#include "quant_dev.cuh"

#include <math.h>

extern "C" {
#include "mesh_err.h"
}

__global__ void k_rms_norm(const float *x, int64_t xs, float *y, int64_t ys, int width,
                           const float *w, float eps) {
    const float *xr = x + (int64_t)blockIdx.x * xs;
    float *yr = y + (int64_t)blockIdx.x * ys;
    float ss = 0.0f;
    for (int i = threadIdx.x; i < width; i += blockDim.x)
        ss = fmaf(xr[i], xr[i], ss);
    __shared__ float red[32];
    ss = mesh_warp_sum(ss);
    if ((threadIdx.x & 31) == 0)
        red[threadIdx.x >> 5] = ss;
    __syncthreads();
    if (threadIdx.x < 32) {
        float v = threadIdx.x < (blockDim.x >> 5) ? red[threadIdx.x] : 0.0f;
        v = mesh_warp_sum(v);
        if (threadIdx.x == 0)
            red[0] = v;
    }
    __syncthreads();
    const float inv = rsqrtf(red[0] / (float)width + eps);
    // In place is allowed: every element is read before the barrier above
    // only for the sum, and each thread rewrites only what it reads next.
    for (int i = threadIdx.x; i < width; i += blockDim.x)
        yr[i] = w ? (xr[i] * inv) * w[i] : xr[i] * inv;
}

int mesh_cu_rms_norm(gpuStream_t s, const float *x, int64_t xs, float *y, int64_t ys, int n,
                     int width, const float *w, float eps) {
    if (n <= 0)
        return 0;
    k_rms_norm<<<n, 256, 0, s>>>(x, xs, y, ys, width, w, eps);
    return 0;
}

typedef struct {
    int n_rot;
    float freq_base;
    int neox, yarn;
    float yarn_factor, attn_factor, lo, hi;
} s_rope_t;

__global__ void k_rope(const float *x, int64_t xs, int64_t xh, float *y, int64_t ys, int64_t yh,
                       int n_head, const int32_t *pos, s_rope_t p) {
    const int t = blockIdx.x, half = p.n_rot / 2;
    const float ps = (float)pos[t];
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
        const float *xr = x + (int64_t)t * xs + (int64_t)h * xh;
        float *yr = y + (int64_t)t * ys + (int64_t)h * yh;
        int i0 = p.neox ? i : 2 * i, i1 = p.neox ? i + half : 2 * i + 1;
        float x0 = xr[i0], x1 = xr[i1];
        yr[i0] = x0 * cs - x1 * sn;
        yr[i1] = x0 * sn + x1 * cs;
    }
}

static float s_corr_dim(int n_rot, int n_ctx_orig, float beta, float base) {
    return (float)n_rot * logf((float)n_ctx_orig / (beta * 2.0f * (float)M_PI)) /
           (2.0f * logf(base));
}

int mesh_cu_rope(gpuStream_t s, const float *x, int64_t xs, int64_t xh, float *y, int64_t ys,
                 int64_t yh, int n, int n_head, const int32_t *pos, const mesh_rope_params_t *p) {
    if (n <= 0)
        return 0;
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
    k_rope<<<n, 128, 0, s>>>(x, xs, xh, y, ys, yh, n_head, pos, r);
    return 0;
}

__global__ void k_kv_store(uint8_t *cache, int f16, int n_layer, int layer, int block_tokens,
                           int d_kv, const float *x, int64_t xs, const int32_t *slot) {
    const int t = blockIdx.x;
    const size_t blk = (size_t)slot[t] / (size_t)block_tokens,
                 i = (size_t)slot[t] % (size_t)block_tokens;
    const size_t row = (blk * (size_t)n_layer + (size_t)layer) * (size_t)block_tokens + i;
    const float *src = x + (int64_t)t * xs;
    for (int j = threadIdx.x; j < d_kv; j += blockDim.x) {
        if (f16)
            ((__half *)cache)[row * (size_t)d_kv + j] = __float2half_rn(src[j]);
        else
            ((float *)cache)[row * (size_t)d_kv + j] = src[j];
    }
}

int mesh_cu_kv_store(gpuStream_t s, uint8_t *cache, uint32_t cache_type, int n_layer, int layer,
                     int block_tokens, int d_kv, const float *x, int64_t xs, const int32_t *slot,
                     int n) {
    if (n <= 0)
        return 0;
    k_kv_store<<<n, 256, 0, s>>>(cache, cache_type == 1, n_layer, layer, block_tokens, d_kv, x,
                                 xs, slot);
    return 0;
}

__global__ void k_swiglu(const float *g, int64_t gs, const float *u, int64_t us, float *y,
                         int64_t ys, int width) {
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
    k_swiglu<<<grid, 256, 0, s>>>(g, gs, u, us, y, ys, width);
    return 0;
}

__global__ void k_add(float *y, int64_t ys, const float *x, int64_t xs, int width) {
    const int t = blockIdx.y;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < width; i += gridDim.x * blockDim.x)
        y[(int64_t)t * ys + i] += x[(int64_t)t * xs + i];
}

int mesh_cu_add(gpuStream_t s, float *y, int64_t ys, const float *x, int64_t xs, int n,
                int width) {
    if (n <= 0 || width <= 0)
        return 0;
    dim3 grid((width + 255) / 256 < 64 ? (width + 255) / 256 : 64, n);
    k_add<<<grid, 256, 0, s>>>(y, ys, x, xs, width);
    return 0;
}

__global__ void k_copy_rows(const float *x, int64_t xs, const int32_t *idx, float *y, int64_t ys,
                            int width) {
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
    k_copy_rows<<<n, 256, 0, s>>>(x, xs, idx, y, ys, width);
    return 0;
}
