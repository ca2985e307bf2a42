// SPDX-License-Identifier: MIT
// Quantized matrix products on int8 tensor cores (mma.sync, sm_80 and up),
// for the weight types GLM files are made of: Q8_0, Q5_0, Q4_K, Q6_K.
//
// Activations are quantized to 8 bits per 32-element block first
// (k_quant_x: d = amax / 127, q = rint(x / d), and s = d * sum(q) for the
// types with a min), then every 32-element block of a weight row and a token
// gives an exact integer dot on the tensor cores, and the float work is the
// same short sequence for every (row, token), whatever the batch:
//
//   block b:  Q8_0, Q5_0:  acc = fma(float(I), dw * dx, acc)
//             Q6_K:        acc = fma(float(sc0 * I0 + sc1 * I1), d * dx, acc)
//                          (two 16-element halves with their own scales)
//             Q4_K:        acc = fma(float(I * sc), d * dx, acc)
//                          acc = fma(-(dmin * m), s, acc)
//   slices:   the K/32 blocks split into S = min(8, K/32) contiguous slices
//             (slice j: blocks [j*nb/S, (j+1)*nb/S)), each summed from 0 in
//             block order; y = ((p0 + p1) + p2) + ... (a left fold).
//
// Two kernels compute exactly that: k_mmq_dec for batches of up to 8 tokens
// (one 16-row tile per block, its 8 warps one slice each, so decode has
// enough loads in flight; it quantizes x in registers, no extra launch), and k_mmq_pre for prompts (64 rows x 64 tokens per
// block, each warp all of K). Which one runs depends on the batch; what a
// token gets does not, so the engine's "a batch of N == each alone" holds
// bit for bit (test_backend_ops checks it). The choice between this file and
// k_mv (matmul.cu) depends on the weight alone.
//
// Integer ranges: |I| <= 32*127*127 (Q8_0); Q6_K's sc*I sums stay below
// 2^24 and Q4_K's I*sc below 4e6, so every float(int) is exact.
#include "cuda_impl.h"
#include "quant_dev.cuh"

#include <stdlib.h>
#include <string.h>

extern "C" {
#include "mesh_err.h"
}

#define MQ_SLICES 8
#define MQ_DEC_TOK 8 // tokens per k_mmq_dec call (one n-tile)

static int s_arch_major; // of the device in use (mesh_cu_mmq_set_arch)

bool mesh_cu_tc_env(void) {
    const char *e = getenv("MESH_CUDA_MMQ");
    return !(e && !strcmp(e, "0"));
}

void mesh_cu_mmq_set_arch(int major) {
    s_arch_major = mesh_cu_tc_env() ? major : 0;
}

static bool s_type_ok(int t) {
    return t == CU_Q8_0 || t == CU_Q5_0 || t == CU_Q4_K || t == CU_Q6_K;
}

bool mesh_cu_mmq_ok(const mesh_cu_mm_t *m) {
    if (!MESH_GPU_CUDA || s_arch_major < 8 || !s_type_ok(m->type))
        return false;
    if (m->K <= 0 || m->K % 32 || m->xm % 32 || m->xm < 0)
        return false;
    return true;
}

// Elements of each x row the family reads (its groups' windows).
static int64_t s_span(const mesh_cu_mm_t *m) {
    return m->xm ? (int64_t)(m->n_group - 1) * m->xm + m->K : m->K;
}
static int s_nsrc(const mesh_cu_mm_t *m) {
    return m->n_src > 0 ? m->n_src : m->n;
}
static size_t s_al256(size_t b) {
    return (b + 255) & ~(size_t)255;
}

// Layout of one family's quantized x: q bytes [n_src][span] (each 32-block
// stored as k 0-3,16-19,4-7,20-23,...: the 8 bytes a lane feeds the tensor
// cores are adjacent), then d [n_src][span/32] and s [n_src][span/32].
typedef struct {
    size_t q, d, s, total;
} s_xq_layout_t;
static s_xq_layout_t s_xq_layout(const mesh_cu_mm_t *m) {
    s_xq_layout_t l;
    const size_t n = (size_t)s_nsrc(m), sp = (size_t)s_span(m);
    l.q = 0;
    l.d = s_al256(n * sp);
    l.s = l.d + s_al256(4 * n * (sp / 32));
    l.total = l.s + s_al256(4 * n * (sp / 32));
    return l;
}

