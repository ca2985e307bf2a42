// SPDX-License-Identifier: MIT
// MLA attention over the paged latent cache (absorbed form), decode and
// prefill, split over the sequence and then combined (flash-decoding).
//
// All heads of a token read the same cache rows, so one block serves every
// head of one token: a tile of TR rows is staged in shared memory once and
// used for H scores each, then for the H weighted sums of its first kv_lora
// values; softmax is online (running max and sum per head).
//
// A token's context is cut into chunks of CH rows whatever the batch, and
// each chunk's partial (max, sum, unnormalised output) is folded into the
// result in chunk order with one merge function (s_merge). Small batches
// (decode) give every chunk its own block and fold the partials in
// k_mla_combine; large batches (prefill) fold chunk after chunk inside one
// block per token. Both perform the same float operations in the same
// order, so a token's output is bit-identical whatever the batch holds (the
// engine's promise). The grid depends only on the batch size and the pool's
// capacity (never on context lengths, which are read from device memory),
// so a decode step can be replayed as a CUDA graph at any depth.
// Blocks take HG heads each (grid.z), which changes nothing in a head's
// arithmetic. Shared memory per block: (G*d_kv + TR*d_kv + G*TR +
// 2*G*kv_lora + 5G) floats for G = min(HG, heads): 62 KiB for GLM-4.7-Flash.
#include "cuda_impl.h"

#include <math.h>

extern "C" {
#include "mesh_err.h"
}

#define TR 16     // cache rows per tile
#define CH 64     // cache rows per chunk (the unit of splitting and folding)
#define NTH 256   // threads per block
#define HG 4      // heads per block (grid.z covers the rest)

static size_t s_smem_bytes(int H, int d_kv, int kv_lora) {
    return sizeof(float) * ((size_t)H * d_kv + (size_t)TR * d_kv + (size_t)H * TR +
                            2 * (size_t)H * kv_lora + 5 * (size_t)H);
}

static int s_smem_optin = 48 * 1024;

// Folds partial b into the running state a (per head: ca, cb from the maxima).
// Plain multiplies and adds (no contraction) so every caller rounds alike.
static __device__ __forceinline__ void s_merge_coef(float ma, float mb, float *m, float *ca,
                                                    float *cb) {
    *m = fmaxf(ma, mb);
    *ca = ma == -INFINITY ? 0.0f : expf(__fsub_rn(ma, *m));
    *cb = mb == -INFINITY ? 0.0f : expf(__fsub_rn(mb, *m));
}
static __device__ __forceinline__ float s_merge(float a, float ca, float b, float cb) {
    return __fadd_rn(__fmul_rn(a, ca), __fmul_rn(b, cb));
}

// The chunks of token t's context this block takes: one (blockIdx.y) when
// split, else all. False when there is none.
static __device__ __forceinline__ bool s_chunk_range(const mesh_cu_mla_t &a, int n_ctx, int *c0,
                                                     int *c1) {
    const int n_ch = (n_ctx + CH - 1) / CH;
    *c0 = a.n_split > 1 ? (int)blockIdx.y : 0;
    *c1 = a.n_split > 1 ? min((int)blockIdx.y + 1, n_ch) : n_ch;
    return *c0 < *c1;
}

