// SPDX-License-Identifier: MIT
// Quantized matrix products on the GPU: fused dequantize-and-multiply.
//
// Two kernels share one (optionally grouped) interface, mesh_cu_mm_t:
//  - k_mv, for few rows of x per group (decode, small batches, MoE experts
//    at decode): one warp per weight row, each lane dequantizes 32-element
//    chunks straight into registers and dots them with up to MV_NT rows of
//    x; weights are read exactly once per launch, so this is bound by
//    memory bandwidth.
//  - k_gemm, for larger batches (prompts): 64x64 output tiles; each K step
//    dequantizes a 64x64 weight tile and a 64x64 activation tile into
//    shared memory as f16 and multiplies them on the tensor cores (wmma,
//    f32 accumulation). Weights are read once per 64 activation rows.
// Both take up to two families of groups per launch (routed experts and the
// shared expert), and may fuse SwiGLU: silu(W x) * (W2 x) for gate and up.
// A row's result depends only on that row of x and the weights: the token
// order inside a batch does not change it beyond the kernel choice (k_mv or
// k_gemm), which depends on the group sizes.
#include "cuda_impl.h"
#include "quant_dev.cuh"

#include <string.h>

#if MESH_GPU_HAS_WMMA
#include <mma.h>
#endif

extern "C" {
#include "mesh_err.h"
}

#define MV_WARPS 4 // rows per block
#define MV_NT 8    // x rows per block (grid.y covers the rest)

typedef struct {
    mesh_cu_mm_t op[2];
    int g0; // groups of op[0]; op[1] owns blockIdx.z >= g0
} s_mm_pair_t;

static __device__ __forceinline__ float s_silu(float x) {
    return x / (1.0f + __expf(-x));
}

// Loads 32 floats of x from xr (elements [e0, e0+32) of a row, K bounds).
static __device__ __forceinline__ void s_ldx(const float *xr, int e0, int K, bool vec, float *xv) {
    if (vec) {
        const float4 *p = (const float4 *)(xr + e0);
#pragma unroll
        for (int i = 0; i < 8; i++) {
            float4 f = p[i];
            xv[4 * i] = f.x;
            xv[4 * i + 1] = f.y;
            xv[4 * i + 2] = f.z;
            xv[4 * i + 3] = f.w;
        }
    } else {
#pragma unroll
        for (int l = 0; l < 32; l++)
            xv[l] = e0 + l < K ? xr[e0 + l] : 0.0f;
    }
}