size_t mesh_cu_mmq_scratch(const mesh_cu_mm_t *m) {
    return mesh_cu_mmq_ok(m) ? s_xq_layout(m).total : 0;
}

// ---- activation quantization ----
typedef struct {
    const float *x;
    int64_t xs;
    int64_t span;
    int n;
    int8_t *q;
    float *d, *s;
} s_qx_t;
typedef struct {
    s_qx_t f[2];
    int nf;
} s_qx_pair_t;

// One warp per 32-element block: lane l holds element l.
static __device__ __forceinline__ void s_quant_block(const s_qx_t &f, int row, int64_t b,
                                                     int64_t nb, int l) {
    const float v = f.x[(int64_t)row * f.xs + 32 * b + l];
    const float amax = mesh_warp_max(fabsf(v));
    const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    int q = (int)rintf(v * id);
    q = q < -127 ? -127 : q > 127 ? 127 : q;
    int sum = q;
    for (int m = 16; m > 0; m >>= 1)
        sum += s_shfl_xor_i(sum, m);
    // element l -> position: k 4t..4t+3 at 8t, k 16+4t.. at 8t+4
    const int pos = l < 16 ? 8 * (l >> 2) + (l & 3) : 8 * ((l - 16) >> 2) + 4 + (l & 3);
    f.q[(int64_t)row * f.span + 32 * b + pos] = (int8_t)q;
    if (l == 0) {
        f.d[(int64_t)row * nb + b] = d;
        f.s[(int64_t)row * nb + b] = __fmul_rn(d, (float)sum);
    }
}

__global__ void __launch_bounds__(256) k_quant_x(s_qx_pair_t P) {
    const s_qx_t &f = P.f[blockIdx.z];
    const int64_t b = (int64_t)blockIdx.x * 8 + threadIdx.y;
    const int64_t nb = f.span / 32;
    if (b >= nb)
        return;
    const int l = threadIdx.x;
    for (int row = blockIdx.y; row < f.n; row += gridDim.y)
        s_quant_block(f, row, b, nb, l);
}

// ---- tensor-core primitives ----
static __device__ __forceinline__ void s_mma32(const uint32_t a[4], uint32_t b0, uint32_t b1,
                                               int c[4]) {
#if MESH_GPU_CUDA && defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm volatile("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 "
                 "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%10,%10,%10,%10};\n"
                 : "=r"(c[0]), "=r"(c[1]), "=r"(c[2]), "=r"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1), "r"(0));
#else
    (void)a, (void)b0, (void)b1;
    c[0] = c[1] = c[2] = c[3] = 0; // never launched: mesh_cu_mmq_ok refuses
#endif
}
static __device__ __forceinline__ void s_mma16(uint32_t a0, uint32_t a1, uint32_t b0, int c[4]) {
#if MESH_GPU_CUDA && defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm volatile("mma.sync.aligned.m16n8k16.row.col.s32.s8.s8.s32 "
                 "{%0,%1,%2,%3}, {%4,%5}, {%6}, {%7,%7,%7,%7};\n"
                 : "=r"(c[0]), "=r"(c[1]), "=r"(c[2]), "=r"(c[3])
                 : "r"(a0), "r"(a1), "r"(b0), "r"(0));
#else
    (void)a0, (void)a1, (void)b0;
    c[0] = c[1] = c[2] = c[3] = 0;
#endif
}

static __device__ __forceinline__ uint32_t s_w32(const uint8_t *p, bool a4) {
    if (a4)
        return *(const uint32_t *)p;
    const uint16_t *h = (const uint16_t *)p;
    return (uint32_t)h[0] | ((uint32_t)h[1] << 16);
}

// Per-row float factors of one 32-element block.
typedef struct {
    float f;   // d (Q4_K: d; others: the block's d)
    float mn;  // Q4_K: dmin * m
    int sc0, sc1; // Q4_K: sc (sc0); Q6_K: the halves' scales
} s_rowf_t;

