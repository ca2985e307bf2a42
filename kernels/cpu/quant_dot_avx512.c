// SPDX-License-Identifier: MIT
// AVX-512 (F/BW/VL/DQ) fused dot products (see quant_dot.h for the contract).
//
// Same shape and the same exactness argument as quant_dot_avx2.c: a micro-
// tile of R weight rows x C activation columns (R*C <= 8 pairs); integer
// block dots are exact and every pair then forms, block by block, the float
// expression the scalar kernel forms. What the wider registers buy:
//   - 32-element blocks: two consecutive blocks per zmm (one multiply-add
//     chain for both), the per-block totals split again in the reduction;
//     the two blocks are then added to the float accumulator in block order.
//   - K-quants: two 32-element groups of a super-block per zmm, with the 4
//     sub-block scales of those 64 elements in one permuted vector.
//   - f32/f16/bf16: 16-lane FMA chains (summation order differs from scalar
//     and AVX2, as the contract allows for these types).
// Cost: the same horizontal reduction per block as AVX2 plus one extract per
// pair; about half the multiply-add instructions.
//
// tests/engine test_simd_levels compares it with scalar bit for bit wherever
// it runs. On a CPU with AVX-512 VNNI, Q8_0 takes quant_dot_avx512vnni.c
// instead (quant_dot.c chooses).
#include "quant_dot_impl.h"

#include <immintrin.h>
#include <string.h>

#define S_INLINE static inline __attribute__((always_inline))

// lane i = sum of the 8 int32 of v[i] (exact).
S_INLINE __m256i s_reduce8(const __m256i *v) {
    __m256i t0 = _mm256_hadd_epi32(_mm256_hadd_epi32(v[0], v[1]), _mm256_hadd_epi32(v[2], v[3]));
    __m256i t1 = _mm256_hadd_epi32(_mm256_hadd_epi32(v[4], v[5]), _mm256_hadd_epi32(v[6], v[7]));
    return _mm256_add_epi32(_mm256_permute2x128_si256(t0, t1, 0x20),
                            _mm256_permute2x128_si256(t0, t1, 0x31));
}

S_INLINE float s_h2f(uint16_t h) { return _cvtsh_ss(h); } // exact, as mesh__h2f

S_INLINE __m512i s_join(__m256i lo, __m256i hi) {
    return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
}

// byte i = 0xFF when bit i of qh is set.
S_INLINE __m256i s_bits32(uint32_t qh) {
    return _mm256_movm_epi8((__mmask32)qh);
}

S_INLINE __m256i s_nibbles16(const uint8_t *qs) {
    __m128i t = _mm_loadu_si128((const __m128i *)qs);
    const __m128i m4 = _mm_set1_epi8(0xF);
    return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(t, 4), m4), _mm_and_si128(t, m4));
}

// ---------------------------------------------------------------- 32-element blocks

S_INLINE size_t s_block32_size(uint32_t T) {
    return T == MESH_QT_Q8_0   ? sizeof(mesh_block_q8_0_t)
           : T == MESH_QT_Q4_0 ? sizeof(mesh_block_q4_0_t)
           : T == MESH_QT_Q4_1 ? sizeof(mesh_block_q4_1_t)
           : T == MESH_QT_Q5_0 ? sizeof(mesh_block_q5_0_t)
                               : sizeof(mesh_block_q5_1_t);
}

