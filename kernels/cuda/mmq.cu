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
//   slices:   the K/32 blocks split into S = min(32, K/32) strided slices
//             (slice j: blocks j, j + S, j + 2S, ...), each summed from 0 in
//             block order; y = ((p0 + p1) + p2) + ... (a left fold).
//
// Two kernels compute exactly that: k_mmq_vec for batches of up to 8 tokens
// (decode: it quantizes its tokens' x into shared memory, then lane j of a
// warp runs slice j of a row with dp4a, so the 32 lanes read consecutive
// blocks of the row: one coalesced stretch per step) and k_mmq_pre for
// prompts (int8 mma.sync, 64 rows x 64 tokens per block, each warp all of
// K). Which one runs depends on the batch; what a token gets does not, so
// the engine's "a batch of N == each alone" holds bit for bit
// (test_backend_ops checks it). The choice between this file and k_mv
// (matmul.cu) depends on the weight alone.
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

#define MQ_SLICES 32 // most slices per row (lanes of a warp in k_mmq_vec)
#define MQ_DEC_TOK 8 // most tokens per group k_mmq_vec takes
#define VQ_WARPS 4   // warps per k_mmq_vec block
#define VQ_RW 2      // row passes per warp at once (loads in flight)

static int s_arch_major; // of the device in use (mesh_cu_mmq_setup)
static size_t s_smem_max = 48 * 1024; // dynamic shared memory k_mmq_vec may ask for

static size_t s_vq_smem(int K, int nt) { // k_mmq_vec's quantized x: codes, d, s
    return (size_t)nt * (size_t)K + 8 * (size_t)nt * (size_t)(K / 32);
}

bool mesh_cu_tc_env(void) {
    const char *e = getenv("MESH_CUDA_MMQ");
    return !(e && !strcmp(e, "0"));
}


static bool s_type_ok(int t) {
    return t == CU_Q8_0 || t == CU_Q5_0 || t == CU_Q4_K || t == CU_Q6_K;
}