// Weight codes of block b of a row for this lane (k 4t..4t+3 in w[0],
// k 16+4t..16+4t+3 in w[1]) and the row's factors.
template <int T>
static __device__ __forceinline__ void s_wblock(const uint8_t *row, int b, int t, uint32_t w[2],
                                                s_rowf_t &rf) {
    if (T == CU_Q8_0) {
        const uint8_t *p = row + (size_t)b * 34;
        rf.f = s_h2f(s_ld16(p));
        w[0] = s_w32(p + 2 + 4 * t, false);
        w[1] = s_w32(p + 18 + 4 * t, false);
    } else if (T == CU_Q5_0) {
        const uint8_t *p = row + (size_t)b * 22;
        rf.f = s_h2f(s_ld16(p));
        const uint32_t qh = s_w32(p + 2, false);
        const uint32_t qs = s_w32(p + 6 + 4 * t, false);
        const uint32_t h0 = (qh >> (4 * t)) & 0xF, h1 = (qh >> (16 + 4 * t)) & 0xF;
        const uint32_t s0 = ((h0 & 1) << 4) | ((h0 & 2) << 11) | ((h0 & 4) << 18) | ((h0 & 8) << 25);
        const uint32_t s1 = ((h1 & 1) << 4) | ((h1 & 2) << 11) | ((h1 & 4) << 18) | ((h1 & 8) << 25);
        w[0] = __vsub4((qs & 0x0F0F0F0Fu) | s0, 0x10101010u);
        w[1] = __vsub4(((qs >> 4) & 0x0F0F0F0Fu) | s1, 0x10101010u);
    } else if (T == CU_Q4_K) {
        const uint8_t *p = row + (size_t)(b >> 3) * 144;
        const int sub = b & 7;
        const uint32_t dm = *(const uint32_t *)p;
        rf.f = s_h2f((uint16_t)(dm & 0xffff));
        float sc, m;
        s_k_scale_min(sub, p + 4, &sc, &m);
        rf.sc0 = (int)sc;
        rf.mn = __fmul_rn(s_h2f((uint16_t)(dm >> 16)), m);
        const uint8_t *qs = p + 16 + 32 * (sub >> 1);
        const int sh = 4 * (sub & 1);
        w[0] = (*(const uint32_t *)(qs + 4 * t) >> sh) & 0x0F0F0F0Fu;
        w[1] = (*(const uint32_t *)(qs + 16 + 4 * t) >> sh) & 0x0F0F0F0Fu;
    } else { // CU_Q6_K
        const uint8_t *p = row + (size_t)(b >> 3) * 210;
        const int sub = b & 7, h = sub >> 2, qd = sub & 3;
        rf.f = s_h2f(s_ld16(p + 208));
        rf.sc0 = (int)(int8_t)p[192 + 2 * sub];
        rf.sc1 = (int)(int8_t)p[192 + 2 * sub + 1];
        const uint8_t *ql = p + 64 * h + 32 * (qd & 1), *qh = p + 128 + 32 * h;
        const int sl = 4 * (qd >> 1), shh = 2 * qd;
#pragma unroll
        for (int i = 0; i < 2; i++) {
            const uint32_t lo = (s_w32(ql + 16 * i + 4 * t, false) >> sl) & 0x0F0F0F0Fu;
            const uint32_t hi = (s_w32(qh + 16 * i + 4 * t, false) >> shh) & 0x03030303u;
            w[i] = __vsub4(lo | (hi << 4), 0x20202020u);
        }
    }
}

// A fragment of rows (g, g+8) from the two rows' codes.
template <int T>
static __device__ __forceinline__ void s_dot(const uint32_t wa[2], const uint32_t wb[2],
                                             const s_rowf_t &fa, const s_rowf_t &fb, uint32_t b0,
                                             uint32_t b1, int c[4]) {
    if (T == CU_Q6_K) {
        int lo[4], hi[4];
        s_mma16(wa[0], wb[0], b0, lo);
        s_mma16(wa[1], wb[1], b1, hi);
        c[0] = fa.sc0 * lo[0] + fa.sc1 * hi[0];
        c[1] = fa.sc0 * lo[1] + fa.sc1 * hi[1];
        c[2] = fb.sc0 * lo[2] + fb.sc1 * hi[2];
        c[3] = fb.sc0 * lo[3] + fb.sc1 * hi[3];
    } else {
        const uint32_t a[4] = {wa[0], wb[0], wa[1], wb[1]};
        s_mma32(a, b0, b1, c);
        if (T == CU_Q4_K) {
            c[0] *= fa.sc0;
            c[1] *= fa.sc0;
            c[2] *= fb.sc0;
            c[3] *= fb.sc0;
        }
    }
}