template <int T, bool FUSE>
__global__ void __launch_bounds__(MV_WARPS * 32) k_mv(s_mm_pair_t P) {
    const int z = blockIdx.z;
    const mesh_cu_mm_t &o = z < P.g0 ? P.op[0] : P.op[1];
    const int g = z < P.g0 ? z : z - P.g0;
    const int lane = threadIdx.x, row = blockIdx.x * MV_WARPS + threadIdx.y;
    if (row >= o.rows)
        return;
    int p0 = 0, cnt = o.n;
    if (o.start) {
        p0 = o.start[g];
        cnt = o.start[g + 1] - p0;
    }
    const int j0 = blockIdx.y * MV_NT;
    if (j0 >= cnt)
        return;
    const int nt = cnt - j0 < MV_NT ? cnt - j0 : MV_NT;
    const size_t moff = (size_t)(o.m0 + g) * o.nb2 + (size_t)row * o.nb1;
    const uint8_t *wr = o.w + moff;
    const uint8_t *wr2 = FUSE ? o.w2 + moff : nullptr;
    const float *xr[MV_NT];
#pragma unroll
    for (int t = 0; t < MV_NT; t++) {
        int p = p0 + j0 + (t < nt ? t : 0);
        int in = o.idx ? o.idx[p] : p;
        xr[t] = o.x + (int64_t)in * o.xs + (int64_t)g * o.xm;
    }
    const bool vec = ((((uintptr_t)o.x) & 15) == 0) && (o.xs % 4 == 0) && (o.xm % 4 == 0) &&
                     (o.K % 8 == 0);
    float acc[MV_NT], acc2[MV_NT];
#pragma unroll
    for (int t = 0; t < MV_NT; t++)
        acc[t] = acc2[t] = 0.0f;
    const int ng = (o.K + 7) / 8;
    // Per (row, x row): lane-strided groups of 8, each an 8-long FMA chain,
    // then a butterfly sum; the same whatever the batch (batch invariance).
    for (int q = lane; q < ng; q += 32) {
        float v[8], v2[8];
        s_deq8<T>(wr, q, o.K, v);
        if (FUSE)
            s_deq8<T>(wr2, q, o.K, v2);
#pragma unroll
        for (int t = 0; t < MV_NT; t++) {
            if (t < nt) {
                float xv[8];
                if (vec) {
                    const float4 *p = (const float4 *)(xr[t] + 8 * q);
                    float4 a = p[0], b = p[1];
                    xv[0] = a.x; xv[1] = a.y; xv[2] = a.z; xv[3] = a.w;
                    xv[4] = b.x; xv[5] = b.y; xv[6] = b.z; xv[7] = b.w;
                } else {
#pragma unroll
                    for (int l = 0; l < 8; l++)
                        xv[l] = 8 * q + l < o.K ? xr[t][8 * q + l] : 0.0f;
                }
                float s = 0.0f, s2 = 0.0f;
#pragma unroll
                for (int l = 0; l < 8; l++) {
                    s = fmaf(v[l], xv[l], s);
                    if (FUSE)
                        s2 = fmaf(v2[l], xv[l], s2);
                }
                acc[t] += s;
                if (FUSE)
                    acc2[t] += s2;
            }
        }
    }
#pragma unroll
    for (int t = 0; t < MV_NT; t++) {
        if (t < nt) {
            float s = mesh_warp_sum(acc[t]);
            float s2 = FUSE ? mesh_warp_sum(acc2[t]) : 0.0f;
            if (lane == t) {
                int p = p0 + j0 + t;
                o.y[(int64_t)p * o.ys + (int64_t)g * o.ym + row] = FUSE ? s_silu(s) * s2 : s;
            }
        }
    }
}

#if MESH_GPU_HAS_WMMA
using namespace nvcuda;
#define GT 64     // tile rows (weights) and tile columns (x rows)
#define GK 64     // K step
#define GLD 72    // f16 leading dimension in shared memory (padding against bank conflicts)
#define GCLD 68   // f32 leading dimension of the output tile

