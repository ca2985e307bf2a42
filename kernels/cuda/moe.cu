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
#include "row_dev.cuh"

#include <math.h>

extern "C" {
#include "mesh_err.h"
}

#define S_MAX_E 1024

#define S_RWARPS 8 // tokens routed at once (one warp each)

// Routes token t with one warp: lanes over experts, K rounds of a warp
// argmax (ties to the lower expert id, as on the CPU). sc and sv are this
// warp's [E] scratch in shared memory.
static __device__ void s_route_tok(const mesh_cu_route_t &r, int t, float *sc, float *sv) {
    const int E = r.E, K = r.K, lane = threadIdx.x & 31;
    const float *lg = r.logits + (int64_t)t * E;
    float mx = -INFINITY;
    for (int e = lane; e < E; e += 32)
        mx = fmaxf(mx, lg[e]);
    mx = mesh_warp_max(mx);
    float sum = 0.0f;
    for (int e = lane; e < E; e += 32) {
        float v = r.gating == 2 ? 1.0f / (1.0f + expf(-lg[e])) : expf(lg[e] - mx);
        sc[e] = v;
        sum += v;
    }
    sum = mesh_warp_sum(sum);
    if (r.gating != 2)
        for (int e = lane; e < E; e += 32)
            sc[e] /= sum;
    for (int e = lane; e < E; e += 32)
        sv[e] = r.bias ? sc[e] + r.bias[e] : sc[e];
    __syncwarp();
    int32_t *sel = r.sel + (int64_t)t * K;
    float *w = r.wsel + (int64_t)t * K;
    for (int k = 0; k < K; k++) {
        float bv = -INFINITY;
        int be = -1;
        for (int e = lane; e < E; e += 32)
            if (sv[e] != -INFINITY && (be < 0 || sv[e] > bv)) {
                bv = sv[e];
                be = e;
            }
        for (int m = 16; m > 0; m >>= 1) {
            float ov = s_shfl_xor(bv, m);
            int oe = s_shfl_xor_i(be, m);
            if (oe >= 0 && (be < 0 || ov > bv || (ov == bv && oe < be))) {
                bv = ov;
                be = oe;
            }
        }
        if (lane == 0) {
            sel[k] = be;
            w[k] = sc[be];
            sv[be] = -INFINITY;
        }
        __syncwarp();
    }
    if (lane == 0) {
        float wsum = 0.0f;
        for (int k = 0; k < K; k++)
            wsum += w[k];
        for (int k = 0; k < K; k++) {
            if (r.norm_w)
                w[k] /= wsum;
            w[k] *= r.w_scale;
        }
    }
}

__global__ void k_route(mesh_cu_route_t r) {
    mesh_pdl_begin();
    const int E = r.E, K = r.K;
    extern __shared__ float rsm[]; // [S_RWARPS][2][E]
    const int warp = threadIdx.x >> 5;
    float *sc = rsm + (size_t)warp * 2 * E, *sv = sc + E;
    for (int t = warp; t < r.n; t += S_RWARPS)
        s_route_tok(r, t, sc, sv);
    __syncthreads();
    // Stable counting sort of pairs i = t*K + k by expert.
    int32_t *cnt = (int32_t *)rsm; // reuses the routing scratch
    for (int e = threadIdx.x; e < E; e += blockDim.x)
        cnt[e] = 0;
    __syncthreads();
    const int np = r.n * K;
    for (int i = threadIdx.x; i < np; i += blockDim.x)
        atomicAdd(&cnt[r.sel[i]], 1);
    __syncthreads();
    // Prefix sum of the counts and the list of used experts: warp 0, 32
    // experts at a time.
    if (threadIdx.x < 32) {
        const int lane = threadIdx.x;
        int base = 0, na = 0;
        for (int e0 = 0; e0 < E; e0 += 32) {
            const int e = e0 + lane, c = e < E ? cnt[e] : 0;
            int inc = c;
            for (int m = 1; m < 32; m <<= 1) {
                const int o = s_shfl_i(inc, lane >= m ? lane - m : lane);
                if (lane >= m)
                    inc += o;
            }
            const uint32_t used = s_ballot(c > 0);
            if (e < E) {
                r.start[e] = base + inc - c;
                if (c > 0)
                    r.act[1 + na + __popc(used & ((1u << lane) - 1u))] = e;
            }
            base += s_shfl_i(inc, 31);
            na += __popc(used);
        }
        if (lane == 0) {
            r.start[E] = base;
            r.act[0] = na;
        }
    }
    __syncthreads();
    // Stable placement: warp w takes experts w, w + 8, ...; pairs of one
    // expert keep pair order (ranks from ballots over the pairs in order).
    const int warp_id = threadIdx.x >> 5, lane = threadIdx.x & 31;
    for (int e = warp_id; e < E; e += S_RWARPS) {
        int p = r.start[e];
        if (r.start[e + 1] == p)
            continue;
        for (int i0 = 0; i0 < np; i0 += 32) {
            const int i = i0 + lane;
            const bool mine = i < np && r.sel[i] == e;
            const uint32_t m = s_ballot(mine);
            if (mine) {
                const int q = p + __popc(m & ((1u << lane) - 1u));
                r.pair_tok[q] = i / K;
                r.slot[i] = q;
            }
            p += __popc(m);
        }
    }
}

