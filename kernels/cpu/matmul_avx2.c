// SPDX-License-Identifier: MIT
// AVX2/FMA kernels for the CPU matmul: an f32 register-tiled dot product
// (4 weight rows x 3 tokens per tile, one 8-lane accumulator per output) and
// fast bf16/f16 -> f32 row conversion. Each output element is computed by
// the same instruction sequence in every tile shape (fma chain over k in
// steps of 8 from zero, then one fixed horizontal sum), so results do not
// depend on how many tokens are in the batch.
#include "cpu_impl.h"
#include "simd_avx2.h"

#include <immintrin.h>


// Stores the nr (<= 4) row results of one token.
static inline void s_store4(float *y, __m128 v, int nr) {
    if (nr == 4) {
        _mm_storeu_ps(y, v);
    } else {
        float r[4];
        _mm_storeu_ps(r, v);
        for (int i = 0; i < nr; i++)
            y[i] = r[i];
    }
}

void mesh__cpu_dot_tile_avx2(const float *w, int nr, int64_t k, const float *x,
                             int64_t x_stride, int n, float *y, int64_t y_stride) {
    // Rows past nr read row 0 again (its results are dropped): keeps one code path.
    const float *w0 = w, *w1 = w + (nr > 1 ? 1 : 0) * k, *w2 = w + (nr > 2 ? 2 : 0) * k,
                *w3 = w + (nr > 3 ? 3 : 0) * k;
    int t = 0;
    for (; t + 3 <= n; t += 3) {
        const float *x0 = x + (int64_t)t * x_stride, *x1 = x0 + x_stride, *x2 = x1 + x_stride;
        __m256 a00 = _mm256_setzero_ps(), a01 = a00, a02 = a00, a10 = a00, a11 = a00, a12 = a00,
               a20 = a00, a21 = a00, a22 = a00, a30 = a00, a31 = a00, a32 = a00;
        for (int64_t i = 0; i < k; i += 8) {
            __m256 b0 = _mm256_loadu_ps(x0 + i), b1 = _mm256_loadu_ps(x1 + i),
                   b2 = _mm256_loadu_ps(x2 + i);
            __m256 v = _mm256_loadu_ps(w0 + i);
            a00 = _mm256_fmadd_ps(v, b0, a00);
            a01 = _mm256_fmadd_ps(v, b1, a01);
            a02 = _mm256_fmadd_ps(v, b2, a02);
            v = _mm256_loadu_ps(w1 + i);
            a10 = _mm256_fmadd_ps(v, b0, a10);
            a11 = _mm256_fmadd_ps(v, b1, a11);
            a12 = _mm256_fmadd_ps(v, b2, a12);
            v = _mm256_loadu_ps(w2 + i);
            a20 = _mm256_fmadd_ps(v, b0, a20);
            a21 = _mm256_fmadd_ps(v, b1, a21);
            a22 = _mm256_fmadd_ps(v, b2, a22);
            v = _mm256_loadu_ps(w3 + i);
            a30 = _mm256_fmadd_ps(v, b0, a30);
            a31 = _mm256_fmadd_ps(v, b1, a31);
            a32 = _mm256_fmadd_ps(v, b2, a32);
        }
        __m256 r01 = mesh__avx2_hsum8(a00, a01, a10, a11, a20, a21, a30, a31);
        __m256 r2 = mesh__avx2_hsum8(a02, a02, a12, a12, a22, a22, a32, a32);
        s_store4(y + (int64_t)t * y_stride, _mm256_castps256_ps128(r01), nr);
        s_store4(y + (int64_t)(t + 1) * y_stride, _mm256_extractf128_ps(r01, 1), nr);
        s_store4(y + (int64_t)(t + 2) * y_stride, _mm256_castps256_ps128(r2), nr);
    }
    for (; t < n; t++) {
        const float *x0 = x + (int64_t)t * x_stride;
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (int64_t i = 0; i < k; i += 8) {
            __m256 b0 = _mm256_loadu_ps(x0 + i);
            a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w0 + i), b0, a0);
            a1 = _mm256_fmadd_ps(_mm256_loadu_ps(w1 + i), b0, a1);
            a2 = _mm256_fmadd_ps(_mm256_loadu_ps(w2 + i), b0, a2);
            a3 = _mm256_fmadd_ps(_mm256_loadu_ps(w3 + i), b0, a3);
        }
        s_store4(y + (int64_t)t * y_stride, _mm256_castps256_ps128(mesh__avx2_hsum8(a0, a0, a1, a1, a2, a2, a3, a3)), nr);
    }
}

void mesh__cpu_bf16_to_f32_avx2(const uint16_t *src, float *dst, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(src + i)));
        _mm256_storeu_ps(dst + i, _mm256_castsi256_ps(_mm256_slli_epi32(v, 16)));
    }
    for (; i < n; i++) {
        uint32_t b = (uint32_t)src[i] << 16;
        float f;
        __builtin_memcpy(&f, &b, 4);
        dst[i] = f;
    }
}

void mesh__cpu_f16_to_f32_avx2(const uint16_t *src, float *dst, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + i))));
    for (; i < n; i++)
        dst[i] = _cvtsh_ss(src[i]);
}

// Fused bf16 variant for few tokens (decode): converts each 8-element slice
// of the weight rows in registers instead of through scratch. Same values,
// same fma order as converting first and calling the f32 tile, so results
// are bit-identical to it.
void mesh__cpu_dot_tile_bf16_avx2(const uint16_t *w, size_t row_stride, int nr, int64_t k,
                                  const float *x, int64_t x_stride, int n, float *y,
                                  int64_t y_stride) {
    const uint16_t *w0 = w, *w1 = w + (nr > 1 ? 1 : 0) * row_stride,
                   *w2 = w + (nr > 2 ? 2 : 0) * row_stride, *w3 = w + (nr > 3 ? 3 : 0) * row_stride;
#define S_LD(p) _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(p))), 16))
    for (int t = 0; t < n; t++) {
        const float *x0 = x + (int64_t)t * x_stride;
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (int64_t i = 0; i < k; i += 8) {
            __m256 b0 = _mm256_loadu_ps(x0 + i);
            a0 = _mm256_fmadd_ps(S_LD(w0 + i), b0, a0);
            a1 = _mm256_fmadd_ps(S_LD(w1 + i), b0, a1);
            a2 = _mm256_fmadd_ps(S_LD(w2 + i), b0, a2);
            a3 = _mm256_fmadd_ps(S_LD(w3 + i), b0, a3);
        }
        s_store4(y + (int64_t)t * y_stride, _mm256_castps256_ps128(mesh__avx2_hsum8(a0, a0, a1, a1, a2, a2, a3, a3)), nr);
    }
#undef S_LD
}