template <int T, bool FUSE>
__global__ void __launch_bounds__(128) k_gemm(s_mm_pair_t P) {
    const int z = blockIdx.z;
    const mesh_cu_mm_t &o = z < P.g0 ? P.op[0] : P.op[1];
    const int g = z < P.g0 ? z : z - P.g0;
    int p0 = 0, cnt = o.n;
    if (o.start) {
        p0 = o.start[g];
        cnt = o.start[g + 1] - p0;
    }
    const int j0 = blockIdx.y * GT, r0 = blockIdx.x * GT;
    if (j0 >= cnt)
        return;
    __shared__ __align__(32) unsigned char sm[3 * GT * GLD * 2 > GT * GCLD * 4 ? 3 * GT * GLD * 2 : GT * GCLD * 4];
    __half *Ws = (__half *)sm, *Ws2 = Ws + GT * GLD, *Xs = Ws2 + GT * GLD;
    float *Cs = (float *)sm;
    const int tid = threadIdx.x, warp = tid >> 5;
    // This thread's weight chunk row and x row.
    const int wr_i = tid >> 1, half_i = tid & 1;
    const int wrow = r0 + wr_i;
    const size_t mbase = (size_t)(o.m0 + g) * o.nb2;
    const uint8_t *wr = wrow < o.rows ? o.w + mbase + (size_t)wrow * o.nb1 : nullptr;
    const uint8_t *wr2 = FUSE && wrow < o.rows ? o.w2 + mbase + (size_t)wrow * o.nb1 : nullptr;
    const int xj = j0 + wr_i;
    const float *xr = nullptr;
    if (xj < cnt) {
        int p = p0 + xj;
        int in = o.idx ? o.idx[p] : p;
        xr = o.x + (int64_t)in * o.xs + (int64_t)g * o.xm;
    }
    const bool vec = ((((uintptr_t)o.x) & 15) == 0) && (o.xs % 4 == 0) && (o.xm % 4 == 0) &&
                     (o.K % 32 == 0);
    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[2][2], acc2[2][2];
#pragma unroll
    for (int i = 0; i < 2; i++)
#pragma unroll
        for (int j = 0; j < 2; j++) {
            wmma::fill_fragment(acc[i][j], 0.0f);
            if (FUSE)
                wmma::fill_fragment(acc2[i][j], 0.0f);
        }
    const int wm = (warp & 1) * 32, wn = (warp >> 1) * 32;
    for (int k0 = 0; k0 < o.K; k0 += GK) {
        const int c = k0 / 32 + half_i;
        float v[32];
        if (wr && c * 32 < o.K)
            s_deq<T>(wr, c, o.K, v);
        else
#pragma unroll
            for (int l = 0; l < 32; l++)
                v[l] = 0.0f;
#pragma unroll
        for (int l = 0; l < 32; l += 2)
            *(__half2 *)&Ws[wr_i * GLD + half_i * 32 + l] = __floats2half2_rn(v[l], v[l + 1]);
        if (FUSE) {
            if (wr2 && c * 32 < o.K)
                s_deq<T>(wr2, c, o.K, v);
#pragma unroll
            for (int l = 0; l < 32; l += 2)
                *(__half2 *)&Ws2[wr_i * GLD + half_i * 32 + l] = __floats2half2_rn(v[l], v[l + 1]);
        }
        if (xr && c * 32 < o.K)
            s_ldx(xr, c * 32, o.K, vec, v);
        else
#pragma unroll
            for (int l = 0; l < 32; l++)
                v[l] = 0.0f;
#pragma unroll
        for (int l = 0; l < 32; l += 2)
            *(__half2 *)&Xs[wr_i * GLD + half_i * 32 + l] = __floats2half2_rn(v[l], v[l + 1]);
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < GK; kk += 16) {
            wmma::fragment<wmma::matrix_a, 16, 16, 16, __half, wmma::row_major> fa[2], fa2[2];
            wmma::fragment<wmma::matrix_b, 16, 16, 16, __half, wmma::col_major> fb[2];
#pragma unroll
            for (int i = 0; i < 2; i++) {
                wmma::load_matrix_sync(fa[i], Ws + (wm + 16 * i) * GLD + kk, GLD);
                if (FUSE)
                    wmma::load_matrix_sync(fa2[i], Ws2 + (wm + 16 * i) * GLD + kk, GLD);
                wmma::load_matrix_sync(fb[i], Xs + (wn + 16 * i) * GLD + kk, GLD);
            }
#pragma unroll
            for (int i = 0; i < 2; i++)
#pragma unroll
                for (int j = 0; j < 2; j++) {
                    wmma::mma_sync(acc[i][j], fa[i], fb[j], acc[i][j]);
                    if (FUSE)
                        wmma::mma_sync(acc2[i][j], fa2[i], fb[j], acc2[i][j]);
                }
        }
        __syncthreads();
    }
#pragma unroll
    for (int i = 0; i < 2; i++)
#pragma unroll
        for (int j = 0; j < 2; j++) {
            if (FUSE)
                for (int e = 0; e < acc[i][j].num_elements; e++)
                    acc[i][j].x[e] = s_silu(acc[i][j].x[e]) * acc2[i][j].x[e];
            // Cs is [row][x row] row-major: element (m, n) at m * GCLD + n.
            wmma::store_matrix_sync(Cs + (wm + 16 * i) * GCLD + wn + 16 * j, acc[i][j], GCLD,
                                    wmma::mem_row_major);
        }
    __syncthreads();
    for (int e = tid; e < GT * GT; e += 128) {
        const int jn = e / GT, rm = e % GT;
        const int r = r0 + rm, j = j0 + jn;
        if (r < o.rows && j < cnt)
            o.y[(int64_t)(p0 + j) * o.ys + (int64_t)g * o.ym + r] = Cs[rm * GCLD + jn];
    }
}
#endif

