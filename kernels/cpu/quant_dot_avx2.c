// SPDX-License-Identifier: MIT
// AVX2 + FMA + F16C fused dot products (see quant_dot.h for the contract).
//
// Shape: a micro-tile of R weight rows x C activation columns (R*C <= 8
// "pairs"). Each weight block is decoded once into registers and multiplied
// with the C columns' blocks. Per block every pair gets an exact int32 dot
// (maddubs/madd), the pairs' sums are reduced together (8 vectors -> one
// vector of 8 totals, integer, so the order does not matter), and each lane
// then does the same float expression the scalar kernel does per block. So
// results do not depend on the tile shape, on n_cols, or on the SIMD level.
// Cost of that exactness: the horizontal reduction (about 1.5 ops per pair
// per block) on top of about 4 ops of multiply-add per pair per 32 elements.
//
// Decode (n_cols == 1) uses R = 8 rows (4 for f32/f16/bf16), C = 1; prompt tiles
// use R = 2, C = 4.
#include "quant_dot_impl.h"

#include "simd_avx2.h"

#include <immintrin.h>
#include <string.h>

#define S_INLINE static inline __attribute__((always_inline))

// lane i = sum of the 8 int32 of v[i] (exact).
S_INLINE __m256i s_reduce8(__m256i v0, __m256i v1, __m256i v2, __m256i v3, __m256i v4, __m256i v5,
                           __m256i v6, __m256i v7) {
    __m256i t0 = _mm256_hadd_epi32(_mm256_hadd_epi32(v0, v1), _mm256_hadd_epi32(v2, v3));
    __m256i t1 = _mm256_hadd_epi32(_mm256_hadd_epi32(v4, v5), _mm256_hadd_epi32(v6, v7));
    return _mm256_add_epi32(_mm256_permute2x128_si256(t0, t1, 0x20),
                            _mm256_permute2x128_si256(t0, t1, 0x31));
}

S_INLINE __m256i s_reduce_arr(const __m256i *v) {
    return s_reduce8(v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]);
}

S_INLINE float s_h2f(uint16_t h) { return _cvtsh_ss(h); } // exact, as mesh__h2f

// byte i = 0xFF when bit i of qh is set.
S_INLINE __m256i s_bits32(uint32_t qh) {
    const __m256i shuf = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2,
                                          2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
    const __m256i bm = _mm256_set1_epi64x((long long)0x8040201008040201ull);
    __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32((int)qh), shuf);
    return _mm256_cmpeq_epi8(_mm256_and_si256(v, bm), bm);
}

S_INLINE __m256i s_nibbles16(const uint8_t *qs) {
    __m128i t = _mm_loadu_si128((const __m128i *)qs);
    const __m128i m4 = _mm_set1_epi8(0xF);
    return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(t, 4), m4), _mm_and_si128(t, m4));
}

// ---------------------------------------------------------------- 32-element blocks

// Codes of one 32-element weight block: signed (q - offset) for the types
// without a min, unsigned for Q4_1/Q5_1.
S_INLINE void s_decode32(uint32_t T, const uint8_t *blk, __m256i *q, float *d, float *m) {
    switch (T) {
    case MESH_QT_Q8_0: {
        const mesh_block_q8_0_t *b = (const void *)blk;
        *q = _mm256_loadu_si256((const __m256i *)b->qs);
        *d = s_h2f(b->d);
        break;
    }
    case MESH_QT_Q4_0: {
        const mesh_block_q4_0_t *b = (const void *)blk;
        *q = _mm256_sub_epi8(s_nibbles16(b->qs), _mm256_set1_epi8(8));
        *d = s_h2f(b->d);
        break;
    }
    case MESH_QT_Q4_1: {
        const mesh_block_q4_1_t *b = (const void *)blk;
        *q = s_nibbles16(b->qs);
        *d = s_h2f(b->d);
        *m = s_h2f(b->m);
        break;
    }
    case MESH_QT_Q5_0: {
        const mesh_block_q5_0_t *b = (const void *)blk;
        uint32_t qh;
        memcpy(&qh, b->qh, 4);
        __m256i hb = _mm256_and_si256(s_bits32(qh), _mm256_set1_epi8(0x10));
        *q = _mm256_sub_epi8(_mm256_or_si256(s_nibbles16(b->qs), hb), _mm256_set1_epi8(16));
        *d = s_h2f(b->d);
        break;
    }
    default: { // MESH_QT_Q5_1
        const mesh_block_q5_1_t *b = (const void *)blk;
        uint32_t qh;
        memcpy(&qh, b->qh, 4);
        __m256i hb = _mm256_and_si256(s_bits32(qh), _mm256_set1_epi8(0x10));
        *q = _mm256_or_si256(s_nibbles16(b->qs), hb);
        *d = s_h2f(b->d);
        *m = s_h2f(b->m);
        break;
    }
    }
}