__global__ void __launch_bounds__(NTH) k_mla(mesh_cu_mla_t a) {
    mesh_pdl_begin();
    extern __shared__ float sm[];
    const int h0 = blockIdx.z * HG, H = min(HG, a.n_head - h0), D = a.d_kv, L = a.kv_lora;
    const int HA = a.n_head;
    float *qs = sm, *kt = qs + (size_t)H * D, *sc = kt + TR * D, *o = sc + H * TR,
          *oa = o + (size_t)H * L, *mx = oa + (size_t)H * L, *ls = mx + H, *corr = ls + H,
          *ma = corr + H, *la = ma + H;
    const int t = blockIdx.x, tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const int n_ctx = a.toks[t].n_ctx;
    const bool split = a.n_split > 1;
    int c0, c1;
    if (!s_chunk_range(a, n_ctx, &c0, &c1))
        return;
    const int32_t *tab = a.tables + a.toks[t].table_off;
    const float *q = a.q + ((int64_t)t * HA + h0) * D;
    for (int i = tid; i < H * D; i += NTH)
        qs[i] = q[i];
    for (int i = tid; i < H * L; i += NTH)
        oa[i] = 0.0f;
    for (int h = tid; h < H; h += NTH) {
        ma[h] = -INFINITY;
        la[h] = 0.0f;
    }
    for (int ch = c0; ch < c1; ch++) {
        const int r0 = ch * CH, r1 = min(n_ctx, r0 + CH);
        for (int i = tid; i < H * L; i += NTH)
            o[i] = 0.0f;
        for (int h = tid; h < H; h += NTH) {
            mx[h] = -INFINITY;
            ls[h] = 0.0f;
        }
        __syncthreads();
        for (int s0 = r0; s0 < r1; s0 += TR) {
            const int cn = min(TR, r1 - s0);
            // 1. stage the tile's rows (16-byte loads when rows allow them)
            for (int j = warp; j < cn; j += NTH / 32) {
                int s = s0 + j;
                size_t idx = ((size_t)tab[s / a.block_tokens] * (size_t)a.n_layer + (size_t)a.layer) *
                                 (size_t)a.block_tokens + (size_t)(s % a.block_tokens);
                float *dst = kt + j * D;
                if (a.cache_type == 1) {
                    const __half *row = (const __half *)a.cache + idx * (size_t)D;
                    if (D % 8 == 0) {
                        for (int i = lane; i < D / 8; i += 32) {
                            uint4 u = ((const uint4 *)row)[i];
                            const __half2 *h2 = (const __half2 *)&u;
#pragma unroll
                            for (int k = 0; k < 4; k++) {
                                float2 f = __half22float2(h2[k]);
                                dst[8 * i + 2 * k] = f.x;
                                dst[8 * i + 2 * k + 1] = f.y;
                            }
                        }
                    } else {
                        for (int i = lane; i < D; i += 32)
                            dst[i] = __half2float(row[i]);
                    }
                } else {
                    const float *row = (const float *)a.cache + idx * (size_t)D;
                    if (D % 4 == 0) {
                        for (int i = lane; i < D / 4; i += 32)
                            ((float4 *)dst)[i] = ((const float4 *)row)[i];
                    } else {
                        for (int i = lane; i < D; i += 32)
                            dst[i] = row[i];
                    }
                }
            }
            __syncthreads();
            // 2. scores, one warp per (head, row) pair
            for (int pr = warp; pr < H * TR; pr += NTH / 32) {
                const int h = pr / TR, j = pr % TR;
                float s = -INFINITY;
                if (j < cn) {
                    float acc = 0.0f;
#pragma unroll 6
                    for (int i = lane; i < D; i += 32)
                        acc = fmaf(qs[h * D + i], kt[j * D + i], acc);
                    s = mesh_warp_sum(acc) * a.scale;
                }
                if (lane == 0)
                    sc[h * TR + j] = s;
            }
            __syncthreads();
            // 3. online softmax per head
            for (int h = tid; h < H; h += NTH) {
                float m = mx[h];
                for (int j = 0; j < cn; j++)
                    m = fmaxf(m, sc[h * TR + j]);
                float c = expf(mx[h] - m); // 0 on the first tile (mx = -inf)
                float l = ls[h] * c;
                for (int j = 0; j < TR; j++) {
                    float p = j < cn ? expf(sc[h * TR + j] - m) : 0.0f;
                    sc[h * TR + j] = p;
                    l += p;
                }
                mx[h] = m;
                ls[h] = l;
                corr[h] = c;
            }
            __syncthreads();
            // 4. weighted sums of the latent part
            for (int e = tid; e < H * L; e += NTH) {
                const int h = e / L, d = e % L;
                float acc = o[e] * corr[h];
#pragma unroll 4
                for (int j = 0; j < cn; j++)
                    acc = fmaf(sc[h * TR + j], kt[j * D + d], acc);
                o[e] = acc;
            }
            __syncthreads();
        }
        if (split) {
            // part layout: [t][chunk][h][L + 2] (o, then max, sum)
            float *part = a.part + (((int64_t)t * a.n_split + ch) * HA + h0) * (L + 2);
            for (int e = tid; e < H * L; e += NTH)
                part[(e / L) * (L + 2) + e % L] = o[e];
            for (int h = tid; h < H; h += NTH) {
                part[h * (L + 2) + L] = mx[h];
                part[h * (L + 2) + L + 1] = ls[h];
            }
        } else {
            // fold this chunk into the running state (same merge as k_mla_combine)
            for (int e = tid; e < H * L; e += NTH) {
                const int h = e / L;
                float m, ca, cb;
                s_merge_coef(ma[h], mx[h], &m, &ca, &cb);
                oa[e] = s_merge(oa[e], ca, o[e], cb);
            }
            __syncthreads();
            for (int h = tid; h < H; h += NTH) {
                float m, ca, cb;
                s_merge_coef(ma[h], mx[h], &m, &ca, &cb);
                la[h] = s_merge(la[h], ca, ls[h], cb);
                ma[h] = m;
            }
        }
        __syncthreads();
    }
    if (!split) {
        float *out = a.out + ((int64_t)t * HA + h0) * L;
        for (int e = tid; e < H * L; e += NTH) {
            float l = la[e / L];
            out[e] = l > 0.0f ? __fdiv_rn(oa[e], l) : 0.0f;
        }
    }
}