// The float update of one block for one output (the contract above).
template <int T>
static __device__ __forceinline__ float s_upd(float acc, int c, const s_rowf_t &rf, float dx,
                                              float sx) {
    acc = fmaf((float)c, __fmul_rn(rf.f, dx), acc);
    if (T == CU_Q4_K)
        acc = fmaf(-rf.mn, sx, acc);
    return acc;
}

static __device__ __forceinline__ float s_silu(float x) {
    return x / (1.0f + __expf(-x));
}

static __device__ __forceinline__ int s_slice_lo(int j, int nb, int S) {
    return (int)(((int64_t)j * nb) / S);
}

// Where a family's token p of group g reads its quantized x.
typedef struct {
    const int8_t *q;
    const float *d, *s;
    int64_t span, nbs; // bytes per row of q, blocks per row of d/s
} s_xsrc_t;

typedef struct {
    mesh_cu_mm_t op[2];
    s_xsrc_t xs[2];
    int g0;
} s_mq_pair_t;

// Resolves group slot z to (op, g, p0, cnt); false when the slot is empty.
static __device__ __forceinline__ bool s_group(const s_mq_pair_t &P, int z, int &oi, int &g,
                                               int &p0, int &cnt) {
    oi = z < P.g0 ? 0 : 1;
    const mesh_cu_mm_t &o = P.op[oi];
    g = oi ? z - P.g0 : z;
    if (o.act) {
        if (g >= o.act[0])
            return false;
        g = o.act[1 + g];
    }
    p0 = 0;
    cnt = o.n;
    if (o.start) {
        p0 = o.start[g];
        cnt = o.start[g + 1] - p0;
    }
    return cnt > 0;
}

// Block b of a token's f32 row xr quantized in registers, exactly as
// k_quant_x does it (max and integer sum are exact in any order): the four
// lanes of a token (t = 0..3) each hold 8 of its 32 elements, in B-fragment
// order. Used by the decode kernel, which then needs no quantize launch.
static __device__ __forceinline__ void s_qx_lane(const float *xr, int b, int t, uint32_t &b0,
                                                 uint32_t &b1, float &d, float &sx) {
    const float *p = xr + 32 * b;
    float v[8];
#pragma unroll
    for (int i = 0; i < 4; i++) {
        v[i] = p[4 * t + i];
        v[4 + i] = p[16 + 4 * t + i];
    }
    float am = 0.0f;
#pragma unroll
    for (int i = 0; i < 8; i++)
        am = fmaxf(am, fabsf(v[i]));
    am = fmaxf(am, s_shfl_xor(am, 1));
    am = fmaxf(am, s_shfl_xor(am, 2));
    d = am / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    int sum = 0;
    uint32_t w[2] = {0u, 0u};
#pragma unroll
    for (int i = 0; i < 8; i++) {
        int q = (int)rintf(v[i] * id);
        q = q < -127 ? -127 : q > 127 ? 127 : q;
        sum += q;
        w[i >> 2] |= ((uint32_t)q & 0xffu) << (8 * (i & 3));
    }
    sum += s_shfl_xor_i(sum, 1);
    sum += s_shfl_xor_i(sum, 2);
    b0 = w[0];
    b1 = w[1];
    sx = __fmul_rn(d, (float)sum);
}

