// SPDX-License-Identifier: MIT
// AVX-512 VNNI kernel for Q8_0 weights x Q8_0 activations (see quant_dot.h
// for the contract): the multi-token path of the dense layers, attention
// projections, shared expert, output head and the experts that several
// tokens chose.
//
// Shape: 16 weight rows in the 16 int32 lanes of a zmm, up to 16 activation
// columns, one accumulator register per column. Per 32-element block the 16
// rows' codes are transposed in registers (8 zmm: vector g holds bytes
// 4g..4g+3 of every row), so one vpdpbusd with 4 bytes of a column broadcast
// from memory adds 4 products to every row at once and after 8 of them lane r
// holds row r's exact block dot: no horizontal sums at all. The transpose
// (about 40 shuffles per 16 rows) and the 16 rows' scales (one gather) are
// paid once per block and shared by all columns; each column then costs 8
// vpdpbusd + 5 ops for 16 rows x 32 elements.
//
// vpdpbusd multiplies unsigned by signed bytes: the weights go in as w + 128
// (unsigned) and each column's block carries -128 * sum(x) as the starting
// value, so the lane holds exactly sum(w * x). Then, per block and in block
// order, acc = acc + (dw * dx) * (float)isum: the expression every other
// kernel forms, so results are bit-identical to them (and to n_cols = 1).
//
// Needs AVX-512 F/BW/VL/DQ + VNNI (quant_dot.c checks the CPU).
#include "quant_dot_impl.h"

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#define S_INLINE static inline __attribute__((always_inline))

enum {
    S_BS = sizeof(mesh_block_q8_0_t), // 34 bytes: fp16 d + 32 codes
    S_R = 16,                         // weight rows per tile (the lanes)
    S_C = 16,                         // columns per tile (accumulator registers)
    S_KB = 256,                       // blocks per k chunk: prepared columns on the stack (32 KB)
    S_RB = 64,                        // rows per row block when there are more than S_C columns
};

// Per column block: the vpdpbusd starting value and the activation scale.
typedef struct {
    int32_t corr[S_KB][S_C]; // -128 * sum of the 32 codes
    float dx[S_KB][S_C];     // the block's scale as f32
} s_prep_t;

// Prepares nc (<= S_C) columns' blocks [b0, b0 + nb). O(nc * nb).
static void s_prep(const uint8_t *x, size_t xrb, int nc, int64_t b0, int nb, s_prep_t *p) {
    const __m256i bias = _mm256_set1_epi8((char)0x80);
    for (int c = 0; c < nc; c++) {
        const uint8_t *xb = x + (size_t)c * xrb + (size_t)b0 * S_BS;
        for (int b = 0; b < nb; b++, xb += S_BS) {
            const mesh_block_q8_0_t *blk = (const void *)xb;
            // sum of (x + 128) in four 8-byte groups, exact
            __m256i q = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)blk->qs), bias);
            __m256i s4 = _mm256_sad_epu8(q, _mm256_setzero_si256());
            __m128i s2 = _mm_add_epi64(_mm256_castsi256_si128(s4), _mm256_extracti128_si256(s4, 1));
            int32_t su = _mm_cvtsi128_si32(_mm_add_epi64(s2, _mm_unpackhi_epi64(s2, s2)));
            p->corr[b][c] = -128 * (su - 32 * 128);
            p->dx[b][c] = _cvtsh_ss(blk->d);
        }
    }
}

// Rows i (low half) and i + 8 (high half) of a block's codes.
S_INLINE __m512i s_pair(const uint8_t *lo, const uint8_t *hi) {
    return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)lo)),
                              _mm256_loadu_si256((const __m256i *)hi), 1);
}

// 16 rows x 8 dwords -> 8 vectors of 16 rows (vector g = dword g of every
// row, lane r = row r), plus 128 per byte (signed -> unsigned codes).
S_INLINE void s_transpose(const uint8_t *const *rp, size_t off, __m512i t[8]) {
    __m512i z[8], u[8], v[8];
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++)
        z[i] = s_pair(rp[i] + off, rp[i + 8] + off);
    // per 128-bit chunk: 4x4 dword transposes of rows (0-3) and (4-7)