// Folds the chunk partials of one (token, head) in chunk order, for CB_COLS
// output columns per block (grid.z covers kv_lora). The fold is a chain
// (each step needs the running max, sum and output), but only the sums and
// outputs must be folded one after another:
//   1. all threads load every chunk's (max, sum) into shared memory at once;
//   2. warp 0 scans the running maxima (fmaxf: exact in any order) a warp's
//      width of chunks at a time, and each lane computes its chunk's two
//      merge coefficients from (running max before, chunk max) with
//      s_merge_coef, which is what the chain would compute there;
//   3. one thread of the extra warp folds the sums while the CB_COLS column
//      threads fold their outputs, each a chain of s_merge over chunks.
// Every step performs exactly the operations of k_mla's and k_mla_tc's
// in-block fold, in the same order, so split and unsplit runs agree to the
// bit; what changed is that the scalar chain no longer waits on a global
// load per chunk, which at depth 8192 (128 chunks) cost more than the
// attention itself.
#define CB_COLS 128
__global__ void k_mla_combine(mesh_cu_mla_t a) {
    mesh_pdl_begin();
    extern __shared__ float cf[]; // ca[n_split], cb[n_split], mb[n_split], lb[n_split], l
    const int t = blockIdx.x, h = blockIdx.y, H = a.n_head, L = a.kv_lora, NS = a.n_split;
    const int n_ch = (a.toks[t].n_ctx + CH - 1) / CH, tid = threadIdx.x;
    float *ca = cf, *cb = cf + NS, *mb = cf + 2 * NS, *lb = cf + 3 * NS;
    const float *base = a.part + (int64_t)t * NS * H * (L + 2) + (int64_t)h * (L + 2);
    const int64_t cs = (int64_t)H * (L + 2);
    for (int c = tid; c < n_ch; c += blockDim.x) {
        mb[c] = base[c * cs + L];
        lb[c] = base[c * cs + L + 1];
    }
    __syncthreads();
    if (tid < MESH_WARP) {
        float carry = -INFINITY; // running max of the chunks before this tile
        for (int c0 = 0; c0 < n_ch; c0 += MESH_WARP) {
            const int c = c0 + tid;
            const float x = c < n_ch ? mb[c] : -INFINITY;
            float v = x; // inclusive running max within the tile
            for (int off = 1; off < MESH_WARP; off <<= 1) {
                const float y = s_shfl(v, tid >= off ? tid - off : tid);
                v = fmaxf(v, y);
            }
            v = fmaxf(v, carry);
            float before = s_shfl(v, tid > 0 ? tid - 1 : 0);
            if (tid == 0)
                before = carry;
            if (c < n_ch) {
                float m, a0, b0;
                s_merge_coef(before, x, &m, &a0, &b0);
                ca[c] = a0;
                cb[c] = b0;
            }
            carry = s_shfl(v, MESH_WARP - 1);
        }
    }
    __syncthreads();
    if (tid == CB_COLS) {
        float l = 0.0f;
        for (int c = 0; c < n_ch; c++)
            l = s_merge(l, ca[c], lb[c], cb[c]);
        cf[4 * NS] = l;
    }
    const int d = blockIdx.z * CB_COLS + tid;
    float o = 0.0f;
    if (tid < CB_COLS && d < L) {
        const float *col = base + d;
#pragma unroll 16
        for (int c = 0; c < n_ch; c++)
            o = s_merge(o, ca[c], col[c * cs], cb[c]);
    }
    __syncthreads();
    if (tid < CB_COLS && d < L) {
        const float l = cf[4 * NS];
        a.out[((int64_t)t * H + h) * L + d] = l > 0.0f ? __fdiv_rn(o, l) : 0.0f;
    }
}

