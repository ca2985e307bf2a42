// SPDX-License-Identifier: MIT
// Quantized matrix products on the GPU: fused dequantize-and-multiply.
//
// k_mv serves every product (dense, per-head, grouped MoE experts with the
// shared expert in the same launch, optionally fused SwiGLU of gate and up):
// 1, 2 or 4 warps (by K) share a weight row; lane l of a warp dequantizes 8-element
// group 32*step + l straight into registers, so a warp reads one whole
// K-quant super-block (or eight 32-element blocks) and 1 KiB of x per step,
// all coalesced, and dots it with up to 8 rows of x at a time; a block loops
// over all rows of x of its group, its weight rows staying hot in L1/L2, so
// weights are read from memory once per launch (decode is bandwidth-bound). A row's result
// depends only on that row of x and the weights (fixed lane/warp order and
// reduction tree), never on the batch.
//
// Q8_0, Q5_0, Q4_K and Q6_K weights take the int8 tensor-core kernels of
// mmq.cu instead (on sm_80 and up), which keep the same batch invariance.
#include "cuda_impl.h"
#include "quant_dev.cuh"

#include <string.h>

extern "C" {
#include "mesh_err.h"
}

#define MV_WARPS 8 // warps per block
#define MV_YCH 64  // x rows per block (grid.y splits larger batches; a row's
                   // arithmetic is the same in whichever block it lands)

typedef struct {
    mesh_cu_mm_t op[2];
    int g0; // groups of op[0]; op[1] owns blockIdx.z >= g0
} s_mm_pair_t;

static __device__ __forceinline__ float s_silu(float x) {
    return x / (1.0f + __expf(-x));
}

// Warps per weight row for rows of K elements: enough 256-element steps
// for each warp (K alone decides it, so results never depend on the batch).
static __host__ __device__ __forceinline__ int s_rw(int K) {
    const int ng = (K + 7) / 8;
    return ng >= 256 ? 4 : ng >= 64 ? 2 : 1;
}

template <int T, bool FUSE, int MV_NT>
static __device__ __forceinline__ void s_mv_body(const mesh_cu_mm_t &o, int g) {
    if (o.act) { // compact list of non-empty groups: act[0] count, then ids
        if (g >= o.act[0])
            return;
        g = o.act[1 + g];
    }
    // rw warps share a row (each takes every rw-th step of 256 elements);
    // the block holds MV_WARPS / rw rows and loops over x rows MV_NT at a time.
    const int rw = s_rw(o.K);
    const int lane = threadIdx.x, wr_i = threadIdx.y % rw, rl = threadIdx.y / rw;
    const int row = blockIdx.x * (MV_WARPS / rw) + rl;
    int p0 = 0, cnt = o.n;
    if (o.start) {
        p0 = o.start[g];
        cnt = o.start[g + 1] - p0;
    }
    __shared__ float red[MV_WARPS][MV_NT][2];
    const bool live = row < o.rows;
    const size_t moff = (size_t)(o.m0 + g) * o.nb2 + (size_t)(live ? row : 0) * o.nb1;
    const uint8_t *wr = o.w + moff;
    const uint8_t *wr2 = FUSE ? o.w2 + moff : nullptr;
    const bool vec = ((((uintptr_t)o.x) & 15) == 0) && (o.xs % 4 == 0) && (o.xm % 4 == 0) &&
                     (o.K % 8 == 0);
    const int ng = live ? (o.K + 7) / 8 : 0;
    // this block's share of the x rows: runs of MV_YCH, every gridDim.y-th
    for (int jb = (int)blockIdx.y * MV_YCH; jb < cnt; jb += (int)gridDim.y * MV_YCH) {
        const int j_end = cnt - jb < MV_YCH ? cnt : jb + MV_YCH;
        for (int j0 = jb; j0 < j_end; j0 += MV_NT) {
            const int nt = j_end - j0 < MV_NT ? j_end - j0 : MV_NT;
            const float *xr[MV_NT];
#pragma unroll
            for (int t = 0; t < MV_NT; t++) {
                int p = p0 + j0 + (t < nt ? t : 0);
                int in = o.idx ? o.idx[p] : p;
                xr[t] = o.x + (int64_t)in * o.xs + (int64_t)g * o.xm;
            }
            float acc[MV_NT], acc2[MV_NT];
#pragma unroll
            for (int t = 0; t < MV_NT; t++)
                acc[t] = acc2[t] = 0.0f;
            // Per (row, x row): groups of 8 in a fixed lane/warp order, each an
            // 8-long FMA chain, then a butterfly sum and a fixed-order sum over
            // the row's warps: the same whatever the batch (batch invariance).
#pragma unroll 2
            for (int q = wr_i * 32 + lane; q < ng; q += 32 * rw) {
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
                    if (lane == 0) {
                        red[threadIdx.y][t][0] = s;
                        red[threadIdx.y][t][1] = s2;
                    }
                }
            }
            __syncthreads();
            if (live && wr_i == 0 && lane < nt) {
                const int t = lane, w0 = rl * rw;
                float s = red[w0][t][0], s2 = red[w0][t][1];
                for (int k = 1; k < rw; k++) {
                    s += red[w0 + k][t][0];
                    s2 += red[w0 + k][t][1];
                }
                const int p = p0 + j0 + t;
                o.y[(int64_t)p * o.ys + (int64_t)g * o.ym + row] = FUSE ? s_silu(s) * s2 : s;
            }
            __syncthreads();
        }
    }
}