// One slice of a 16-row tile for one 8-token tile: integer mma per block,
// float updates into acc (4 outputs per lane: rows g, g, g+8, g+8 and
// tokens 2t, 2t+1, 2t, 2t+1 of the tile).
template <int T, bool FUSE>
static __device__ __forceinline__ void s_slice8(const mesh_cu_mm_t &o, const s_xsrc_t &X,
                                                const uint8_t *ra, const uint8_t *rb,
                                                const uint8_t *ra2, const uint8_t *rb2, int b_lo,
                                                int b_hi, const float *xf_lane, float acc[4],
                                                float acc2[4]) {
    const int lane = threadIdx.x, t = lane & 3;
    (void)o;
    (void)X;
#pragma unroll 4
    for (int b = b_lo; b < b_hi; b++) {
        uint2 bx;
        float dq, sq;
        s_qx_lane(xf_lane, b, t, bx.x, bx.y, dq, sq);
        // epilogue tokens 2t and 2t+1 live in lanes 8t and 8t+4
        const float dx0 = s_shfl(dq, 8 * t), dx1 = s_shfl(dq, 8 * t + 4);
        float sx0 = 0.0f, sx1 = 0.0f;
        if (T == CU_Q4_K) {
            sx0 = s_shfl(sq, 8 * t);
            sx1 = s_shfl(sq, 8 * t + 4);
        }
        uint32_t wa[2], wb[2];
        s_rowf_t fa, fb;
        s_wblock<T>(ra, b, t, wa, fa);
        s_wblock<T>(rb, b, t, wb, fb);
        int c[4];
        s_dot<T>(wa, wb, fa, fb, bx.x, bx.y, c);
        acc[0] = s_upd<T>(acc[0], c[0], fa, dx0, sx0);
        acc[1] = s_upd<T>(acc[1], c[1], fa, dx1, sx1);
        acc[2] = s_upd<T>(acc[2], c[2], fb, dx0, sx0);
        acc[3] = s_upd<T>(acc[3], c[3], fb, dx1, sx1);
        if (FUSE) {
            s_wblock<T>(ra2, b, t, wa, fa);
            s_wblock<T>(rb2, b, t, wb, fb);
            s_dot<T>(wa, wb, fa, fb, bx.x, bx.y, c);
            acc2[0] = s_upd<T>(acc2[0], c[0], fa, dx0, sx0);
            acc2[1] = s_upd<T>(acc2[1], c[1], fa, dx1, sx1);
            acc2[2] = s_upd<T>(acc2[2], c[2], fb, dx0, sx0);
            acc2[3] = s_upd<T>(acc2[3], c[3], fb, dx1, sx1);
        }
    }
}

// Row pointers of a lane's two rows (clamped to the last row: the extra
// rows' results are never stored).
static __device__ __forceinline__ const uint8_t *s_rowp(const uint8_t *w, const mesh_cu_mm_t &o,
                                                        int g, int r) {
    r = r < o.rows ? r : o.rows - 1;
    return w + (size_t)(o.m0 + g) * o.nb2 + (size_t)r * o.nb1;
}

// Token p's quantized-x offsets: q bytes and d/s index of its block 0.
static __device__ __forceinline__ void s_tok(const mesh_cu_mm_t &o, const s_xsrc_t &X, int g,
                                             int p, int64_t &qoff, int64_t &boff) {
    const int in = o.idx ? o.idx[p] : p;
    qoff = (int64_t)in * X.span + (int64_t)g * o.xm;
    boff = (int64_t)in * X.nbs + (int64_t)g * (o.xm / 32);
}