// ---- tensor-core variant (f16 cache, kv_lora 512, up to 32 heads) ----
//
// The same chunks of CH rows and the same fold (s_merge) as k_mla, but one
// chunk is computed on f16 tensor cores with f32 accumulation:
//   scores  S = (q_hi K^T + q_lo K^T) * scale, q = q_hi + q_lo in f16 (so q
//           keeps ~22 bits; K is the cache's f16), rows past n_ctx -inf;
//   softmax m = row max, p = exp(s - m), l = sum of p (8 lanes x 8 columns,
//           then a fixed butterfly), p = p_hi + p_lo in f16;
//   output  o = p_hi V + p_lo V (V: the first kv_lora values of each row).
// One block per (token, chunk) in decode (partials, folded by
// k_mla_combine) or per token in prompts (chunks folded in the block): the
// per-chunk code is the same, so a token's bits never depend on the batch.
#define TC_ROWS 32 // heads per block, padded to two m16 tiles
#define TC_PAD 8   // halves of padding per staged row (bank spread)
#define TC_L 512   // kv_lora this kernel is built for (8 warps x 64 columns)
#define TC_STAGE 6 // cache loads in flight per thread while staging a chunk

static bool s_tc_on;

static size_t s_tc_smem(int d_kv) {
    return sizeof(__half) * (size_t)CH * (size_t)(d_kv + TC_PAD) +
           sizeof(float) * TC_ROWS * CH + 2 * sizeof(__half) * TC_ROWS * (CH + TC_PAD) +
           sizeof(float) * 6 * TC_ROWS;
}

static bool s_tc_ok(const mesh_cu_mla_t *a) {
    return MESH_GPU_CUDA && s_tc_on && a->cache_type == 1 && a->n_head <= TC_ROWS &&
           a->kv_lora == TC_L && a->d_kv % 16 == 0 && a->d_kv > TC_L &&
           s_tc_smem(a->d_kv) <= (size_t)s_smem_optin;
}

static __device__ __forceinline__ void s_mma_f16(float c[4], const uint32_t a[4], uint32_t b0,
                                                 uint32_t b1) {
#if MESH_GPU_CUDA && defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "
                 "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#else
    (void)c, (void)a, (void)b0, (void)b1; // never launched: s_tc_ok refuses
#endif
}