bool mesh_cu_type_ok(uint32_t type) {
    return cu_type_bytes((int)type) != 0;
}

// Rows of x in the largest group (what sizes the grid's y dimension).
static int s_max_rows(const mesh_cu_mm_t *a) {
    return a->n;
}

int mesh_cu_matmul2(gpuStream_t s, const mesh_cu_mm_t *a, const mesh_cu_mm_t *b) {
    s_mm_pair_t P;
    memset(&P, 0, sizeof P);
    P.op[0] = *a;
    P.g0 = a->n_group;
    int gz = a->n_group, nmax = s_max_rows(a), rows = a->rows;
    if (b && b->n_group > 0) {
        if (b->type != a->type || (b->w2 != nullptr) != (a->w2 != nullptr))
            return MESH_EINVAL;
        P.op[1] = *b;
        gz += b->n_group;
        nmax = nmax > s_max_rows(b) ? nmax : s_max_rows(b);
        rows = rows > b->rows ? rows : b->rows;
    }
    if (gz <= 0 || nmax <= 0)
        return 0;
    const bool fuse = a->w2 != nullptr;
    // The GEMM pays off once a group holds enough rows to reuse each weight tile.
    // The GEMM is kept for batches once it can be made batch-invariant; for
    // now every batch size takes k_mv so that a token's result never depends
    // on what else is in the batch (k_mv's per-row arithmetic does not).
    const bool gemm = false;
    if (gemm) {
#if MESH_GPU_HAS_WMMA
        dim3 grid((rows + GT - 1) / GT, (nmax + GT - 1) / GT, gz);
#define S_GO(T)                                                                                   \
    do {                                                                                          \
        if (fuse)                                                                                 \
            k_gemm<T, true><<<grid, 128, 0, s>>>(P);                                              \
        else                                                                                      \
            k_gemm<T, false><<<grid, 128, 0, s>>>(P);                                             \
    } while (0)
        CU_TYPE_SWITCH(a->type, S_GO)
#undef S_GO
#endif
    } else {
        dim3 grid((rows + MV_WARPS - 1) / MV_WARPS, (nmax + MV_NT - 1) / MV_NT, gz);
        dim3 blk(32, MV_WARPS);
#define S_GO(T)                                                                                   \
    do {                                                                                          \
        if (fuse)                                                                                 \
            k_mv<T, true><<<grid, blk, 0, s>>>(P);                                                \
        else                                                                                      \
            k_mv<T, false><<<grid, blk, 0, s>>>(P);                                               \
    } while (0)
        CU_TYPE_SWITCH(a->type, S_GO)
#undef S_GO
    }
    return 0;
}

// ---- get_rows: dequantize table rows ----
template <int T>
__global__ void k_get_rows(const uint8_t *table, int K, size_t nb1, const int32_t *ids, float *y,
                           int64_t ys) {
    const int t = blockIdx.x;
    const uint8_t *row = table + (size_t)ids[t] * nb1;
    float *out = y + (int64_t)t * ys;
    for (int c = threadIdx.x; c * 32 < K; c += blockDim.x) {
        float v[32];
        s_deq<T>(row, c, K, v);
#pragma unroll
        for (int l = 0; l < 32; l++)
            if (c * 32 + l < K)
                out[c * 32 + l] = v[l];
    }
}

int mesh_cu_get_rows(gpuStream_t s, const uint8_t *table, int type, int K, size_t nb1,
                     const int32_t *ids, int n, float *y, int64_t ys) {
    if (n <= 0)
        return 0;
#define S_GO(T) k_get_rows<T><<<n, 128, 0, s>>>(table, K, nb1, ids, y, ys)
    CU_TYPE_SWITCH(type, S_GO)
#undef S_GO
    return 0;
}