bool mesh_cu_mmq_ok(const mesh_cu_mm_t *m) {
    if (!MESH_GPU_CUDA || s_arch_major < 8 || !s_type_ok(m->type))
        return false;
    if (m->K <= 0 || m->K % 32 || m->xm % 32 || m->xm < 0)
        return false;
    // Q4_K reads 16-byte words, the others 2-byte ones (GGUF aligns tensors
    // to 32 bytes, so this only refuses odd hand-made layouts)
    const uintptr_t al = m->type == CU_Q4_K ? 15 : 1;
    if ((((uintptr_t)m->w | (uintptr_t)m->w2 | m->nb1 | m->nb2) & al) != 0)
        return false;
    // the decode kernel must fit its largest group of tokens for this K, or
    // a batch would fail where a single token worked (on cards with 99 KiB
    // of opt-in shared memory, K = 10240 at 8 tokens needs 100 KiB): such a
    // weight goes to k_mv for every batch, so the choice stays the weight's
    return s_vq_smem(m->K, MQ_DEC_TOK) <= s_smem_max;
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

// The one definition of an activation block's quantization: 32 floats at
// p (16-byte aligned when vec) to codes q (natural order, 8 words), d =
// amax / 127 and s = d * sum(q). Max and integer sum are exact, so every
// kernel that calls this gets the same bits.
static __device__ __forceinline__ void s_quant32(const float *p, bool vec, uint32_t w[8],
                                                 float &d, float &s) {
    float v[32];
    if (vec) {
#pragma unroll
        for (int i = 0; i < 8; i++) {
            const float4 f = ((const float4 *)p)[i];
            v[4 * i] = f.x, v[4 * i + 1] = f.y, v[4 * i + 2] = f.z, v[4 * i + 3] = f.w;
        }
    } else {
#pragma unroll
        for (int i = 0; i < 32; i++)
            v[i] = p[i];
    }
    float amax = 0.0f;
#pragma unroll
    for (int i = 0; i < 32; i++)
        amax = fmaxf(amax, fabsf(v[i]));
    d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    int sum = 0;
#pragma unroll
    for (int i = 0; i < 8; i++)
        w[i] = 0u;
#pragma unroll
    for (int i = 0; i < 32; i++) {
        int q = (int)rintf(v[i] * id);
        q = q < -127 ? -127 : q > 127 ? 127 : q;
        sum += q;
        w[i >> 2] |= ((uint32_t)q & 0xffu) << (8 * (i & 3));
    }
    s = __fmul_rn(d, (float)sum);
}

static __device__ __forceinline__ bool s_al16(const void *p) {
    return (((uintptr_t)p) & 15) == 0;
}

// One thread per (row, block); the mma layout stores a block's words as
// k 0-3,16-19,4-7,20-23,... (natural words 0,4,1,5,2,6,3,7).
__global__ void __launch_bounds__(256) k_quant_x(s_qx_pair_t P) {
    mesh_pdl_begin();
    const s_qx_t &f = P.f[blockIdx.z];
    const int64_t nb = f.span / 32;
    for (int64_t i = (int64_t)blockIdx.x * 256 + threadIdx.x; i < (int64_t)f.n * nb;
         i += (int64_t)gridDim.x * 256) {
        const int64_t row = i / nb, b = i - row * nb;
        const float *p = f.x + row * f.xs + 32 * b;
        uint32_t w[8];
        float d, sx;
        s_quant32(p, s_al16(p), w, d, sx);
        uint4 *q = (uint4 *)(f.q + row * f.span + 32 * b);
        q[0] = make_uint4(w[0], w[4], w[1], w[5]);
        q[1] = make_uint4(w[2], w[6], w[3], w[7]);
        f.d[row * nb + b] = d;
        f.s[row * nb + b] = sx;
    }
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

// ---- decode: up to 8 tokens per group, dp4a, a warp's lanes = slices ----

static __device__ __forceinline__ int s_dp4a(uint32_t a, uint32_t b, int c) {
#if MESH_GPU_CUDA && defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 610
    return __dp4a((int)a, (int)b, c);
#else
    for (int i = 0; i < 4; i++)
        c += (int)(int8_t)(a >> (8 * i)) * (int)(int8_t)(b >> (8 * i));
    return c;
#endif
}

// 32 bytes from a 2-byte aligned address as 8 words, with 4-byte loads only
// (a misaligned start reads from 2 bytes before it, which lies in the same
// allocation: allocations are 256-byte aligned, so p - 2 >= its start).
static __device__ __forceinline__ void s_ld32b(const uint8_t *p, uint32_t q[8]) {
    const uint32_t mis = (uint32_t)((uintptr_t)p & 2u);
    const uint32_t *a = (const uint32_t *)(p - mis);
    uint32_t w[8];
#pragma unroll
    for (int i = 0; i < 8; i++)
        w[i] = a[i];
    const uint32_t tail = s_ld16(p + 30); // the last 2 bytes when misaligned
#pragma unroll
    for (int i = 0; i < 8; i++)
        q[i] = __funnelshift_r(w[i], i < 7 ? w[i + 1] : tail, 8 * mis);
}

// Block b of a row as 8 words of codes in natural order (k 4i..4i+3 in word
// i) and the row's factors (the same values s_wblock gives the mma path).
template <int T>
static __device__ __forceinline__ void s_vblock(const uint8_t *row, int b, uint32_t q[8],
                                                s_rowf_t &rf) {
    if (T == CU_Q8_0) {
        const uint8_t *p = row + (size_t)b * 34;
        rf.f = s_h2f(s_ld16(p));
        s_ld32b(p + 2, q);
    } else if (T == CU_Q5_0) {
        const uint8_t *p = row + (size_t)b * 22;
        rf.f = s_h2f(s_ld16(p));
        const uint32_t qh = s_w32(p + 2, false);
        uint32_t qs[4];
        s_ld_a2<4>(p + 6, qs);
#pragma unroll
        for (int i = 0; i < 8; i++) {
            const uint32_t h = (qh >> (4 * i)) & 0xF; // elements 4i..4i+3 (i >= 4: 16+)
            const uint32_t hb = ((h & 1) << 4) | ((h & 2) << 11) | ((h & 4) << 18) | ((h & 8) << 25);
            const uint32_t lo = i < 4 ? qs[i] & 0x0F0F0F0Fu : (qs[i - 4] >> 4) & 0x0F0F0F0Fu;
            q[i] = __vsub4(lo | hb, 0x10101010u);
        }
    } else if (T == CU_Q4_K) {
        const uint8_t *p = row + (size_t)(b >> 3) * 144;
        const int sub = b & 7;
        const uint4 h = *(const uint4 *)p; // d, dmin, 12 scale bytes
        rf.f = s_h2f((uint16_t)(h.x & 0xffff));
        // 6-bit scale and min of sub-block sub (s_k_scale_min's layout), by
        // shifts: a run-time index into a register array would spill it
        const uint64_t s8 = (uint64_t)h.y | ((uint64_t)h.z << 32);
        const uint32_t lo = (uint32_t)(s8 >> (8 * (sub & 3))) & 0xffu,
                       hi = (uint32_t)(s8 >> (8 * (sub & 3) + 32)) & 0xffu,
                       ex = (h.w >> (8 * (sub & 3))) & 0xffu;
        uint32_t sc, m;
        if (sub < 4) {
            sc = lo & 63;
            m = hi & 63;
        } else {
            sc = (ex & 0xF) | ((lo >> 6) << 4);
            m = (ex >> 4) | ((hi >> 6) << 4);
        }
        rf.sc0 = (int)sc;
        rf.mn = __fmul_rn(s_h2f((uint16_t)(h.x >> 16)), (float)m);
        const uint4 *qs = (const uint4 *)(p + 16 + 32 * (sub >> 1));
        const uint4 u0 = qs[0], u1 = qs[1];
        const uint32_t raw[8] = {u0.x, u0.y, u0.z, u0.w, u1.x, u1.y, u1.z, u1.w};
        const int sh = 4 * (sub & 1);
#pragma unroll
        for (int i = 0; i < 8; i++)
            q[i] = (raw[i] >> sh) & 0x0F0F0F0Fu;
    } else { // CU_Q6_K
        const uint8_t *p = row + (size_t)(b >> 3) * 210;
        const int sub = b & 7, h = sub >> 2, qd = sub & 3;
        rf.f = s_h2f(s_ld16(p + 208));
        const uint32_t scw = s_ld16(p + 192 + 2 * sub);
        rf.sc0 = (int)(int8_t)(scw & 0xff);
        rf.sc1 = (int)(int8_t)(scw >> 8);
        uint32_t ql[8], qh[8];
        s_ld32b(p + 64 * h + 32 * (qd & 1), ql);
        s_ld32b(p + 128 + 32 * h, qh);
        const int sl = 4 * (qd >> 1), shh = 2 * qd;
#pragma unroll
        for (int i = 0; i < 8; i++)
            q[i] = __vsub4(((ql[i] >> sl) & 0x0F0F0F0Fu) | (((qh[i] >> shh) & 0x03030303u) << 4),
                           0x20202020u);
    }
}

// The block's integer: what s_dot gives the mma path for the same codes.
template <int T>
static __device__ __forceinline__ int s_vdot(const uint32_t q[8], const s_rowf_t &rf,
                                             const int8_t *xq) {
    const uint4 x0 = ((const uint4 *)xq)[0], x1 = ((const uint4 *)xq)[1];
    const uint32_t x[8] = {x0.x, x0.y, x0.z, x0.w, x1.x, x1.y, x1.z, x1.w};
    int lo = 0, hi = 0;
#pragma unroll
    for (int i = 0; i < 4; i++) {
        lo = s_dp4a(q[i], x[i], lo);
        hi = s_dp4a(q[4 + i], x[4 + i], hi);
    }
    if (T == CU_Q6_K)
        return rf.sc0 * lo + rf.sc1 * hi;
    if (T == CU_Q4_K)
        return (lo + hi) * rf.sc0;
    return lo + hi;
}

// Lanes per row for rows of nb blocks: S = min(32, nb) slices, rounded up to
// a power of two so that several short rows share a warp.
static __host__ __device__ __forceinline__ int s_vq_lanes(int nb) {
    const int S = nb < MQ_SLICES ? nb : MQ_SLICES;
    int l = 1;
    while (l < S)
        l <<= 1;
    return l;
}
static __host__ __device__ __forceinline__ int s_vq_rows(int K) { // rows per block
    return VQ_WARPS * VQ_RW * (32 / s_vq_lanes(K / 32));
}

// A block: its group's tokens (<= NT) quantized into shared memory, then
// VQ_WARPS warps x VQ_RW passes x (32 / lanes) rows, lane j of a row taking
// slice j; partials folded in slice order through shared memory.
template <int T, bool FUSE, int NT>
__global__ void __launch_bounds__(32 * VQ_WARPS) k_mmq_vec(s_mq_pair_t P) {
    mesh_pdl_begin();
    int oi, g, p0, cnt;
    if (!s_group(P, blockIdx.z, oi, g, p0, cnt))
        return;
    const mesh_cu_mm_t &o = P.op[oi];
    const int K = o.K, nb = K / 32, S = nb < MQ_SLICES ? nb : MQ_SLICES;
    const int LR = s_vq_lanes(nb), SR = 32 / LR;
    const int r0 = blockIdx.x * s_vq_rows(K);
    if (r0 >= o.rows)
        return;
    cnt = cnt < NT ? cnt : NT; // the host sizes NT to the largest group
    extern __shared__ __align__(16) uint8_t vsm[];
    int8_t *xq = (int8_t *)vsm;                           // [NT][K]
    float *xd = (float *)(vsm + (size_t)NT * K), *xs = xd + NT * nb; // [NT][nb] each
    const int tid = threadIdx.y * 32 + threadIdx.x;
    for (int i = tid; i < cnt * nb; i += 32 * VQ_WARPS) {
        const int t = i / nb, b = i - t * nb;
        const int in = o.idx ? o.idx[p0 + t] : p0 + t;
        const float *p = o.x + (int64_t)in * o.xs + (int64_t)g * o.xm + 32 * b;
        uint32_t w[8];
        s_quant32(p, s_al16(p), w, xd[t * nb + b], xs[t * nb + b]);
        uint4 *q = (uint4 *)(xq + (size_t)t * K + 32 * b);
        q[0] = make_uint4(w[0], w[1], w[2], w[3]);
        q[1] = make_uint4(w[4], w[5], w[6], w[7]);
    }
    __syncthreads();
    const int lane = threadIdx.x, w = threadIdx.y, sr = lane / LR, j = lane % LR;
    // row of pass r: r0 + (w * VQ_RW + r) * SR + sr
    const uint8_t *rp[VQ_RW], *rp2[VQ_RW];
#pragma unroll
    for (int r = 0; r < VQ_RW; r++) {
        const int row = r0 + (w * VQ_RW + r) * SR + sr;
        rp[r] = s_rowp(o.w, o, g, row);
        rp2[r] = FUSE ? s_rowp(o.w2, o, g, row) : nullptr;
    }
    float acc[VQ_RW][NT], acc2[VQ_RW][FUSE ? NT : 1];
#pragma unroll
    for (int r = 0; r < VQ_RW; r++)
#pragma unroll
        for (int t = 0; t < NT; t++) {
            acc[r][t] = 0.0f;
            if (FUSE)
                acc2[r][t] = 0.0f;
        }
    if (j < S) {
#pragma unroll 2
        for (int b = j; b < nb; b += S) {
            uint32_t q[VQ_RW][8], q2[VQ_RW][FUSE ? 8 : 1];
            s_rowf_t f[VQ_RW], f2[VQ_RW];
#pragma unroll
            for (int r = 0; r < VQ_RW; r++) {
                s_vblock<T>(rp[r], b, q[r], f[r]);
                if (FUSE)
                    s_vblock<T>(rp2[r], b, q2[r], f2[r]);
            }
#pragma unroll
            for (int t = 0; t < NT; t++) {
                if (t < cnt) {
                    const int8_t *xb = xq + (size_t)t * K + 32 * b;
                    const float dx = xd[t * nb + b], sx = T == CU_Q4_K ? xs[t * nb + b] : 0.0f;
#pragma unroll
                    for (int r = 0; r < VQ_RW; r++) {
                        acc[r][t] = s_upd<T>(acc[r][t], s_vdot<T>(q[r], f[r], xb), f[r], dx, sx);
                        if (FUSE)
                            acc2[r][t] =
                                s_upd<T>(acc2[r][t], s_vdot<T>(q2[r], f2[r], xb), f2[r], dx, sx);
                    }
                }
            }
        }
    }
    // fold: part[w][r][0 or 1][t][lane], then one lane per output sums its
    // row's S slices in order
    __shared__ float part[VQ_WARPS][VQ_RW][FUSE ? 2 : 1][NT][32];
#pragma unroll
    for (int r = 0; r < VQ_RW; r++)
#pragma unroll
        for (int t = 0; t < NT; t++) {
            part[w][r][0][t][lane] = acc[r][t];
            if (FUSE)
                part[w][r][FUSE ? 1 : 0][t][lane] = acc2[r][t];
        }
    __syncwarp();
    for (int i = lane; i < VQ_RW * SR * NT; i += 32) {
        const int t = i % NT, rs = i / NT, r = rs / SR, s2 = rs % SR;
        const int row = r0 + (w * VQ_RW + r) * SR + s2;
        if (t >= cnt || row >= o.rows)
            continue;
        const float *pp = part[w][r][0][t] + s2 * LR;
        float y = pp[0];
        for (int k = 1; k < S; k++)
            y = y + pp[k];
        if (FUSE) {
            const float *pq = part[w][r][FUSE ? 1 : 0][t] + s2 * LR;
            float y2 = pq[0];
            for (int k = 1; k < S; k++)
                y2 = y2 + pq[k];
            y = s_silu(y) * y2;
        }
        o.y[(int64_t)(p0 + t) * o.ys + (int64_t)g * o.ym + row] = y;
    }
}

// ---- prompts: 64 rows x (8 * NT8) tokens per block, warps split rows ----
template <int T, bool FUSE, int NT8>
__global__ void __launch_bounds__(128) k_mmq_pre(s_mq_pair_t P) {
    mesh_pdl_begin();
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
        for (int b = s; b < nb; b += S) {
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

// Runs GO(T, F, NT) with NT the template twin of the run-time nt (1, 2, 4, 8).
#define S_VQ_NT(T, F, nt, GO)                                                                     \
    do {                                                                                          \
        switch (nt) {                                                                             \
        case 1: GO(T, F, 1); break;                                                               \
        case 2: GO(T, F, 2); break;                                                               \
        case 4: GO(T, F, 4); break;                                                               \
        default: GO(T, F, 8); break;                                                              \
        }                                                                                         \
    } while (0)

// Lets every k_mmq_vec instance use the device's opt-in shared memory less
// its own static part (a row of K = 10240 for 8 tokens needs 100 KiB), and
// sets s_smem_max, which mesh_cu_mmq_ok holds every weight to, to the least.
static int s_vq_setup(int optin) {
    size_t lim = (size_t)optin; // the least any instance may take beside its static part
#define S_ATTR(T, F, NT)                                                                          \
    {                                                                                             \
        gpuFuncAttributes fa;                                                                    \
        if (gpuFuncGetAttributes(&fa, k_mmq_vec<T, F, NT>) != gpuSuccess)                        \
            return MESH_EBACKEND;                                                                 \
        const int dyn = optin - (int)fa.sharedSizeBytes;                                          \
        if (dyn <= 0 || gpuFuncSetAttribute(k_mmq_vec<T, F, NT>,                                  \
                                            gpuFuncAttributeMaxDynamicSharedMemorySize,           \
                                            dyn) != gpuSuccess)                                   \
            return MESH_EBACKEND;                                                                 \
        lim = (size_t)dyn < lim ? (size_t)dyn : lim;                                              \
    }
#define S_ALL(T)                                                                                  \
    S_ATTR(T, true, 1) S_ATTR(T, true, 2) S_ATTR(T, true, 4) S_ATTR(T, true, 8)                   \
    S_ATTR(T, false, 1) S_ATTR(T, false, 2) S_ATTR(T, false, 4) S_ATTR(T, false, 8)
    S_ALL(CU_Q8_0) S_ALL(CU_Q5_0) S_ALL(CU_Q4_K) S_ALL(CU_Q6_K)
#undef S_ALL
#undef S_ATTR
    s_smem_max = lim;
    return 0;
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
        const int64_t nbl = (nmax * nbmax + 255) / 256;
        dim3 qg((unsigned)(nbl < 65535 ? nbl : 65535), 1, (unsigned)Q.nf);
        mesh_launch(k_quant_x, qg, 256, 0, s, Q);
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
        const int nt = n <= 1 ? 1 : n <= 2 ? 2 : n <= 4 ? 4 : 8;
        int gx = (a->rows + s_vq_rows(a->K) - 1) / s_vq_rows(a->K), kmax = a->K;
        if (b) {
            const int bx = (b->rows + s_vq_rows(b->K) - 1) / s_vq_rows(b->K);
            gx = bx > gx ? bx : gx;
            kmax = b->K > kmax ? b->K : kmax;
        }
        const size_t smem = s_vq_smem(kmax, nt);
        if (smem > s_smem_max)
            return MESH_EUNSUPPORTED;
        dim3 grid((unsigned)gx, 1, (unsigned)gz), blk(32, VQ_WARPS);
#define S_NT(T, F, NT) mesh_launch(k_mmq_vec<T, F, NT>, grid, blk, smem, s, P)
#define S_GO(T)                                                                                   \
    do {                                                                                          \
        if (fuse)                                                                                 \
            S_VQ_NT(T, true, nt, S_NT);                                                           \
        else                                                                                      \
            S_VQ_NT(T, false, nt, S_NT);                                                          \
    } while (0)
        MQ_TYPE_SWITCH(a->type, S_GO)
#undef S_GO
#undef S_NT
    } else {
        const int nt = fuse ? 32 : 64;
        dim3 grid((unsigned)((rows + 63) / 64), (unsigned)((n + nt - 1) / nt), (unsigned)gz);
        dim3 blk(32, 4);
#define S_GO(T)                                                                                   \
    do {                                                                                          \
        if (fuse)                                                                                 \
            mesh_launch(k_mmq_pre<T, true, 4>, grid, blk, 0, s, P);                               \
        else                                                                                      \
            mesh_launch(k_mmq_pre<T, false, 8>, grid, blk, 0, s, P);                              \
    } while (0)
        MQ_TYPE_SWITCH(a->type, S_GO)
#undef S_GO
    }
    return 0;
}

int mesh_cu_mmq_setup(int major) {
    s_arch_major = mesh_cu_tc_env() ? major : 0;
    if (s_arch_major < 8)
        return 0;
    int dev = 0, optin = 0;
    if (gpuGetDevice(&dev) != gpuSuccess ||
        gpuDeviceGetAttribute(&optin, gpuDevAttrMaxSharedMemoryPerBlockOptin, dev) != gpuSuccess)
        return MESH_EBACKEND;
    return s_vq_setup(optin);
}