static __device__ __forceinline__ void s_ldm_trans(const __half *p, uint32_t &b0, uint32_t &b1) {
#if MESH_GPU_CUDA && defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    const unsigned addr = (unsigned)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0,%1}, [%2];\n"
                 : "=r"(b0), "=r"(b1)
                 : "r"(addr));
#else
    (void)p;
    b0 = b1 = 0;
#endif
}

static __device__ __forceinline__ uint32_t s_pack2(__half lo, __half hi) {
    return (uint32_t)__half_as_ushort(lo) | ((uint32_t)__half_as_ushort(hi) << 16);
}

// Two floats as f16 hi and lo parts, packed.
static __device__ __forceinline__ void s_split2(float2 x, uint32_t &hi, uint32_t &lo) {
    const __half h0 = __float2half_rn(x.x), h1 = __float2half_rn(x.y);
    const __half l0 = __float2half_rn(__fsub_rn(x.x, __half2float(h0)));
    const __half l1 = __float2half_rn(__fsub_rn(x.y, __half2float(h1)));
    hi = s_pack2(h0, h1);
    lo = s_pack2(l0, l1);
}

// Zeroes a warp's 32 x 64 accumulator tile (two m-tiles, eight n-tiles).
static __device__ __forceinline__ void s_zero_acc(float (&o)[2][8][4]) {
#pragma unroll
    for (int m = 0; m < 2; m++)
#pragma unroll
        for (int n = 0; n < 8; n++)
#pragma unroll
            for (int e = 0; e < 4; e++)
                o[m][n][e] = 0.0f;
}