// Codes of one 32-element weight block: signed (q - offset) for the types
// without a min, unsigned for Q4_1/Q5_1.
S_INLINE __m256i s_decode32(uint32_t T, const uint8_t *blk, float *d, float *m) {
    switch (T) {
    case MESH_QT_Q8_0: {
        const mesh_block_q8_0_t *b = (const void *)blk;
        *d = s_h2f(b->d);
        return _mm256_loadu_si256((const __m256i *)b->qs);
    }
    case MESH_QT_Q4_0: {
        const mesh_block_q4_0_t *b = (const void *)blk;
        *d = s_h2f(b->d);
        return _mm256_sub_epi8(s_nibbles16(b->qs), _mm256_set1_epi8(8));
    }
    case MESH_QT_Q4_1: {
        const mesh_block_q4_1_t *b = (const void *)blk;
        *d = s_h2f(b->d);
        *m = s_h2f(b->m);
        return s_nibbles16(b->qs);
    }
    case MESH_QT_Q5_0: {
        const mesh_block_q5_0_t *b = (const void *)blk;
        uint32_t qh;
        memcpy(&qh, b->qh, 4);
        *d = s_h2f(b->d);
        __m256i hb = _mm256_and_si256(s_bits32(qh), _mm256_set1_epi8(0x10));
        return _mm256_sub_epi8(_mm256_or_si256(s_nibbles16(b->qs), hb), _mm256_set1_epi8(16));
    }
    default: { // MESH_QT_Q5_1
        const mesh_block_q5_1_t *b = (const void *)blk;
        uint32_t qh;
        memcpy(&qh, b->qh, 4);
        *d = s_h2f(b->d);
        *m = s_h2f(b->m);
        __m256i hb = _mm256_and_si256(s_bits32(qh), _mm256_set1_epi8(0x10));
        return _mm256_or_si256(s_nibbles16(b->qs), hb);
    }
    }
}

// Per 32-bit lane: sum of 4 products |w|*(x with w's sign). AVX-512 has no
// sign_epi8: negate x under the mask of negative w instead (x = 0 where
// w = 0 is not needed: |w| = 0 there).
S_INLINE __m512i s_dot_i8(__m512i aw, __mmask64 neg, __m512i x) {
    __m512i sx = _mm512_mask_sub_epi8(x, neg, _mm512_setzero_si512(), x);
    return _mm512_madd_epi16(_mm512_maddubs_epi16(aw, sx), _mm512_set1_epi16(1));
}

S_INLINE __m512i s_dot_u8(__m512i w, __m512i x) { // unsigned w
    return _mm512_madd_epi16(_mm512_maddubs_epi16(w, x), _mm512_set1_epi16(1));
}

// NB blocks (1 or 2) starting at block b: per pair one zmm of int32 partial
// sums, lanes 0..7 block b, lanes 8..15 block b+1; then per block, in block
// order, acc += (dw*dx)*isum (+ (mw*dx)*sum(x) for the types with a min).
S_INLINE void s_step32(const uint32_t T, const int R, const int C, const int NB, int64_t b,
                       const uint8_t *w, size_t wrb, const uint8_t *x, size_t xrb, __m256 *acc) {
    const int has_min = T == MESH_QT_Q4_1 || T == MESH_QT_Q5_1;
    const size_t bs = s_block32_size(T);
    __m512i wq[4], aw[4];
    __mmask64 neg[4];
    float dw[2][4], mw[2][4];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++) {
        const uint8_t *wb = w + (size_t)r * wrb + (size_t)b * bs;
        _mm_prefetch((const char *)(wb + 8 * bs), _MM_HINT_T0);
        mw[0][r] = mw[1][r] = 0.0f;
        __m256i q0 = s_decode32(T, wb, &dw[0][r], &mw[0][r]);
        __m256i q1 = NB == 2 ? s_decode32(T, wb + bs, &dw[1][r], &mw[1][r]) : _mm256_setzero_si256();
        wq[r] = s_join(q0, q1);
        if (!has_min) {
            aw[r] = _mm512_abs_epi8(wq[r]);
            neg[r] = _mm512_movepi8_mask(wq[r]);
        }
    }
    __m512i sums[8], sxs[8];
    float dp[2][8], mp[2][8];
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++) {
        sums[i] = sxs[i] = _mm512_setzero_si512();
        dp[0][i] = dp[1][i] = mp[0][i] = mp[1][i] = 0.0f;
    }