#pragma GCC unroll 2
    for (int h = 0; h < 8; h += 4) {
        u[h + 0] = _mm512_unpacklo_epi32(z[h + 0], z[h + 1]);
        u[h + 1] = _mm512_unpackhi_epi32(z[h + 0], z[h + 1]);
        u[h + 2] = _mm512_unpacklo_epi32(z[h + 2], z[h + 3]);
        u[h + 3] = _mm512_unpackhi_epi32(z[h + 2], z[h + 3]);
        v[h + 0] = _mm512_unpacklo_epi64(u[h + 0], u[h + 2]);
        v[h + 1] = _mm512_unpackhi_epi64(u[h + 0], u[h + 2]);
        v[h + 2] = _mm512_unpacklo_epi64(u[h + 1], u[h + 3]);
        v[h + 3] = _mm512_unpackhi_epi64(u[h + 1], u[h + 3]);
    }
    // v[m] (rows 0-3) and v[4 + m] (rows 4-7) hold dword m in chunks 0 and 2,
    // dword 4 + m in chunks 1 and 3; join them so that lane r = row r.
    const __m512i lo = _mm512_setr_epi64(0, 1, 8, 9, 4, 5, 12, 13);
    const __m512i hi = _mm512_setr_epi64(2, 3, 10, 11, 6, 7, 14, 15);
    const __m512i bias = _mm512_set1_epi8((char)0x80);
#pragma GCC unroll 4
    for (int m = 0; m < 4; m++) {
        t[m] = _mm512_xor_si512(_mm512_permutex2var_epi64(v[m], lo, v[4 + m]), bias);
        t[4 + m] = _mm512_xor_si512(_mm512_permutex2var_epi64(v[m], hi, v[4 + m]), bias);
    }
}

S_INLINE __m512i s_bcast32(const uint8_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return _mm512_set1_epi32(v);
}

// One tile: rows rp[0..15] (nr valid, the rest repeat a valid row and are
// not stored), C columns, blocks [b0, b0 + nb) of a k chunk; first: the
// chunk starts the sums, else they continue from y (a float stored and
// loaded back: the same value). pf: prefetch distance in bytes.
S_INLINE void s_tile(const int C, const uint8_t *const *rp, size_t pf, __m512i gidx,
                     const uint8_t *w0, int nr, const uint8_t *x, size_t xrb, int64_t b0, int nb,
                     const s_prep_t *p, float *y, size_t ys, int first) {
    const __mmask16 m = (__mmask16)((1u << nr) - 1);
    __m512 acc[S_C];
#pragma GCC unroll 16
    for (int c = 0; c < C; c++)
        acc[c] = first ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(m, y + (size_t)c * ys);
    for (int b = 0; b < nb; b++) {
        const size_t off = (size_t)(b0 + b) * S_BS;
        __m512i t[8];
        // the next tile's rows, same block: each row is its own stream and
        // the hardware prefetchers follow too few of them
#pragma GCC unroll 16
        for (int r = 0; r < S_R; r++)
            _mm_prefetch((const char *)(rp[r] + pf + off), _MM_HINT_T0);
        s_transpose(rp, off + 2, t);
        // the 16 rows' fp16 scales: low halves of the dwords at the blocks' starts
        __m512i dh = _mm512_i32gather_epi32(gidx, (const void *)(w0 + off), 1);
        __m512 dw = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(dh));
        const uint8_t *xb = x + off + 2;
#pragma GCC unroll 16
        for (int c = 0; c < C; c++) {
            const uint8_t *xq = xb + (size_t)c * xrb;
            __m512i s = _mm512_set1_epi32(p->corr[b][c]);
#pragma GCC unroll 8
            for (int g = 0; g < 8; g++)
                s = _mm512_dpbusd_epi32(s, t[g], s_bcast32(xq + 4 * g));
            __m512 d = _mm512_mul_ps(dw, _mm512_set1_ps(p->dx[b][c]));
            acc[c] = _mm512_add_ps(acc[c], _mm512_mul_ps(d, _mm512_cvtepi32_ps(s)));
        }
    }