__global__ void __launch_bounds__(256) k_mla_tc(mesh_cu_mla_t a) {
    mesh_pdl_begin();
    extern __shared__ float sm[];
    const int D = a.d_kv, H = a.n_head, DP = D + TC_PAD, PP = CH + TC_PAD;
    __half *Ks = (__half *)sm;
    float *S = (float *)(Ks + (size_t)CH * DP);
    __half *Ph = (__half *)(S + TC_ROWS * CH), *Pl = Ph + TC_ROWS * PP;
    float *mrow = (float *)(Pl + TC_ROWS * PP), *lrow = mrow + TC_ROWS, *ma = lrow + TC_ROWS,
          *la = ma + TC_ROWS, *cA = la + TC_ROWS, *cB = cA + TC_ROWS;
    const int t = blockIdx.x, tid = threadIdx.x, w = tid >> 5, lane = tid & 31, g = lane >> 2,
              tq = lane & 3;
    const int n_ctx = a.toks[t].n_ctx;
    const bool split = a.n_split > 1;
    int c0, c1;
    if (!s_chunk_range(a, n_ctx, &c0, &c1))
        return;
    const int32_t *tab = a.tables + a.toks[t].table_off;
    const float *q = a.q + (int64_t)t * H * D;
    if (tid < TC_ROWS) {
        ma[tid] = -INFINITY;
        la[tid] = 0.0f;
    }
    float oa[2][8][4];
    s_zero_acc(oa);
    const int vpr = D / 8; // 16-byte words per cache row
    for (int ch = c0; ch < c1; ch++) {
        const int r0 = ch * CH, nval = min(CH, n_ctx - r0);
        // 1. stage the chunk's rows (zeros past the context), TC_STAGE
        //    16-byte loads in flight per thread before any is stored
        for (int i0 = tid; i0 < CH * vpr; i0 += 256 * TC_STAGE) {
            uint4 u[TC_STAGE];
#pragma unroll
            for (int k = 0; k < TC_STAGE; k++) {
                const int i = i0 + 256 * k, j = i / vpr, c = i % vpr;
                u[k] = make_uint4(0u, 0u, 0u, 0u);
                if (i < CH * vpr && j < nval) {
                    const int s = r0 + j;
                    const size_t idx =
                        ((size_t)tab[s / a.block_tokens] * (size_t)a.n_layer + (size_t)a.layer) *
                            (size_t)a.block_tokens + (size_t)(s % a.block_tokens);
                    u[k] = ((const uint4 *)((const __half *)a.cache + idx * (size_t)D))[c];
                }
            }
#pragma unroll
            for (int k = 0; k < TC_STAGE; k++) {
                const int i = i0 + 256 * k;
                if (i < CH * vpr)
                    *(uint4 *)(Ks + (size_t)(i / vpr) * DP + 8 * (i % vpr)) = u[k];
            }
        }
        __syncthreads();
        // 2. scores: warp w takes m-tile w&1 and columns 16*(w>>1) .. +16
        {
            const int mt = w & 1, n0 = 16 * (w >> 1);
            const int h0 = 16 * mt + g, h1 = h0 + 8;
            const float *q0 = q + (int64_t)(h0 < H ? h0 : 0) * D;
            const float *q1 = q + (int64_t)(h1 < H ? h1 : 0) * D;
            float c[2][4] = {{0.0f, 0.0f, 0.0f, 0.0f}, {0.0f, 0.0f, 0.0f, 0.0f}};
            const float2 z = make_float2(0.0f, 0.0f);
            // unrolled so several q loads are in flight (q is read from
            // global memory here; a decode block runs this once)
#pragma unroll 4
            for (int k0 = 0; k0 < D; k0 += 16) {
                const float2 x00 = h0 < H ? *(const float2 *)(q0 + k0 + 2 * tq) : z;
                const float2 x10 = h1 < H ? *(const float2 *)(q1 + k0 + 2 * tq) : z;
                const float2 x01 = h0 < H ? *(const float2 *)(q0 + k0 + 8 + 2 * tq) : z;
                const float2 x11 = h1 < H ? *(const float2 *)(q1 + k0 + 8 + 2 * tq) : z;
                uint32_t ah[4], al[4];
                s_split2(x00, ah[0], al[0]);
                s_split2(x10, ah[1], al[1]);
                s_split2(x01, ah[2], al[2]);
                s_split2(x11, ah[3], al[3]);
#pragma unroll
                for (int nt = 0; nt < 2; nt++) {
                    const __half *kr = Ks + (size_t)(n0 + 8 * nt + g) * DP + k0 + 2 * tq;
                    const uint32_t b0 = *(const uint32_t *)kr, b1 = *(const uint32_t *)(kr + 8);
                    s_mma_f16(c[nt], ah, b0, b1);
                    s_mma_f16(c[nt], al, b0, b1);
                }
            }
#pragma unroll
            for (int nt = 0; nt < 2; nt++)
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    const int row = 16 * mt + g + 8 * (e >> 1), col = n0 + 8 * nt + 2 * tq + (e & 1);
                    S[row * CH + col] = col < nval ? c[nt][e] * a.scale : -INFINITY;
                }
        }
        __syncthreads();
        // 3. softmax of the chunk: 8 threads per row, 8 columns each
        {
            const int row = tid >> 3, p8 = tid & 7;
            float v[8], m = -INFINITY;
#pragma unroll
            for (int i = 0; i < 8; i++) {
                v[i] = S[row * CH + 8 * p8 + i];
                m = fmaxf(m, v[i]);
            }
            m = fmaxf(m, s_shfl_xor(m, 1));
            m = fmaxf(m, s_shfl_xor(m, 2));
            m = fmaxf(m, s_shfl_xor(m, 4));
            float l = 0.0f;
#pragma unroll
            for (int i = 0; i < 8; i++) {
                const float p = expf(__fsub_rn(v[i], m));
                l = __fadd_rn(l, p);
                const __half hi = __float2half_rn(p);
                Ph[row * PP + 8 * p8 + i] = hi;
                Pl[row * PP + 8 * p8 + i] = __float2half_rn(__fsub_rn(p, __half2float(hi)));
            }
            l = __fadd_rn(l, s_shfl_xor(l, 1));
            l = __fadd_rn(l, s_shfl_xor(l, 2));
            l = __fadd_rn(l, s_shfl_xor(l, 4));
            if (p8 == 0) {
                mrow[row] = m;
                lrow[row] = l;
                if (!split) { // fold coefficients (as k_mla_combine)
                    float mn, ca, cb;
                    s_merge_coef(ma[row], m, &mn, &ca, &cb);
                    la[row] = s_merge(la[row], ca, l, cb);
                    ma[row] = mn;
                    cA[row] = ca;
                    cB[row] = cb;
                }
            }
        }
        __syncthreads();
        // 4. o = p V: warp w takes output columns 64w .. 64w+63, both m-tiles
        {
            float o[2][8][4];
            s_zero_acc(o);
            const int d0 = 64 * w;
#pragma unroll
            for (int kk = 0; kk < CH; kk += 16) {
                uint32_t ah[2][4], al[2][4];
#pragma unroll
                for (int mt = 0; mt < 2; mt++) {
                    const int ra = 16 * mt + g;
                    ah[mt][0] = *(const uint32_t *)(Ph + ra * PP + kk + 2 * tq);
                    ah[mt][1] = *(const uint32_t *)(Ph + (ra + 8) * PP + kk + 2 * tq);
                    ah[mt][2] = *(const uint32_t *)(Ph + ra * PP + kk + 8 + 2 * tq);
                    ah[mt][3] = *(const uint32_t *)(Ph + (ra + 8) * PP + kk + 8 + 2 * tq);
                    al[mt][0] = *(const uint32_t *)(Pl + ra * PP + kk + 2 * tq);
                    al[mt][1] = *(const uint32_t *)(Pl + (ra + 8) * PP + kk + 2 * tq);
                    al[mt][2] = *(const uint32_t *)(Pl + ra * PP + kk + 8 + 2 * tq);
                    al[mt][3] = *(const uint32_t *)(Pl + (ra + 8) * PP + kk + 8 + 2 * tq);
                }
#pragma unroll
                for (int nt = 0; nt < 8; nt++) {
                    uint32_t b0, b1;
                    s_ldm_trans(Ks + (size_t)(kk + (lane & 15)) * DP + d0 + 8 * nt, b0, b1);
#pragma unroll
                    for (int mt = 0; mt < 2; mt++) {
                        s_mma_f16(o[mt][nt], ah[mt], b0, b1);
                        s_mma_f16(o[mt][nt], al[mt], b0, b1);
                    }
                }
            }
            if (split) {
                // part layout: [t][chunk][h][L + 2] (o, then max, sum)
                float *part = a.part + (((int64_t)t * a.n_split + ch) * H) * (TC_L + 2);
#pragma unroll
                for (int mt = 0; mt < 2; mt++)
#pragma unroll
                    for (int nt = 0; nt < 8; nt++)
#pragma unroll
                        for (int e = 0; e < 4; e++) {
                            const int h = 16 * mt + g + 8 * (e >> 1);
                            const int d = d0 + 8 * nt + 2 * tq + (e & 1);
                            if (h < H)
                                part[(int64_t)h * (TC_L + 2) + d] = o[mt][nt][e];
                        }
                if (tid < H) {
                    part[(int64_t)tid * (TC_L + 2) + TC_L] = mrow[tid];
                    part[(int64_t)tid * (TC_L + 2) + TC_L + 1] = lrow[tid];
                }
            } else {
#pragma unroll
                for (int mt = 0; mt < 2; mt++)
#pragma unroll
                    for (int nt = 0; nt < 8; nt++)
#pragma unroll
                        for (int e = 0; e < 4; e++) {
                            const int h = 16 * mt + g + 8 * (e >> 1);
                            oa[mt][nt][e] = s_merge(oa[mt][nt][e], cA[h], o[mt][nt][e], cB[h]);
                        }
            }
        }
        __syncthreads(); // the next chunk overwrites Ks, S, P and the coefficients
    }
    if (!split) {
        float *out = a.out + (int64_t)t * H * TC_L;
#pragma unroll
        for (int mt = 0; mt < 2; mt++)
#pragma unroll
            for (int nt = 0; nt < 8; nt++)
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    const int h = 16 * mt + g + 8 * (e >> 1);
                    const int d = 64 * w + 8 * nt + 2 * tq + (e & 1);
                    if (h < H) {
                        const float l = la[h];
                        out[(int64_t)h * TC_L + d] = l > 0.0f ? __fdiv_rn(oa[mt][nt][e], l) : 0.0f;
                    }
                }
    }
}