S_INLINE __m256i s_dot_i8(__m256i w, __m256i x) { // signed w
    __m256i p = _mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(x, w));
    return _mm256_madd_epi16(p, _mm256_set1_epi16(1));
}

S_INLINE __m256i s_dot_u8(__m256i w, __m256i x) { // unsigned w
    return _mm256_madd_epi16(_mm256_maddubs_epi16(w, x), _mm256_set1_epi16(1));
}

// 8 lanes of pair values: lane i = (i < R*C) ? f(i / C, i % C) : 0, built
// in registers (a scalar array loaded as a vector stalls on store forwarding).
#define S_LANES(R, C, V)                                                                          \
    _mm_setr_epi16(0 < R * C ? V(0 / C, 0 % C) : 0, 1 < R * C ? V(1 / C, 1 % C) : 0,             \
                   2 < R * C ? V(2 / C, 2 % C) : 0, 3 < R * C ? V(3 / C, 3 % C) : 0,             \
                   4 < R * C ? V(4 / C, 4 % C) : 0, 5 < R * C ? V(5 / C, 5 % C) : 0,             \
                   6 < R * C ? V(6 / C, 6 % C) : 0, 7 < R * C ? V(7 / C, 7 % C) : 0)

S_INLINE void s_tile32(const uint32_t T, const int R, const int C, int64_t nb, const uint8_t *w,
                       size_t wrb, const uint8_t *x, size_t xrb, float *y, size_t ys) {
    const int has_min = T == MESH_QT_Q4_1 || T == MESH_QT_Q5_1;
    const size_t bs = T == MESH_QT_Q8_0   ? sizeof(mesh_block_q8_0_t)
                      : T == MESH_QT_Q4_0 ? sizeof(mesh_block_q4_0_t)
                      : T == MESH_QT_Q4_1 ? sizeof(mesh_block_q4_1_t)
                      : T == MESH_QT_Q5_0 ? sizeof(mesh_block_q5_0_t)
                                          : sizeof(mesh_block_q5_1_t);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        __m256i wq[8];
        float dw[8], mw[8];
        uint16_t dwh[8] = {0}, mwh[8] = {0}, dxh[4] = {0};
#pragma GCC unroll 8
        for (int r = 0; r < R; r++) {
            const uint8_t *wb = w + (size_t)r * wrb + (size_t)b * bs;
            if ((b & 1) == 0)
                _mm_prefetch((const char *)(wb + 32 * bs), _MM_HINT_T0);
            s_decode32(T, wb, &wq[r], &dw[r], &mw[r]);
            memcpy(&dwh[r], wb, 2); // every 32-block type starts with f16 d (then m)
            if (has_min)
                memcpy(&mwh[r], wb + 2, 2);
        }
        __m256i sums[8], sxs[8];
#pragma GCC unroll 8
        for (int i = 0; i < 8; i++)
            sums[i] = sxs[i] = _mm256_setzero_si256();
#pragma GCC unroll 4
        for (int c = 0; c < C; c++) {
            const mesh_block_q8_0_t *xb = (const mesh_block_q8_0_t *)(x + (size_t)c * xrb) + b;
            __m256i xv = _mm256_loadu_si256((const __m256i *)xb->qs);
            dxh[c] = xb->d;
            __m256i sx = has_min ? s_dot_u8(_mm256_set1_epi8(1), xv) : _mm256_setzero_si256();
#pragma GCC unroll 8
            for (int r = 0; r < R; r++) {
                sums[r * C + c] = has_min ? s_dot_u8(wq[r], xv) : s_dot_i8(wq[r], xv);
                if (has_min)
                    sxs[r * C + c] = sx;
            }
        }
#define S_DW(r, c) (short)dwh[r]
#define S_MW(r, c) (short)mwh[r]
#define S_DX(r, c) (short)dxh[c]
        // Per lane dw * dx, the same float product the scalar kernel forms.
        __m256 vdx = _mm256_cvtph_ps(S_LANES(R, C, S_DX));
        __m256 dp = _mm256_mul_ps(_mm256_cvtph_ps(S_LANES(R, C, S_DW)), vdx);
        acc = _mm256_add_ps(acc, _mm256_mul_ps(dp, _mm256_cvtepi32_ps(s_reduce_arr(sums))));
        if (has_min) {
            __m256 mp = _mm256_mul_ps(_mm256_cvtph_ps(S_LANES(R, C, S_MW)), vdx);
            acc = _mm256_add_ps(acc, _mm256_mul_ps(mp, _mm256_cvtepi32_ps(s_reduce_arr(sxs))));
        }
#undef S_DW
#undef S_MW
#undef S_DX
    }
    float out[8];
    _mm256_storeu_ps(out, acc);
    for (int r = 0; r < R; r++)
        for (int c = 0; c < C; c++)
            y[(size_t)c * ys + r] = out[r * C + c];
}