#pragma GCC unroll 16
    for (int c = 0; c < C; c++)
        _mm512_mask_storeu_ps(y + (size_t)c * ys, m, acc[c]);
}

// Rows [0, nr) against nc <= S_C columns over blocks [b0, b0 + nb).
static void s_rows(const uint8_t *w, size_t wrb, int nr, const uint8_t *x, size_t xrb, int nc,
                   int64_t b0, int nb, const s_prep_t *p, float *y, size_t ys, int first) {
    for (int r0 = 0; r0 < nr; r0 += S_R) {
        int rn = nr - r0 < S_R ? nr - r0 : S_R;
        const uint8_t *rp[S_R];
        int32_t gi[S_R];
        for (int r = 0; r < S_R; r++) {
            int rr = r < rn ? r : rn - 1;
            rp[r] = w + (size_t)(r0 + rr) * wrb;
            gi[r] = (int32_t)((size_t)rr * wrb);
        }
        __m512i gidx = _mm512_loadu_si512((const void *)gi);
        const uint8_t *w0 = rp[0];
        float *yr = y + r0;
        const size_t pf = (size_t)S_R * wrb; // prefetch distance: one tile of rows
        switch (nc) {
#define S_CASE(N)                                                                                \
    case N:                                                                                       \
        s_tile(N, rp, pf, gidx, w0, rn, x, xrb, b0, nb, p, yr, ys, first);                        \
        break;
            S_CASE(1)
#if !defined(__SANITIZE_ADDRESS__) // ASan builds: one column at a time (see s_gemm_q8_0)
            S_CASE(2) S_CASE(3) S_CASE(4) S_CASE(5) S_CASE(6) S_CASE(7) S_CASE(8)
            S_CASE(9) S_CASE(10) S_CASE(11) S_CASE(12) S_CASE(13) S_CASE(14) S_CASE(15)
            S_CASE(16)
#endif
#undef S_CASE
        default: break;
        }
    }
}

static void s_gemm_q8_0(int64_t k, const void *w, size_t wrb, int nr, const void *x, size_t xrb,
                        int nc, float *y, size_t ys) {
    if (wrb > (size_t)INT32_MAX / S_R) { // gather offsets are int32: rows past 128 MB
        mesh__gemm_avx512(MESH_QT_Q8_0)(k, w, wrb, nr, x, xrb, nc, y, ys);
        return;
    }
    const uint8_t *W = w, *X = x;
    const int64_t nbk = k / 32;
    s_prep_t prep;
    // Up to S_C columns: every weight row is read once per k chunk. More
    // columns: row blocks of S_RB rows stay in cache across the column tiles.
    const int rb = nc <= S_C ? nr : S_RB;
    for (int r0 = 0; r0 < nr; r0 += rb) {
        int rn = nr - r0 < rb ? nr - r0 : rb;
        for (int64_t b0 = 0; b0 < nbk; b0 += S_KB) {
            int nb = (int)(nbk - b0 < S_KB ? nbk - b0 : S_KB);
            for (int c0 = 0; c0 < nc; c0 += S_C) {
                int cn = nc - c0 < S_C ? nc - c0 : S_C;
                const uint8_t *Xc = X + (size_t)c0 * xrb;
#if defined(__SANITIZE_ADDRESS__)
                // the ASan shape takes one column at a time (see s_rows)
                for (int c = 0; c < cn; c++) {
                    s_prep(Xc + (size_t)c * xrb, xrb, 1, b0, nb, &prep);
                    s_rows(W + (size_t)r0 * wrb, wrb, rn, Xc + (size_t)c * xrb, xrb, 1, b0, nb,
                           &prep, y + (size_t)(c0 + c) * ys + r0, ys, b0 == 0);
                }
#else
                s_prep(Xc, xrb, cn, b0, nb, &prep);
                s_rows(W + (size_t)r0 * wrb, wrb, rn, Xc, xrb, cn, b0, nb, &prep,
                       y + (size_t)c0 * ys + r0, ys, b0 == 0);
#endif
            }
        }
    }
}

mesh__gemm_fn mesh__gemm_avx512vnni(uint32_t wtype) {
    return wtype == MESH_QT_Q8_0 ? s_gemm_q8_0 : NULL;
}