// Chunks a token may have: the pool's capacity in tokens, in chunks.
static int s_max_chunks(size_t cache_bytes, int n_layer, int d_kv, uint32_t cache_type) {
    size_t row = (size_t)n_layer * (size_t)d_kv * (cache_type == 1 ? 2 : 4);
    size_t toks = row ? cache_bytes / row : 0;
    return (int)((toks + CH - 1) / CH);
}

int mesh_cu_mla_splits(int n, size_t cache_bytes, int n_layer, int d_kv, uint32_t cache_type) {
    int mc = s_max_chunks(cache_bytes, n_layer, d_kv, cache_type);
    // One block per chunk while the partials stay small (decode); else per token.
    return mc > 1 && (int64_t)n * mc <= 2048 ? mc : 1;
}

size_t mesh_cu_mla_part_floats(int n, int n_split, int n_head, int kv_lora) {
    return n_split <= 1 ? 0 : (size_t)n * (size_t)n_split * (size_t)n_head * (size_t)(kv_lora + 2);
}

int mesh_cu_mla_setup(void) {
    int dev = 0, v = 0;
    if (gpuGetDevice(&dev) != gpuSuccess)
        return MESH_EBACKEND;
    if (gpuDeviceGetAttribute(&v, gpuDevAttrMaxSharedMemoryPerBlockOptin, dev) != gpuSuccess)
        return MESH_EBACKEND;
    s_smem_optin = v;
    if (gpuFuncSetAttribute(k_mla, gpuFuncAttributeMaxDynamicSharedMemorySize, v) != gpuSuccess)
        return MESH_EBACKEND;
    if (gpuFuncSetAttribute(k_mla_tc, gpuFuncAttributeMaxDynamicSharedMemorySize, v) != gpuSuccess)
        return MESH_EBACKEND;
    int major = 0;
    if (gpuDeviceGetAttribute(&major, gpuDevAttrComputeCapabilityMajor, dev) != gpuSuccess)
        return MESH_EBACKEND;
    s_tc_on = major >= 8 && mesh_cu_tc_env();
    return 0;
}

int mesh_cu_mla_attn(gpuStream_t s, const mesh_cu_mla_t *a) {
    if (a->n <= 0)
        return 0;
    size_t smem = s_smem_bytes(a->n_head < HG ? a->n_head : HG, a->d_kv, a->kv_lora);
    if (smem > (size_t)s_smem_optin)
        return MESH_EUNSUPPORTED;
    if (s_tc_ok(a)) {
        dim3 grid(a->n, a->n_split > 1 ? a->n_split : 1, 1);
        mesh_launch(k_mla_tc, grid, 256, s_tc_smem(a->d_kv), s, *a);
    } else {
        dim3 grid(a->n, a->n_split > 1 ? a->n_split : 1, (a->n_head + HG - 1) / HG);
        mesh_launch(k_mla, grid, NTH, smem, s, *a);
    }
    if (a->n_split > 1)
        mesh_launch(k_mla_combine, dim3(a->n, a->n_head, (a->kv_lora + CB_COLS - 1) / CB_COLS),
                    CB_COLS + MESH_WARP, sizeof(float) * (4 * (size_t)a->n_split + 1), s, *a);
    return 0;
}