// ---- decode: up to 8 tokens, a 16-row tile per block, a slice per warp ----
template <int T, bool FUSE>
__global__ void __launch_bounds__(256) k_mmq_dec(s_mq_pair_t P) {
    int oi, g, p0, cnt;
    if (!s_group(P, blockIdx.z, oi, g, p0, cnt))
        return;
    const mesh_cu_mm_t &o = P.op[oi];
    const s_xsrc_t &X = P.xs[oi];
    const int r0 = blockIdx.x * 16;
    if (r0 >= o.rows)
        return;
    const int lane = threadIdx.x, w = threadIdx.y, gi = lane >> 2, t = lane & 3;
    const int nb = o.K / 32, S = nb < MQ_SLICES ? nb : MQ_SLICES;
    __shared__ float part[MQ_SLICES][FUSE ? 2 : 1][16][MQ_DEC_TOK];
    if (w < S) {
        // B operand: token gi of the tile (clamped); epilogue: tokens 2t, 2t+1
        const int tb = gi < cnt ? gi : cnt - 1;
        const int in = o.idx ? o.idx[p0 + tb] : p0 + tb;
        const float *xf_lane = o.x + (int64_t)in * o.xs + (int64_t)g * o.xm;
        const uint8_t *ra = s_rowp(o.w, o, g, r0 + gi), *rb = s_rowp(o.w, o, g, r0 + gi + 8);
        const uint8_t *ra2 = FUSE ? s_rowp(o.w2, o, g, r0 + gi) : nullptr;
        const uint8_t *rb2 = FUSE ? s_rowp(o.w2, o, g, r0 + gi + 8) : nullptr;
        float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f}, acc2[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        s_slice8<T, FUSE>(o, X, ra, rb, ra2, rb2, s_slice_lo(w, nb, S), s_slice_lo(w + 1, nb, S),
                          xf_lane, acc, acc2);
#pragma unroll
        for (int e = 0; e < 4; e++) {
            const int rr = gi + (e >> 1) * 8, tt = 2 * t + (e & 1);
            part[w][0][rr][tt] = acc[e];
            if (FUSE)
                part[w][FUSE ? 1 : 0][rr][tt] = acc2[e];
        }
    }
    __syncthreads();
    const int i = threadIdx.y * 32 + threadIdx.x;
    if (i < 16 * MQ_DEC_TOK) {
        const int rr = i / MQ_DEC_TOK, tt = i % MQ_DEC_TOK;
        if (tt < cnt && r0 + rr < o.rows) {
            float y = part[0][0][rr][tt];
            for (int j = 1; j < S; j++)
                y = y + part[j][0][rr][tt];
            if (FUSE) {
                float y2 = part[0][FUSE ? 1 : 0][rr][tt];
                for (int j = 1; j < S; j++)
                    y2 = y2 + part[j][FUSE ? 1 : 0][rr][tt];
                y = s_silu(y) * y2;
            }
            o.y[(int64_t)(p0 + tt) * o.ys + (int64_t)g * o.ym + r0 + rr] = y;
        }
    }
}