#pragma GCC unroll 4
    for (int c = 0; c < C; c++) {
        const mesh_block_q8_0_t *xb = (const mesh_block_q8_0_t *)(x + (size_t)c * xrb) + b;
        __m256i x0 = _mm256_loadu_si256((const __m256i *)xb[0].qs);
        __m256i x1 = NB == 2 ? _mm256_loadu_si256((const __m256i *)xb[1].qs) : _mm256_setzero_si256();
        __m512i xv = s_join(x0, x1);
        float dx0 = s_h2f(xb[0].d), dx1 = NB == 2 ? s_h2f(xb[1].d) : 0.0f;
        __m512i sx = has_min ? s_dot_u8(_mm512_set1_epi8(1), xv) : _mm512_setzero_si512();
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            const int p = r * C + c;
            sums[p] = has_min ? s_dot_u8(wq[r], xv) : s_dot_i8(aw[r], neg[r], xv);
            dp[0][p] = dw[0][r] * dx0;
            if (NB == 2)
                dp[1][p] = dw[1][r] * dx1;
            if (has_min) {
                sxs[p] = sx;
                mp[0][p] = mw[0][r] * dx0;
                if (NB == 2)
                    mp[1][p] = mw[1][r] * dx1;
            }
        }
    }
#pragma GCC unroll 2
    for (int h = 0; h < NB; h++) {
        __m256i part[8], part_x[8];
#pragma GCC unroll 8
        for (int i = 0; i < 8; i++) {
            part[i] = h ? _mm512_extracti64x4_epi64(sums[i], 1) : _mm512_castsi512_si256(sums[i]);
            if (has_min)
                part_x[i] =
                    h ? _mm512_extracti64x4_epi64(sxs[i], 1) : _mm512_castsi512_si256(sxs[i]);
        }
        *acc = _mm256_add_ps(*acc, _mm256_mul_ps(_mm256_loadu_ps(dp[h]),
                                                 _mm256_cvtepi32_ps(s_reduce8(part))));
        if (has_min)
            *acc = _mm256_add_ps(*acc, _mm256_mul_ps(_mm256_loadu_ps(mp[h]),
                                                     _mm256_cvtepi32_ps(s_reduce8(part_x))));
    }
}

S_INLINE void s_tile32(const uint32_t T, const int R, const int C, int64_t nb, const uint8_t *w,
                       size_t wrb, const uint8_t *x, size_t xrb, float *y, size_t ys) {
    __m256 acc = _mm256_setzero_ps();
    int64_t b = 0;
    for (; b + 2 <= nb; b += 2)
        s_step32(T, R, C, 2, b, w, wrb, x, xrb, &acc);
    if (b < nb)
        s_step32(T, R, C, 1, b, w, wrb, x, xrb, &acc);
    float out[8];
    _mm256_storeu_ps(out, acc);
    for (int r = 0; r < R; r++)
        for (int c = 0; c < C; c++)
            y[(size_t)c * ys + r] = out[r * C + c];
}

// ---------------------------------------------------------------- K-quants

