// SPDX-License-Identifier: MIT
// AVX2 helpers shared by the *_avx2.c kernels (include only from files built
// with -mavx2 -mfma). The reductions have one fixed pairing, so every kernel
// that uses them gets the same bits for the same inputs: the batch-invariance
// of the CPU backend depends on it.
#ifndef MESH_SIMD_AVX2_H
#define MESH_SIMD_AVX2_H

#include <immintrin.h>

// Sum of the 8 lanes: ((v0+v4)+(v2+v6)) + ((v1+v5)+(v3+v7)).
static inline float mesh__avx2_hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
}

// Eight mesh__avx2_hsum at once with the same pairing (operands at most
// commuted, which is exact): returns [A0, A1, A2, A3, B0, B1, B2, B3]. A
// separate reduction per output costs as much as an fma loop over a short
// row (k = 64).
static inline __m256 mesh__avx2_hsum8(__m256 A0, __m256 B0, __m256 A1, __m256 B1, __m256 A2,
                                      __m256 B2, __m256 A3, __m256 B3) {
    // per pair: [A_lo + A_hi, B_lo + B_hi]
    __m256 s0 = _mm256_add_ps(_mm256_permute2f128_ps(A0, B0, 0x20), _mm256_permute2f128_ps(A0, B0, 0x31));
    __m256 s1 = _mm256_add_ps(_mm256_permute2f128_ps(A1, B1, 0x20), _mm256_permute2f128_ps(A1, B1, 0x31));
    __m256 s2 = _mm256_add_ps(_mm256_permute2f128_ps(A2, B2, 0x20), _mm256_permute2f128_ps(A2, B2, 0x31));
    __m256 s3 = _mm256_add_ps(_mm256_permute2f128_ps(A3, B3, 0x20), _mm256_permute2f128_ps(A3, B3, 0x31));
    // lane 0 of each half: (s0 + s2) + (s1 + s3)
#define MESH__AVX2_RED(v)                                                                      \
    do {                                                                                       \
        v = _mm256_add_ps(v, _mm256_shuffle_ps(v, v, _MM_SHUFFLE(1, 0, 3, 2)));                \
        v = _mm256_add_ps(v, _mm256_shuffle_ps(v, v, _MM_SHUFFLE(2, 3, 0, 1)));                \
    } while (0)
    MESH__AVX2_RED(s0);
    MESH__AVX2_RED(s1);
    MESH__AVX2_RED(s2);
    MESH__AVX2_RED(s3);
#undef MESH__AVX2_RED
    __m256 u = _mm256_unpacklo_ps(s0, s1), w = _mm256_unpacklo_ps(s2, s3);
    return _mm256_shuffle_ps(u, w, _MM_SHUFFLE(1, 0, 1, 0));
}

#endif
