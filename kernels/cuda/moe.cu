// SPDX-License-Identifier: MIT
// Mixture-of-experts helpers on the GPU: the router (gating, selection bias,
// top-k, normalisation, scale) and grouping of (token, k) pairs by expert in
// one launch, and the weighted combination in another. The expert matrices
// themselves run through mesh_cu_matmul2 (matmul.cu) with the grouping
// tables, all chosen experts of a layer (and the shared expert) in one
// launch for gate+up+SwiGLU and one for down; cuda_backend.cu strings them
// together. Grouping is a stable counting sort in pair order, so each
// token's computation is the same whatever else is in the batch.
#include "cuda_impl.h"

#include <math.h>

extern "C" {
#include "mesh_err.h"
}

#define S_MAX_E 1024

static __device__ __forceinline__ float s_gate(const float *lg, int e, int gating, float mx,
                                               float inv_sum) {
    return gating == 2 ? 1.0f / (1.0f + expf(-lg[e])) : expf(lg[e] - mx) * inv_sum;
}

__global__ void k_route(mesh_cu_route_t r) {
    const int E = r.E, K = r.K;
    for (int t = threadIdx.x; t < r.n; t += blockDim.x) {
        const float *lg = r.logits + (int64_t)t * E;
        float mx = -INFINITY, inv_sum = 1.0f;
        if (r.gating != 2) {
            float sum = 0.0f;
            for (int e = 0; e < E; e++)
                mx = fmaxf(mx, lg[e]);
            for (int e = 0; e < E; e++)
                sum += expf(lg[e] - mx);
            inv_sum = 1.0f / sum;
        }
        int32_t *sel = r.sel + (int64_t)t * K;
        float *w = r.wsel + (int64_t)t * K;
        float wsum = 0.0f;
        for (int k = 0; k < K; k++) {
            int best = -1;
            float bv = -INFINITY;
            for (int e = 0; e < E; e++) {
                bool used = false;
                for (int kk = 0; kk < k; kk++)
                    used |= sel[kk] == e;
                if (used)
                    continue;
                float v = s_gate(lg, e, r.gating, mx, inv_sum);
                if (r.bias)
                    v += r.bias[e];
                if (best < 0 || v > bv) {
                    best = e;
                    bv = v;
                }
            }
            sel[k] = best;
            float sc = s_gate(lg, best, r.gating, mx, inv_sum);
            w[k] = sc;
            wsum += sc;
        }
        for (int k = 0; k < K; k++) {
            if (r.norm_w)
                w[k] /= wsum;
            w[k] *= r.w_scale;
        }
    }
    __syncthreads();
    // Stable counting sort of pairs i = t*K + k by expert.
    __shared__ int32_t cnt[S_MAX_E];
    for (int e = threadIdx.x; e < E; e += blockDim.x)
        cnt[e] = 0;
    __syncthreads();
    const int np = r.n * K;
    for (int i = threadIdx.x; i < np; i += blockDim.x)
        atomicAdd(&cnt[r.sel[i]], 1);
    __syncthreads();
    if (threadIdx.x == 0) {
        int acc = 0;
        for (int e = 0; e < E; e++) {
            r.start[e] = acc;
            acc += cnt[e];
            cnt[e] = r.start[e];
        }
        r.start[E] = acc;
        for (int i = 0; i < np; i++) {
            int p = cnt[r.sel[i]]++;
            r.pair_tok[p] = i / K;
            r.slot[i] = p;
        }
    }
}

int mesh_cu_moe_route(gpuStream_t s, const mesh_cu_route_t *r) {
    if (r->E > S_MAX_E || r->K < 1 || r->K > r->E)
        return MESH_EUNSUPPORTED;
    if (r->n <= 0)
        return 0;
    k_route<<<1, 256, 0, s>>>(*r);
    return 0;
}

__global__ void k_combine(float *out, const float *ys, const float *yg, const int32_t *slot,
                          const float *wsel, int D, int K) {
    const int t = blockIdx.y;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < D; i += gridDim.x * blockDim.x) {
        float o = ys ? ys[(int64_t)t * D + i] : 0.0f;
        for (int k = 0; k < K; k++)
            o += wsel[t * K + k] * yg[(int64_t)slot[t * K + k] * D + i];
        out[(int64_t)t * D + i] = o;
    }
}

int mesh_cu_moe_combine(gpuStream_t s, float *out, const float *ys, const float *yg,
                        const int32_t *slot, const float *wsel, int n, int D, int K) {
    if (n <= 0)
        return 0;
    dim3 grid((D + 255) / 256 < 16 ? (D + 255) / 256 : 16, n);
    k_combine<<<grid, 256, 0, s>>>(out, ys, yg, slot, wsel, D, K);
    return 0;
}