// Unsigned codes of elements 32*g .. 32*g+31 of a super-block (the layouts
// as in quant_dot.c s_codes_k).
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
        return _mm256_and_si256(_mm256_srli_epi16(v, 4 * (g & 1)), m4);
    }
    case MESH_QT_Q5_K: {
        const mesh_block_q5_k_t *b = (const void *)blk;
        __m256i v = _mm256_loadu_si256((const __m256i *)(b->qs + 32 * (g >> 1)));
        __m256i lo = _mm256_and_si256(_mm256_srli_epi16(v, 4 * (g & 1)), m4);
        __m256i qh = _mm256_loadu_si256((const __m256i *)b->qh);
        __m256i hb = _mm256_and_si256(_mm256_srli_epi16(qh, g), m1);
        return _mm256_or_si256(lo, _mm256_slli_epi16(hb, 4));
    }
    default: { // MESH_QT_Q6_K
        const mesh_block_q6_k_t *b = (const void *)blk;
        __m256i v = _mm256_loadu_si256((const __m256i *)(b->ql + 64 * h + 32 * (gg & 1)));
        __m256i lo = _mm256_and_si256(_mm256_srli_epi16(v, 4 * (gg >> 1)), m4);
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

S_INLINE void s_tile_k(const uint32_t T, const int R, const int C, int64_t nb, const uint8_t *w,
                       size_t wrb, const uint8_t *x, size_t xrb, float *y, size_t ys) {
    const size_t bs = s_kblock_size(T);
    const int min_kind = mesh__kq_is_min_kind(T);
    // int16 lane j of the permuted scales takes scale (j / 8) of 4: one
    // scale per 16 elements = per 128-bit lane of the maddubs result.
    const __m512i sc_idx = _mm512_set_epi16(3, 3, 3, 3, 3, 3, 3, 3, 2, 2, 2, 2, 2, 2, 2, 2, 1, 1, 1,
                                            1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (int64_t b = 0; b < nb; b++) {
        mesh__kq_prep_t p[4];
        const uint8_t *wb[4];
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            wb[r] = w + (size_t)r * wrb + (size_t)b * bs;
            _mm_prefetch((const char *)(wb[r] + 4 * bs), _MM_HINT_T0);
            _mm_prefetch((const char *)(wb[r] + 4 * bs + 64), _MM_HINT_T0);
            _mm_prefetch((const char *)(wb[r] + 4 * bs + 128), _MM_HINT_T0);
            mesh__kq_prep(T, wb[r], &p[r]);
        }
        const mesh_block_q8_k_t *xb[4];
#pragma GCC unroll 4
        for (int c = 0; c < C; c++)
            xb[c] = (const mesh_block_q8_k_t *)(x + (size_t)c * xrb) + b;
        __m512i sums[8];
#pragma GCC unroll 8
        for (int i = 0; i < 8; i++)
            sums[i] = _mm512_setzero_si512();
#pragma GCC unroll 4
        for (int g = 0; g < 8; g += 2) {
            __m512i u[4], sv[4];
#pragma GCC unroll 4
            for (int r = 0; r < R; r++) {
                u[r] = s_join(s_decode_k(T, wb[r], g), s_decode_k(T, wb[r], g + 1));
                __m128i s4 = _mm_loadl_epi64((const __m128i *)(p[r].sc + 2 * g));
                sv[r] = _mm512_permutexvar_epi16(sc_idx, _mm512_castsi128_si512(s4));
            }
#pragma GCC unroll 4
            for (int c = 0; c < C; c++) {
                __m512i xv = _mm512_loadu_si512((const void *)(xb[c]->qs + 32 * g));
#pragma GCC unroll 4
                for (int r = 0; r < R; r++)
                    sums[r * C + c] = _mm512_add_epi32(
                        sums[r * C + c], _mm512_madd_epi16(_mm512_maddubs_epi16(u[r], xv), sv[r]));
            }
        }
        __m256i half[8];
#pragma GCC unroll 8
        for (int i = 0; i < 8; i++)
            half[i] = _mm256_add_epi32(_mm512_castsi512_si256(sums[i]),
                                       _mm512_extracti64x4_epi64(sums[i], 1));
        int32_t isum[8];
        _mm256_storeu_si256((__m256i *)isum, s_reduce8(half));
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

S_INLINE __m512 s_load_w16(const uint32_t T, const uint8_t *row, int64_t i) {
    if (T == MESH_QT_F32)
        return _mm512_loadu_ps((const float *)row + i);
    __m256i h = _mm256_loadu_si256((const __m256i *)(row + 2 * i));
    if (T == MESH_QT_F16)
        return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

S_INLINE float s_load_w1(const uint32_t T, const uint8_t *row, int64_t i) {
    if (T == MESH_QT_F32) {
        float f;
        memcpy(&f, row + 4 * i, 4);
        return f;
    }
    uint16_t h;
    memcpy(&h, row + 2 * i, 2);
    return T == MESH_QT_F16 ? mesh__h2f(h) : mesh_bf16_to_f32(h);
}

// Fixed-order horizontal sum (the same for every call).
S_INLINE float s_hsum_ps(__m512 v) {
    __m256 a = _mm256_add_ps(_mm512_castps512_ps256(v),
                             _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

S_INLINE void s_tile_f(const uint32_t T, const int R, const int C, int64_t k, const uint8_t *w,
                       size_t wrb, const uint8_t *x, size_t xrb, float *y, size_t ys) {
    __m512 acc[8];
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++)
        acc[i] = _mm512_setzero_ps();
    int64_t k16 = k & ~(int64_t)15;
    for (int64_t i = 0; i < k16; i += 16) {
        __m512 wv[4];
#pragma GCC unroll 4
        for (int r = 0; r < R; r++)
            wv[r] = s_load_w16(T, w + (size_t)r * wrb, i);
#pragma GCC unroll 4
        for (int c = 0; c < C; c++) {
            __m512 xv = _mm512_loadu_ps((const float *)(x + (size_t)c * xrb) + i);
#pragma GCC unroll 4
            for (int r = 0; r < R; r++)
                acc[r * C + c] = _mm512_fmadd_ps(wv[r], xv, acc[r * C + c]);
        }
    }
    for (int r = 0; r < R; r++)
        for (int c = 0; c < C; c++) {
            const float *xc = (const float *)(x + (size_t)c * xrb);
            float s = s_hsum_ps(acc[r * C + c]);
            for (int64_t i = k16; i < k; i++)
                s += s_load_w1(T, w + (size_t)r * wrb, i) * xc[i];
            y[(size_t)c * ys + r] = s;
        }
}

// ---------------------------------------------------------------- drivers

// n_cols == 1: rows 4 at a time; otherwise blocks of 16 rows (they stay in
// L1 across the columns), each in tiles of 2 rows x 4 columns with smaller
// edge tiles (same per-element arithmetic: edges are bit-identical).
//
// Sanitizer builds (ASan) take one 1x1 tile per output instead: with all
// twelve shapes inlined per type, instrumentation makes this file take about
// 7 minutes to compile (1 without). Results are the same bits either way
// (tile shape never changes them), and CI machines without AVX-512 never run
// this code.
#if defined(__SANITIZE_ADDRESS__)
#define S_DRIVER(NAME, KERNEL, T, KDIV)                                                          \
    static void NAME(int64_t k, const void *w, size_t wrb, int nr, const void *x, size_t xrb,     \
                     int nc, float *y, size_t ys) {                                               \
        for (int c = 0; c < nc; c++)                                                              \
            for (int r = 0; r < nr; r++)                                                          \
                KERNEL(T, 1, 1, k / (KDIV), (const uint8_t *)w + (size_t)r * wrb, wrb,            \
                       (const uint8_t *)x + (size_t)c * xrb, xrb, y + (size_t)c * ys + r, ys);    \
    }
#else
#define S_DRIVER(NAME, KERNEL, T, KDIV)                                                          \
    static void NAME(int64_t k, const void *w, size_t wrb, int nr, const void *x, size_t xrb,     \
                     int nc, float *y, size_t ys) {                                               \
        const uint8_t *W = w, *X = x;                                                             \
        int64_t n = k / (KDIV);                                                                   \
        if (nc == 1) {                                                                            \
            int r = 0;                                                                            \
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

#endif

S_DRIVER(s_gemm_q8_0, s_tile32, MESH_QT_Q8_0, 32)
S_DRIVER(s_gemm_q4_0, s_tile32, MESH_QT_Q4_0, 32)
S_DRIVER(s_gemm_q4_1, s_tile32, MESH_QT_Q4_1, 32)
S_DRIVER(s_gemm_q5_0, s_tile32, MESH_QT_Q5_0, 32)
S_DRIVER(s_gemm_q5_1, s_tile32, MESH_QT_Q5_1, 32)
S_DRIVER(s_gemm_q2_k, s_tile_k, MESH_QT_Q2_K, 256)
S_DRIVER(s_gemm_q3_k, s_tile_k, MESH_QT_Q3_K, 256)
S_DRIVER(s_gemm_q4_k, s_tile_k, MESH_QT_Q4_K, 256)
S_DRIVER(s_gemm_q5_k, s_tile_k, MESH_QT_Q5_K, 256)
S_DRIVER(s_gemm_q6_k, s_tile_k, MESH_QT_Q6_K, 256)
S_DRIVER(s_gemm_f32, s_tile_f, MESH_QT_F32, 1)
S_DRIVER(s_gemm_f16, s_tile_f, MESH_QT_F16, 1)
S_DRIVER(s_gemm_bf16, s_tile_f, MESH_QT_BF16, 1)

mesh__gemm_fn mesh__gemm_avx512(uint32_t wtype) {
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