// ---------------------------------------------------------------- K-quants

// Unsigned codes of elements 32*g .. 32*g+31 of a super-block.
S_INLINE __m256i s_decode_k(const uint32_t T, const uint8_t *blk, const int g) {
    const __m256i m4 = _mm256_set1_epi8(0xF), m3 = _mm256_set1_epi8(3), m1 = _mm256_set1_epi8(1);
    const int h = g >> 2, gg = g & 3;
    switch (T) {
    case MESH_QT_Q2_K: {
        const mesh_block_q2_k_t *b = (const void *)blk;
        __m256i v = _mm256_loadu_si256((const __m256i *)(b->qs + 32 * h));
        return _mm256_and_si256(_mm256_srli_epi16(v, 2 * gg), m3);
    }
    case MESH_QT_Q3_K: {
        const mesh_block_q3_k_t *b = (const void *)blk;
        __m256i v = _mm256_loadu_si256((const __m256i *)(b->qs + 32 * h));
        __m256i hm = _mm256_loadu_si256((const __m256i *)b->hmask);
        __m256i lo = _mm256_and_si256(_mm256_srli_epi16(v, 2 * gg), m3);
        __m256i hb = _mm256_and_si256(_mm256_srli_epi16(hm, 4 * h + gg), m1);
        return _mm256_or_si256(lo, _mm256_slli_epi16(hb, 2));
    }
    case MESH_QT_Q4_K: {
        const mesh_block_q4_k_t *b = (const void *)blk;
        __m256i v = _mm256_loadu_si256((const __m256i *)(b->qs + 32 * (g >> 1)));
        return (g & 1) ? _mm256_and_si256(_mm256_srli_epi16(v, 4), m4) : _mm256_and_si256(v, m4);
    }
    case MESH_QT_Q5_K: {
        const mesh_block_q5_k_t *b = (const void *)blk;
        __m256i v = _mm256_loadu_si256((const __m256i *)(b->qs + 32 * (g >> 1)));
        __m256i lo =
            (g & 1) ? _mm256_and_si256(_mm256_srli_epi16(v, 4), m4) : _mm256_and_si256(v, m4);
        __m256i qh = _mm256_loadu_si256((const __m256i *)b->qh);
        __m256i hb = _mm256_and_si256(_mm256_srli_epi16(qh, g), m1);
        return _mm256_or_si256(lo, _mm256_slli_epi16(hb, 4));
    }
    default: { // MESH_QT_Q6_K
        const mesh_block_q6_k_t *b = (const void *)blk;
        __m256i v = _mm256_loadu_si256((const __m256i *)(b->ql + 64 * h + 32 * (gg & 1)));
        __m256i lo =
            (gg >> 1) ? _mm256_and_si256(_mm256_srli_epi16(v, 4), m4) : _mm256_and_si256(v, m4);
        __m256i qh = _mm256_loadu_si256((const __m256i *)(b->qh + 32 * h));
        __m256i hi = _mm256_and_si256(_mm256_srli_epi16(qh, 2 * gg), m3);
        return _mm256_or_si256(lo, _mm256_slli_epi16(hi, 4));
    }
    }
}