// Two copies of the body (one per family) so that each reads its parameters
// at fixed offsets instead of through a run-time choice.
template <int T, bool FUSE, int NT>
__global__ void __launch_bounds__(MV_WARPS * 32) k_mv(s_mm_pair_t P) {
    mesh_pdl_begin();
    const int z = blockIdx.z;
    if (z < P.g0)
        s_mv_body<T, FUSE, NT>(P.op[0], z);
    else
        s_mv_body<T, FUSE, NT>(P.op[1], z - P.g0);
}

bool mesh_cu_type_ok(uint32_t type) {
    return cu_type_bytes((int)type) != 0;
}

// Rows of x in the largest group (what sizes the grid's y dimension).
static int s_max_rows(const mesh_cu_mm_t *a) {
    return a->n;
}

int mesh_cu_matmul2(gpuStream_t s, const mesh_cu_mm_t *a, const mesh_cu_mm_t *b) {
    if (b && b->n_group <= 0)
        b = NULL;
    const bool qa = a->xq && mesh_cu_mmq_ok(a), qb = b && b->xq && mesh_cu_mmq_ok(b);
    if (qa || qb) {
        // one tensor-core launch for both when they match, else each its own way
        if (qa && b && qb && b->type == a->type && (b->w2 != nullptr) == (a->w2 != nullptr))
            return mesh_cu_mmq2(s, a, b);
        int rc = qa ? mesh_cu_mmq2(s, a, NULL) : mesh_cu_matmul2(s, a, NULL);
        if (rc || !b)
            return rc;
        return qb ? mesh_cu_mmq2(s, b, NULL) : mesh_cu_matmul2(s, b, NULL);
    }
    s_mm_pair_t P;
    memset(&P, 0, sizeof P);
    P.op[0] = *a;
    P.g0 = a->n_group;
    int gz = a->n_group, nmax = s_max_rows(a), rows = a->rows;
    if (b && b->n_group > 0) {
        if (b->type != a->type || (b->w2 != nullptr) != (a->w2 != nullptr) ||
            s_rw(b->K) != s_rw(a->K)) {
            // not one kernel instance: two launches
            int rc = mesh_cu_matmul2(s, a, NULL);
            return rc ? rc : mesh_cu_matmul2(s, b, NULL);
        }
        P.op[1] = *b;
        gz += b->n_group;
        nmax = nmax > s_max_rows(b) ? nmax : s_max_rows(b);
        rows = rows > b->rows ? rows : b->rows;
    }
    if (gz <= 0 || nmax <= 0)
        return 0;
    const bool fuse = a->w2 != nullptr;
    // Every batch size of these types takes k_mv, so a token's result never
    // depends on what else is in the batch (k_mv's per-row arithmetic does
    // not); the types with tensor-core kernels left above, by type alone.
    {
        // Rows per block follow the widest family's K (both families of a
        // launch have the same K in practice: experts and shared expert).
        const int rpb = MV_WARPS / s_rw(a->K);
        // One x row per block for decode (fewer registers), else 8.
        const int nt = nmax == 1 ? 1 : 8;
        // x rows: MV_YCH per block along y, looped 8 at a time inside it
        const int ny = (nmax + MV_YCH - 1) / MV_YCH;
        dim3 grid((rows + rpb - 1) / rpb, (unsigned)(ny < 65535 ? ny : 65535), gz);
        dim3 blk(32, MV_WARPS);
#define S_GO(T)                                                                                   \
    do {                                                                                          \
        if (fuse && nt == 1)                                                                      \
            mesh_launch(k_mv<T, true, 1>, grid, blk, 0, s, P);                                    \
        else if (fuse)                                                                            \
            mesh_launch(k_mv<T, true, 8>, grid, blk, 0, s, P);                                    \
        else if (nt == 1)                                                                         \
            mesh_launch(k_mv<T, false, 1>, grid, blk, 0, s, P);                                   \
        else                                                                                      \
            mesh_launch(k_mv<T, false, 8>, grid, blk, 0, s, P);                                   \
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
    mesh_pdl_begin();
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
#define S_GO(T) mesh_launch(k_get_rows<T>, n, 128, 0, s, table, K, nb1, ids, y, ys)
    CU_TYPE_SWITCH(type, S_GO)
#undef S_GO
    return 0;
}