// ---- prompts: 64 rows x (8 * NT8) tokens per block, warps split rows ----
template <int T, bool FUSE, int NT8>
__global__ void __launch_bounds__(128) k_mmq_pre(s_mq_pair_t P) {
    int oi, g, p0, cnt;
    if (!s_group(P, blockIdx.z, oi, g, p0, cnt))
        return;
    const int tok0 = blockIdx.y * 8 * NT8;
    if (tok0 >= cnt)
        return;
    const mesh_cu_mm_t &o = P.op[oi];
    const s_xsrc_t &X = P.xs[oi];
    const int lane = threadIdx.x, gi = lane >> 2, t = lane & 3;
    const int r0 = blockIdx.x * 64 + threadIdx.y * 16;
    if (r0 >= o.rows)
        return;
    const int nb = o.K / 32, S = nb < MQ_SLICES ? nb : MQ_SLICES;
    const uint8_t *ra = s_rowp(o.w, o, g, r0 + gi), *rb = s_rowp(o.w, o, g, r0 + gi + 8);
    const uint8_t *ra2 = FUSE ? s_rowp(o.w2, o, g, r0 + gi) : nullptr;
    const uint8_t *rb2 = FUSE ? s_rowp(o.w2, o, g, r0 + gi + 8) : nullptr;
    // per n-tile: this lane's B token and its two epilogue tokens
    const int8_t *xql[NT8];
    int64_t xo[NT8][2];
#pragma unroll
    for (int j = 0; j < NT8; j++) {
        int tb = tok0 + 8 * j + gi;
        tb = tb < cnt ? tb : cnt - 1;
        int64_t qo, bo;
        s_tok(o, X, g, p0 + tb, qo, bo);
        xql[j] = X.q + qo;
#pragma unroll
        for (int i = 0; i < 2; i++) {
            int te = tok0 + 8 * j + 2 * t + i;
            te = te < cnt ? te : cnt - 1;
            int64_t q2;
            s_tok(o, X, g, p0 + te, q2, xo[j][i]);
        }
    }
    float tot[NT8][4], tot2[FUSE ? NT8 : 1][4];
#pragma unroll
    for (int j = 0; j < NT8; j++)
#pragma unroll
        for (int e = 0; e < 4; e++)
            tot[j][e] = tot2[FUSE ? j : 0][e] = 0.0f;
    for (int s = 0; s < S; s++) {
        float acc[NT8][4], acc2[FUSE ? NT8 : 1][4];
#pragma unroll
        for (int j = 0; j < NT8; j++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                acc[j][e] = 0.0f;
                if (FUSE)
                    acc2[j][e] = 0.0f;
            }
        const int b_hi = s_slice_lo(s + 1, nb, S);
        for (int b = s_slice_lo(s, nb, S); b < b_hi; b++) {
            uint32_t wa[2], wb[2], wa2[2], wb2[2];
            s_rowf_t fa, fb, fa2, fb2;
            s_wblock<T>(ra, b, t, wa, fa);
            s_wblock<T>(rb, b, t, wb, fb);
            if (FUSE) {
                s_wblock<T>(ra2, b, t, wa2, fa2);
                s_wblock<T>(rb2, b, t, wb2, fb2);
            }
#pragma unroll
            for (int j = 0; j < NT8; j++) {
                const uint2 bx = *(const uint2 *)(xql[j] + 32 * b + 8 * t);
                const float dx0 = X.d[xo[j][0] + b], dx1 = X.d[xo[j][1] + b];
                float sx0 = 0.0f, sx1 = 0.0f;
                if (T == CU_Q4_K) {
                    sx0 = X.s[xo[j][0] + b];
                    sx1 = X.s[xo[j][1] + b];
                }
                int c[4];
                s_dot<T>(wa, wb, fa, fb, bx.x, bx.y, c);
                acc[j][0] = s_upd<T>(acc[j][0], c[0], fa, dx0, sx0);
                acc[j][1] = s_upd<T>(acc[j][1], c[1], fa, dx1, sx1);
                acc[j][2] = s_upd<T>(acc[j][2], c[2], fb, dx0, sx0);
                acc[j][3] = s_upd<T>(acc[j][3], c[3], fb, dx1, sx1);
                if (FUSE) {
                    s_dot<T>(wa2, wb2, fa2, fb2, bx.x, bx.y, c);
                    acc2[j][0] = s_upd<T>(acc2[j][0], c[0], fa2, dx0, sx0);
                    acc2[j][1] = s_upd<T>(acc2[j][1], c[1], fa2, dx1, sx1);
                    acc2[j][2] = s_upd<T>(acc2[j][2], c[2], fb2, dx0, sx0);
                    acc2[j][3] = s_upd<T>(acc2[j][3], c[3], fb2, dx1, sx1);
                }
            }
        }
#pragma unroll
        for (int j = 0; j < NT8; j++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                tot[j][e] = s == 0 ? acc[j][e] : tot[j][e] + acc[j][e];
                if (FUSE)
                    tot2[j][e] = s == 0 ? acc2[j][e] : tot2[j][e] + acc2[j][e];
            }
    }
#pragma unroll
    for (int j = 0; j < NT8; j++)
#pragma unroll
        for (int e = 0; e < 4; e++) {
            const int rr = r0 + gi + (e >> 1) * 8, tt = tok0 + 8 * j + 2 * t + (e & 1);
            if (rr < o.rows && tt < cnt) {
                const float y = FUSE ? s_silu(tot[j][e]) * tot2[j][e] : tot[j][e];
                o.y[(int64_t)(p0 + tt) * o.ys + (int64_t)g * o.ym + rr] = y;
            }
        }
}

// Runs GO(T) for the types this file serves (the caller returns
// MESH_EUNSUPPORTED for the rest; mesh_cu_mmq_ok never lets them in).
#define MQ_TYPE_SWITCH(t, GO)                                                                     \
    switch (t) {                                                                                  \
    case CU_Q8_0: GO(CU_Q8_0); break;                                                             \
    case CU_Q5_0: GO(CU_Q5_0); break;                                                             \
    case CU_Q4_K: GO(CU_Q4_K); break;                                                             \
    case CU_Q6_K: GO(CU_Q6_K); break;                                                             \
    default: return MESH_EUNSUPPORTED;                                                            \
    }