S_INLINE size_t s_kblock_size(uint32_t T) {
    return T == MESH_QT_Q2_K   ? sizeof(mesh_block_q2_k_t)
           : T == MESH_QT_Q3_K ? sizeof(mesh_block_q3_k_t)
           : T == MESH_QT_Q4_K ? sizeof(mesh_block_q4_k_t)
           : T == MESH_QT_Q5_K ? sizeof(mesh_block_q5_k_t)
                               : sizeof(mesh_block_q6_k_t);
}

// Scales of one super-block, the same integers as mesh__kq_prep but without
// the per-scale scalar unpacking for the common types (it was a third of the
// decode time). Q4_K/Q5_K: 8 6-bit scales and mins from 12 bytes with word
// masks; Q6_K: a sign extension; Q2_K: nibbles; Q3_K: the same word masks.
S_INLINE void s_prep_k(const uint32_t T, const uint8_t *blk, mesh__kq_prep_t *p) {
    if (T == MESH_QT_Q4_K || T == MESH_QT_Q5_K) {
        const uint8_t *sb = T == MESH_QT_Q4_K ? ((const mesh_block_q4_k_t *)blk)->scales
                                              : ((const mesh_block_q5_k_t *)blk)->scales;
        uint32_t u[3];
        memcpy(u, sb, 12);
        uint32_t sc_lo = u[0] & 0x3f3f3f3fu, m_lo = u[1] & 0x3f3f3f3fu;
        uint32_t sc_hi = (u[2] & 0x0f0f0f0fu) | (((u[0] >> 6) & 0x03030303u) << 4);
        uint32_t m_hi = ((u[2] >> 4) & 0x0f0f0f0fu) | (((u[1] >> 6) & 0x03030303u) << 4);
        __m128i sc8 = _mm_set_epi32(0, 0, (int)sc_hi, (int)sc_lo);
        __m128i m8 = _mm_set_epi32(0, 0, (int)m_hi, (int)m_lo);
        __m128i sc16 = _mm_cvtepu8_epi16(sc8), m16 = _mm_cvtepu8_epi16(m8); // 8 lanes each
        // Per 16 elements: every per-32 value twice.
        _mm_storeu_si128((__m128i *)p->sc, _mm_unpacklo_epi16(sc16, sc16));
        _mm_storeu_si128((__m128i *)p->sc + 1, _mm_unpackhi_epi16(sc16, sc16));
        _mm_storeu_si128((__m128i *)p->mn, _mm_unpacklo_epi16(m16, m16));
        _mm_storeu_si128((__m128i *)p->mn + 1, _mm_unpackhi_epi16(m16, m16));
        uint16_t d, dm;
        memcpy(&d, blk, 2); // both layouts start with f16 d, dmin
        memcpy(&dm, blk + 2, 2);
        p->d = s_h2f(d);
        p->dmin = s_h2f(dm);
    } else if (T == MESH_QT_Q6_K) {
        const mesh_block_q6_k_t *b = (const void *)blk;
        __m256i sc = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)b->scales));
        _mm256_storeu_si256((__m256i *)p->sc, sc);
        _mm256_storeu_si256((__m256i *)p->mn, _mm256_slli_epi16(sc, 5));
        p->d = s_h2f(b->d);
        p->dmin = 0.0f;
    } else if (T == MESH_QT_Q2_K) {
        const mesh_block_q2_k_t *b = (const void *)blk;
        __m128i v = _mm_loadu_si128((const __m128i *)b->scales);
        __m128i m4 = _mm_set1_epi8(0xF);
        _mm256_storeu_si256((__m256i *)p->sc, _mm256_cvtepu8_epi16(_mm_and_si128(v, m4)));
        _mm256_storeu_si256((__m256i *)p->mn,
                            _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(v, 4), m4)));
        p->d = s_h2f(b->d);
        p->dmin = s_h2f(b->dmin);
    } else { // MESH_QT_Q3_K: 16 6-bit scales, low nibbles then 2-bit tops
        const mesh_block_q3_k_t *b = (const void *)blk;
        uint32_t a[3];
        memcpy(a, b->scales, 12);
        const uint32_t k4 = 0x0f0f0f0fu, k2 = 0x03030303u;
        uint32_t s0 = (a[0] & k4) | (((a[2] >> 0) & k2) << 4);
        uint32_t s1 = (a[1] & k4) | (((a[2] >> 2) & k2) << 4);
        uint32_t s2 = ((a[0] >> 4) & k4) | (((a[2] >> 4) & k2) << 4);
        uint32_t s3 = ((a[1] >> 4) & k4) | (((a[2] >> 6) & k2) << 4);
        __m128i v = _mm_sub_epi8(_mm_setr_epi32((int)s0, (int)s1, (int)s2, (int)s3),
                                 _mm_set1_epi8(32));
        __m256i sc = _mm256_cvtepi8_epi16(v);
        _mm256_storeu_si256((__m256i *)p->sc, sc);
        _mm256_storeu_si256((__m256i *)p->mn, _mm256_slli_epi16(sc, 2));
        p->d = s_h2f(b->d);
        p->dmin = 0.0f;
    }
}

