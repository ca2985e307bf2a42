// SPDX-License-Identifier: MIT
// AVX2/FMA inner loop of the MLA absorbed attention: one (token, head) over
// its sequence's cached rows, in chunks with running max/sum. Vector dot
// products, a vector exp (Cephes-style polynomial, ~2 ulp) and vector
// accumulation of the latents. Same contract as the scalar loop in
// mla_attn.c; needs d_kv and kv_lora multiples of 8.
#include "cpu_impl.h"

#include <immintrin.h>
#include <math.h>

static inline float s_hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
}

// exp(x) for x <= 0 (scores minus their max); underflows to 0 below -87.
static inline __m256 s_exp(__m256 x) {
    const __m256 lo = _mm256_set1_ps(-87.3f);
    x = _mm256_max_ps(x, lo);
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    __m256 r2 = _mm256_mul_ps(r, r);
    p = _mm256_fmadd_ps(p, r2, _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

#define S_CHUNK 64

void mesh__cpu_attn_heads_avx2(const float *q, int nh, int64_t q_head, float *o, int64_t o_head,
                               int n_ctx, int d_kv, int kv_lora, float scale,
                               const mesh_attn_rows_fn get_rows, void *rows_ctx) {
    float m[MESH_ATTN_MAX_GROUP], l[MESH_ATTN_MAX_GROUP];
    for (int h = 0; h < nh; h++) {
        m[h] = -INFINITY;
        l[h] = 0;
        for (int i = 0; i < kv_lora; i += 8)
            _mm256_storeu_ps(o + h * o_head + i, _mm256_setzero_ps());
    }
    for (int s0 = 0; s0 < n_ctx; s0 += S_CHUNK) {
        int cn = n_ctx - s0 < S_CHUNK ? n_ctx - s0 : S_CHUNK;
        const float *rows[S_CHUNK];
        get_rows(rows_ctx, s0, cn, rows); // once for all heads of the group
        for (int h = 0; h < nh; h++) {
            const float *qh = q + h * q_head;
            float *oh = o + h * o_head;
            float sc[S_CHUNK + 8];
            float cmax = -INFINITY;
            for (int j = 0; j < cn; j++) {
                const float *r = rows[j];
                __m256 acc = _mm256_setzero_ps();
                for (int i = 0; i < d_kv; i += 8)
                    acc = _mm256_fmadd_ps(_mm256_loadu_ps(qh + i), _mm256_loadu_ps(r + i), acc);
                sc[j] = s_hsum(acc) * scale;
                cmax = sc[j] > cmax ? sc[j] : cmax;
            }
            float nm = cmax > m[h] ? cmax : m[h];
            float rs = expf(m[h] - nm);
            l[h] *= rs;
            if (rs != 1.0f) {
                __m256 vr = _mm256_set1_ps(rs);
                for (int i = 0; i < kv_lora; i += 8)
                    _mm256_storeu_ps(oh + i, _mm256_mul_ps(_mm256_loadu_ps(oh + i), vr));
            }
            for (int j = cn; j < ((cn + 7) & ~7); j++)
                sc[j] = -INFINITY;
            __m256 vnm = _mm256_set1_ps(nm);
            for (int j = 0; j < cn; j += 8)
                _mm256_storeu_ps(sc + j, s_exp(_mm256_sub_ps(_mm256_loadu_ps(sc + j), vnm)));
            for (int j = 0; j < cn; j++) {
                l[h] += sc[j];
                __m256 vp = _mm256_set1_ps(sc[j]);
                const float *cr = rows[j];
                for (int i = 0; i < kv_lora; i += 8)
                    _mm256_storeu_ps(oh + i, _mm256_fmadd_ps(vp, _mm256_loadu_ps(cr + i),
                                                             _mm256_loadu_ps(oh + i)));
            }
            m[h] = nm;
        }
    }
    for (int h = 0; h < nh; h++) {
        __m256 inv = _mm256_set1_ps(l[h] > 0 ? 1.0f / l[h] : 0.0f);
        for (int i = 0; i < kv_lora; i += 8)
            _mm256_storeu_ps(o + h * o_head + i, _mm256_mul_ps(_mm256_loadu_ps(o + h * o_head + i), inv));
    }
}