static s_qx_t s_qx_of(const mesh_cu_mm_t *m) {
    s_qx_t f;
    const s_xq_layout_t l = s_xq_layout(m);
    f.x = m->x;
    f.xs = m->xs;
    f.span = s_span(m);
    f.n = s_nsrc(m);
    f.q = (int8_t *)(m->xq + l.q);
    f.d = (float *)(m->xq + l.d);
    f.s = (float *)(m->xq + l.s);
    return f;
}

static s_xsrc_t s_xsrc_of(const mesh_cu_mm_t *m) {
    const s_qx_t f = s_qx_of(m);
    s_xsrc_t x;
    x.q = f.q;
    x.d = f.d;
    x.s = f.s;
    x.span = f.span;
    x.nbs = f.span / 32;
    return x;
}

static bool s_same_x(const mesh_cu_mm_t *a, const mesh_cu_mm_t *b) {
    return a->x == b->x && a->xs == b->xs && s_span(a) == s_span(b) && s_nsrc(a) == s_nsrc(b);
}

// a (and b, when given: same type and fusion) with their xq scratch set.
int mesh_cu_mmq2(gpuStream_t s, const mesh_cu_mm_t *a, const mesh_cu_mm_t *b) {
    if (b && b->n_group <= 0)
        b = NULL;
    // 1. quantize the activations (once when both families read the same x)
    s_qx_pair_t Q;
    memset(&Q, 0, sizeof Q);
    Q.f[0] = s_qx_of(a);
    Q.nf = 1;
    mesh_cu_mm_t bb;
    if (b) {
        bb = *b;
        if (s_same_x(a, b))
            bb.xq = a->xq;
        else
            Q.f[Q.nf++] = s_qx_of(b);
    }
    int64_t nbmax = 0, nmax = 0;
    for (int i = 0; i < Q.nf; i++) {
        nbmax = Q.f[i].span / 32 > nbmax ? Q.f[i].span / 32 : nbmax;
        nmax = Q.f[i].n > nmax ? Q.f[i].n : nmax;
    }
    if (nmax <= 0)
        return 0;
    const int nall = b && b->n > a->n ? b->n : a->n;
    if (nall > MQ_DEC_TOK) { // the decode kernel quantizes its x itself
        dim3 qg((unsigned)((nbmax + 7) / 8), (unsigned)(nmax < 65535 ? nmax : 65535),
                (unsigned)Q.nf);
        k_quant_x<<<qg, dim3(32, 8), 0, s>>>(Q);
    }
    // 2. the products
    s_mq_pair_t P;
    memset(&P, 0, sizeof P);
    P.op[0] = *a;
    P.xs[0] = s_xsrc_of(a);
    P.g0 = a->n_group;
    int gz = a->n_group, n = a->n, rows = a->rows;
    if (b) {
        P.op[1] = bb;
        P.xs[1] = s_xsrc_of(&bb);
        gz += b->n_group;
        n = n > b->n ? n : b->n;
        rows = rows > b->rows ? rows : b->rows;
    }
    const bool fuse = a->w2 != nullptr;
    if (n <= MQ_DEC_TOK) {
        dim3 grid((unsigned)((rows + 15) / 16), 1, (unsigned)gz);
        dim3 blk(32, 8);
#define S_GO(T)                                                                                   \
    do {                                                                                          \
        if (fuse)                                                                                 \
            k_mmq_dec<T, true><<<grid, blk, 0, s>>>(P);                                           \
        else                                                                                      \
            k_mmq_dec<T, false><<<grid, blk, 0, s>>>(P);                                          \
    } while (0)
        MQ_TYPE_SWITCH(a->type, S_GO)
#undef S_GO
    } else {
        const int nt = fuse ? 32 : 64;
        dim3 grid((unsigned)((rows + 63) / 64), (unsigned)((n + nt - 1) / nt), (unsigned)gz);
        dim3 blk(32, 4);
#define S_GO(T)                                                                                   \
    do {                                                                                          \
        if (fuse)                                                                                 \
            k_mmq_pre<T, true, 4><<<grid, blk, 0, s>>>(P);                                        \
        else                                                                                      \
            k_mmq_pre<T, false, 8><<<grid, blk, 0, s>>>(P);                                       \
    } while (0)
        MQ_TYPE_SWITCH(a->type, S_GO)
#undef S_GO
    }
    return 0;
}