S_INLINE void s_tile_k(const uint32_t T, const int R, const int C, int64_t nb, const uint8_t *w,
                       size_t wrb, const uint8_t *x, size_t xrb, float *y, size_t ys) {
    const size_t bs = s_kblock_size(T);
    const int min_kind = mesh__kq_is_min_kind(T);
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (int64_t b = 0; b < nb; b++) {
        mesh__kq_prep_t p[8];
        const uint8_t *wb[8];
#pragma GCC unroll 8
        for (int r = 0; r < R; r++) {
            wb[r] = w + (size_t)r * wrb + (size_t)b * bs;
            // Eight rows stream at once: prefetch 16 super-blocks ahead (measured
            // best of 2/4/8/16 on the Q4_K/Q6_K decode from DRAM).
            _mm_prefetch((const char *)(wb[r] + 16 * bs), _MM_HINT_T0);
            _mm_prefetch((const char *)(wb[r] + 16 * bs + 64), _MM_HINT_T0);
            _mm_prefetch((const char *)(wb[r] + 16 * bs + 128), _MM_HINT_T0);
            if (bs > 192)
                _mm_prefetch((const char *)(wb[r] + 16 * bs + 192), _MM_HINT_T0);
            s_prep_k(T, wb[r], &p[r]);
        }
        const mesh_block_q8_k_t *xb[4];
#pragma GCC unroll 4
        for (int c = 0; c < C; c++)
            xb[c] = (const mesh_block_q8_k_t *)(x + (size_t)c * xrb) + b;
        __m256i sums[8];
#pragma GCC unroll 8
        for (int i = 0; i < 8; i++)
            sums[i] = _mm256_setzero_si256();
#pragma GCC unroll 8
        for (int g = 0; g < 8; g++) {
            __m256i u[8], sv[8];
#pragma GCC unroll 8
            for (int r = 0; r < R; r++) {
                u[r] = s_decode_k(T, wb[r], g);
                // Q4_K/Q5_K scales cover 32 elements: one broadcast.
                sv[r] = (T == MESH_QT_Q4_K || T == MESH_QT_Q5_K)
                            ? _mm256_set1_epi16(p[r].sc[2 * g])
                            : _mm256_set_m128i(_mm_set1_epi16(p[r].sc[2 * g + 1]),
                                               _mm_set1_epi16(p[r].sc[2 * g]));
            }
#pragma GCC unroll 4
            for (int c = 0; c < C; c++) {
                __m256i xv = _mm256_loadu_si256((const __m256i *)(xb[c]->qs + 32 * g));
#pragma GCC unroll 8
                for (int r = 0; r < R; r++)
                    sums[r * C + c] = _mm256_add_epi32(
                        sums[r * C + c], _mm256_madd_epi16(_mm256_maddubs_epi16(u[r], xv), sv[r]));
            }
        }
        int32_t isum[8];
        _mm256_storeu_si256((__m256i *)isum, s_reduce_arr(sums));
        for (int r = 0; r < R; r++) {
            __m256i mn = _mm256_loadu_si256((const __m256i *)p[r].mn);
            for (int c = 0; c < C; c++) {
                __m256i bs16 = _mm256_loadu_si256((const __m256i *)xb[c]->bsums);
                __m256i t = _mm256_madd_epi16(mn, bs16);
                __m128i s = _mm_add_epi32(_mm256_castsi256_si128(t), _mm256_extracti128_si256(t, 1));
                s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
                s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
                int32_t imin = _mm_cvtsi128_si32(s);
                acc[r * C + c] =
                    acc[r * C + c] + mesh__kq_block(min_kind, &p[r], xb[c]->d, isum[r * C + c], imin);
            }
        }
    }
    for (int r = 0; r < R; r++)
        for (int c = 0; c < C; c++)
            y[(size_t)c * ys + r] = acc[r * C + c];
}