int mesh_cu_moe_route(gpuStream_t s, const mesh_cu_route_t *r) {
    if (r->E > S_MAX_E || r->K < 1 || r->K > r->E)
        return MESH_EUNSUPPORTED;
    if (r->n <= 0)
        return 0;
    mesh_launch(k_route, 1, S_RWARPS * 32, sizeof(float) * S_RWARPS * 2 * (size_t)r->E, s, *r);
    return 0;
}

// Element i of token t's MoE output: the shared expert's plus the chosen
// experts' weighted results, in k order.
static __device__ __forceinline__ float s_comb(const float *ys, const float *yg,
                                               const int32_t *slot, const float *wsel, int D,
                                               int K, int t, int i) {
    float o = ys ? ys[(int64_t)t * D + i] : 0.0f;
    for (int k = 0; k < K; k++)
        o += wsel[t * K + k] * yg[(int64_t)slot[t * K + k] * D + i];
    return o;
}

__global__ void k_combine(float *out, const float *ys, const float *yg, const int32_t *slot,
                          const float *wsel, int D, int K) {
    mesh_pdl_begin();
    const int t = blockIdx.y;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < D; i += gridDim.x * blockDim.x)
        out[(int64_t)t * D + i] = s_comb(ys, yg, slot, wsel, D, K, t, i);
}

int mesh_cu_moe_combine(gpuStream_t s, float *out, const float *ys, const float *yg,
                        const int32_t *slot, const float *wsel, int n, int D, int K) {
    if (n <= 0)
        return 0;
    dim3 grid((D + 255) / 256 < 16 ? (D + 255) / 256 : 16, n);
    mesh_launch(k_combine, grid, 256, 0, s, out, ys, yg, slot, wsel, D, K);
    return 0;
}

// The combination (stored in out as k_combine does), added to the residual
// y, then nout = rmsnorm(y) * w: the same bits as k_combine followed by
// k_add_rms_norm, in one launch (one block per token).
__global__ void k_combine_add_rms(float *out, const float *ys, const float *yg,
                                  const int32_t *slot, const float *wsel, int D, int K, float *y,
                                  int64_t yst, float *nout, int64_t nst, const float *w,
                                  float eps) {
    mesh_pdl_begin();
    const int t = blockIdx.x;
    float *yr = y + (int64_t)t * yst;
    float ss = 0.0f;
    for (int i = threadIdx.x; i < D; i += blockDim.x) {
        const float o = s_comb(ys, yg, slot, wsel, D, K, t, i);
        out[(int64_t)t * D + i] = o;
        const float v = yr[i] + o;
        yr[i] = v;
        ss = fmaf(v, v, ss);
    }
    s_rms_row(yr, nout + (int64_t)t * nst, D, w, eps, ss);
}

int mesh_cu_moe_combine_add_rms(gpuStream_t s, float *out, const float *ys, const float *yg,
                                const int32_t *slot, const float *wsel, int n, int D, int K,
                                float *y, int64_t yst, float *nout, int64_t nst, const float *w,
                                float eps) {
    if (n <= 0)
        return 0;
    mesh_launch(k_combine_add_rms, n, 256, 0, s, out, ys, yg, slot, wsel, D, K, y, yst, nout, nst,
                w, eps);
    return 0;
}