// ---------------------------------------------------------------- f32 / f16 / bf16 weights

S_INLINE __m256 s_load_w8(const uint32_t T, const uint8_t *row, int64_t i) {
    if (T == MESH_QT_F32)
        return _mm256_loadu_ps((const float *)row + i);
    __m128i h = _mm_loadu_si128((const __m128i *)(row + 2 * i));
    if (T == MESH_QT_F16)
        return _mm256_cvtph_ps(h);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

S_INLINE float s_load_w1(const uint32_t T, const uint8_t *row, int64_t i) {
    if (T == MESH_QT_F32) {
        float f;
        memcpy(&f, row + 4 * i, 4);
        return f;
    }
    uint16_t h;
    memcpy(&h, row + 2 * i, 2);
    return T == MESH_QT_F16 ? mesh_fp16_to_f32(h) : mesh_bf16_to_f32(h);
}

// Per pair: one 8-lane FMA chain over the row, then a fixed-order
// horizontal sum, then the k % 8 tail in order.
S_INLINE void s_tile_f(const uint32_t T, const int R, const int C, int64_t k, const uint8_t *w,
                       size_t wrb, const uint8_t *x, size_t xrb, float *y, size_t ys) {
    __m256 acc[8];
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++)
        acc[i] = _mm256_setzero_ps();
    int64_t k8 = k & ~(int64_t)7;
    for (int64_t i = 0; i < k8; i += 8) {
        __m256 wv[4];
#pragma GCC unroll 4
        for (int r = 0; r < R; r++)
            wv[r] = s_load_w8(T, w + (size_t)r * wrb, i);
#pragma GCC unroll 4
        for (int c = 0; c < C; c++) {
            __m256 xv = _mm256_loadu_ps((const float *)(x + (size_t)c * xrb) + i);
#pragma GCC unroll 4
            for (int r = 0; r < R; r++)
                acc[r * C + c] = _mm256_fmadd_ps(wv[r], xv, acc[r * C + c]);
        }
    }
    for (int r = 0; r < R; r++)
        for (int c = 0; c < C; c++) {
            const float *xc = (const float *)(x + (size_t)c * xrb);
            float s = mesh__avx2_hsum(acc[r * C + c]);
            for (int64_t i = k8; i < k; i++)
                s += s_load_w1(T, w + (size_t)r * wrb, i) * xc[i];
            y[(size_t)c * ys + r] = s;
        }
}

// ---------------------------------------------------------------- drivers

// One driver per weight type: n_cols == 1 walks rows DR at a time; otherwise
// blocks of 16 rows (they stay in L1 across the columns), each in tiles of 2
// rows x 4 columns, with smaller tiles at the edges (same per-element
// arithmetic, so edges are bit-identical to full tiles).
#define S_DRIVER(NAME, KERNEL, T, KDIV, DR)                                                        \
    static void NAME(int64_t k, const void *w, size_t wrb, int nr, const void *x, size_t xrb,     \
                     int nc, float *y, size_t ys) {                                               \
        const uint8_t *W = w, *X = x;                                                             \
        int64_t n = k / (KDIV);                                                                   \
        if (nc == 1) {                                                                            \
            int r = 0;                                                                            \
            for (; r + DR <= nr; r += DR)                                                         \
                KERNEL(T, DR, 1, n, W + (size_t)r * wrb, wrb, X, xrb, y + r, ys);                 \
            for (; r + 4 <= nr; r += 4)                                                           \
                KERNEL(T, 4, 1, n, W + (size_t)r * wrb, wrb, X, xrb, y + r, ys);                  \
            switch (nr - r) {                                                                     \
            case 3: KERNEL(T, 3, 1, n, W + (size_t)r * wrb, wrb, X, xrb, y + r, ys); break;       \
            case 2: KERNEL(T, 2, 1, n, W + (size_t)r * wrb, wrb, X, xrb, y + r, ys); break;       \
            case 1: KERNEL(T, 1, 1, n, W + (size_t)r * wrb, wrb, X, xrb, y + r, ys); break;       \
            default: break;                                                                       \
            }                                                                                     \
            return;                                                                               \
        }                                                                                         \
        for (int r16 = 0; r16 < nr; r16 += 16) { /* 16 rows stay in L1 over the columns */        \
            int r16e = nr - r16 < 16 ? nr : r16 + 16;                                             \
            for (int c = 0; c < nc; c += 4) {                                                     \
                int cc = nc - c < 4 ? nc - c : 4;                                                 \
                const uint8_t *Xc = X + (size_t)c * xrb;                                          \
                float *yc = y + (size_t)c * ys;                                                   \
                for (int r = r16; r < r16e; r += 2) {                                             \
                    int rr = r16e - r < 2 ? r16e - r : 2;                                         \
                    const uint8_t *Wr = W + (size_t)r * wrb;                                      \
                    switch (rr * 8 + cc) {                                                        \
                    case 2 * 8 + 4: KERNEL(T, 2, 4, n, Wr, wrb, Xc, xrb, yc + r, ys); break;      \
                    case 2 * 8 + 3: KERNEL(T, 2, 3, n, Wr, wrb, Xc, xrb, yc + r, ys); break;      \
                    case 2 * 8 + 2: KERNEL(T, 2, 2, n, Wr, wrb, Xc, xrb, yc + r, ys); break;      \
                    case 2 * 8 + 1: KERNEL(T, 2, 1, n, Wr, wrb, Xc, xrb, yc + r, ys); break;      \
                    case 1 * 8 + 4: KERNEL(T, 1, 4, n, Wr, wrb, Xc, xrb, yc + r, ys); break;      \
                    case 1 * 8 + 3: KERNEL(T, 1, 3, n, Wr, wrb, Xc, xrb, yc + r, ys); break;      \
                    case 1 * 8 + 2: KERNEL(T, 1, 2, n, Wr, wrb, Xc, xrb, yc + r, ys); break;      \
                    default: KERNEL(T, 1, 1, n, Wr, wrb, Xc, xrb, yc + r, ys); break;             \
                    }                                                                             \
                }                                                                                 \
            }                                                                                     \
        }                                                                                         \
    }

S_DRIVER(s_gemm_q8_0, s_tile32, MESH_QT_Q8_0, 32, 8)
S_DRIVER(s_gemm_q4_0, s_tile32, MESH_QT_Q4_0, 32, 8)
S_DRIVER(s_gemm_q4_1, s_tile32, MESH_QT_Q4_1, 32, 8)
S_DRIVER(s_gemm_q5_0, s_tile32, MESH_QT_Q5_0, 32, 8)
S_DRIVER(s_gemm_q5_1, s_tile32, MESH_QT_Q5_1, 32, 8)
S_DRIVER(s_gemm_q2_k, s_tile_k, MESH_QT_Q2_K, 256, 8)
S_DRIVER(s_gemm_q3_k, s_tile_k, MESH_QT_Q3_K, 256, 8)
S_DRIVER(s_gemm_q4_k, s_tile_k, MESH_QT_Q4_K, 256, 8)
S_DRIVER(s_gemm_q5_k, s_tile_k, MESH_QT_Q5_K, 256, 8)
S_DRIVER(s_gemm_q6_k, s_tile_k, MESH_QT_Q6_K, 256, 8)
S_DRIVER(s_gemm_f32, s_tile_f, MESH_QT_F32, 1, 4)
S_DRIVER(s_gemm_f16, s_tile_f, MESH_QT_F16, 1, 4)
S_DRIVER(s_gemm_bf16, s_tile_f, MESH_QT_BF16, 1, 4)

// ---------------------------------------------------------------- activations

// Quantizes 32 floats against scale 1/d (id): round to nearest even, as
// lrintf does in the scalar reference, clamped to +-127. Returns the int32
// lanes packed to 32 int8 in element order.
S_INLINE __m256i s_round32(const float *x, float id) {
    __m256 vid = _mm256_set1_ps(id);
    const __m256i lo = _mm256_set1_epi32(-127), hi = _mm256_set1_epi32(127);
    __m256i q[4];
    for (int j = 0; j < 4; j++) {
        __m256i v = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 8 * j), vid));
        q[j] = _mm256_min_epi32(_mm256_max_epi32(v, lo), hi);
    }
    // packs work per 128-bit lane: fix the order with one permute at the end.
    __m256i p16a = _mm256_packs_epi32(q[0], q[1]), p16b = _mm256_packs_epi32(q[2], q[3]);
    __m256i p8 = _mm256_packs_epi16(p16a, p16b);
    return _mm256_permutevar8x32_epi32(p8, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

S_INLINE float s_absmax(const float *x, int n) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 m = _mm256_setzero_ps();
    for (int i = 0; i < n; i += 8)
        m = _mm256_max_ps(m, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + i)));
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    h = _mm_max_ss(h, _mm_movehdup_ps(h));
    return _mm_cvtss_f32(h);
}

// Same bytes as the scalar reference quantizers of Q8_0 and Q8_K (same
// float operations; max is exact; rounding is to nearest even in both).
void mesh__quantize_act_avx2(mesh_qtype_t t, const float *x, void *out, int64_t n);
void mesh__quantize_act_avx2(mesh_qtype_t t, const float *x, void *out, int64_t n) {
    if (t == MESH_QT_Q8_0) {
        mesh_block_q8_0_t *b = out;
        for (int64_t i = 0; i < n / 32; i++, x += 32) {
            float d = s_absmax(x, 32) / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
            b[i].d = mesh_f32_to_fp16(d);
            _mm256_storeu_si256((__m256i *)b[i].qs, s_round32(x, id));
        }
    } else { // MESH_QT_Q8_K
        mesh_block_q8_k_t *b = out;
        for (int64_t i = 0; i < n / 256; i++, x += 256) {
            float d = s_absmax(x, 256) / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
            b[i].d = d;
            for (int g = 0; g < 8; g++) {
                __m256i q = s_round32(x + 32 * g, id);
                _mm256_storeu_si256((__m256i *)(b[i].qs + 32 * g), q);
                // bsums: sums of 16 quants = madd(maddubs(1, q)) folded per half.
                __m256i s16 = _mm256_maddubs_epi16(_mm256_set1_epi8(1), q); // pairs
                __m256i s32 = _mm256_madd_epi16(s16, _mm256_set1_epi16(1)); // quads
                // lanes 0..3 -> elements 0..15, lanes 4..7 -> 16..31
                __m256i t = _mm256_hadd_epi32(s32, s32); // [q0+q1, q2+q3, ..| q4+q5, q6+q7, ..]
                t = _mm256_hadd_epi32(t, t);             // lane 0: elements 0..15, lane 4: 16..31
                b[i].bsums[2 * g] = (int16_t)_mm256_extract_epi32(t, 0);
                b[i].bsums[2 * g + 1] = (int16_t)_mm256_extract_epi32(t, 4);
            }
        }
    }
}

mesh__gemm_fn mesh__gemm_avx2(uint32_t wtype) {
    switch (wtype) {
    case MESH_QT_Q8_0: return s_gemm_q8_0;
    case MESH_QT_Q4_0: return s_gemm_q4_0;
    case MESH_QT_Q4_1: return s_gemm_q4_1;
    case MESH_QT_Q5_0: return s_gemm_q5_0;
    case MESH_QT_Q5_1: return s_gemm_q5_1;
    case MESH_QT_Q2_K: return s_gemm_q2_k;
    case MESH_QT_Q3_K: return s_gemm_q3_k;
    case MESH_QT_Q4_K: return s_gemm_q4_k;
    case MESH_QT_Q5_K: return s_gemm_q5_k;
    case MESH_QT_Q6_K: return s_gemm_q6_k;
    case MESH_QT_F32: return s_gemm_f32;
    case MESH_QT_F16: return s_gemm_f16;
    case MESH_QT_BF16: return s_gemm_bf16;
    default: return NULL;
    }
}
