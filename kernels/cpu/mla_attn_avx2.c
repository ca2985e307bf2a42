// SPDX-License-Identifier: MIT
// AVX2/FMA inner loop of the MLA absorbed attention: one token's group of
// heads over its sequence's cached rows, in chunks with running max/sum.
// Vector dot products (two heads per cache row load), a vector exp
// (Cephes-style polynomial, ~2 ulp) and vector accumulation of the latents.
// Every head's arithmetic is the same whatever the group, so the grouping
// never changes results. Same contract as the scalar loop in mla_attn.c;
// needs d_kv and kv_lora multiples of 8.
#include "cpu_impl.h"
#include "simd_avx2.h"

#include <immintrin.h>
#include <math.h>

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


// Scores of one head against rows [j0, cn).
static inline void s_scores1(const float *qh, const float *const *rows, int j0, int cn, int d_kv,
                             float scale, float *sc) {
    int j = j0;
    // Four rows at a time: independent fma chains; each score's own chain is
    // unchanged, so the result does not depend on grouping.
    for (; j + 4 <= cn; j += 4) {
        const float *r0 = rows[j], *r1 = rows[j + 1], *r2 = rows[j + 2], *r3 = rows[j + 3];
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (int i = 0; i < d_kv; i += 8) {
            __m256 qv = _mm256_loadu_ps(qh + i);
            a0 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(r0 + i), a0);
            a1 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(r1 + i), a1);
            a2 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(r2 + i), a2);
            a3 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(r3 + i), a3);
        }
        sc[j] = mesh__avx2_hsum(a0) * scale;
        sc[j + 1] = mesh__avx2_hsum(a1) * scale;
        sc[j + 2] = mesh__avx2_hsum(a2) * scale;
        sc[j + 3] = mesh__avx2_hsum(a3) * scale;
    }
    for (; j < cn; j++) {
        const float *r = rows[j];
        __m256 acc = _mm256_setzero_ps();
        for (int i = 0; i < d_kv; i += 8)
            acc = _mm256_fmadd_ps(_mm256_loadu_ps(qh + i), _mm256_loadu_ps(r + i), acc);
        sc[j] = mesh__avx2_hsum(acc) * scale;
    }
}

// Scores of two heads, four rows at a time (8 chains), the rest one by one.
static inline void s_scores2(const float *qa, const float *qb, const float *const *rows, int cn,
                             int d_kv, float scale, float *sa, float *sb) {
    int j = 0;
    for (; j + 4 <= cn; j += 4) {
        const float *r0 = rows[j], *r1 = rows[j + 1], *r2 = rows[j + 2], *r3 = rows[j + 3];
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0,
               b3 = a0;
        for (int i = 0; i < d_kv; i += 8) {
            __m256 qva = _mm256_loadu_ps(qa + i), qvb = _mm256_loadu_ps(qb + i), rv;
            rv = _mm256_loadu_ps(r0 + i);
            a0 = _mm256_fmadd_ps(qva, rv, a0);
            b0 = _mm256_fmadd_ps(qvb, rv, b0);
            rv = _mm256_loadu_ps(r1 + i);
            a1 = _mm256_fmadd_ps(qva, rv, a1);
            b1 = _mm256_fmadd_ps(qvb, rv, b1);
            rv = _mm256_loadu_ps(r2 + i);
            a2 = _mm256_fmadd_ps(qva, rv, a2);
            b2 = _mm256_fmadd_ps(qvb, rv, b2);
            rv = _mm256_loadu_ps(r3 + i);
            a3 = _mm256_fmadd_ps(qva, rv, a3);
            b3 = _mm256_fmadd_ps(qvb, rv, b3);
        }
        __m256 r = _mm256_mul_ps(mesh__avx2_hsum8(a0, b0, a1, b1, a2, b2, a3, b3), _mm256_set1_ps(scale));
        _mm_storeu_ps(sa + j, _mm256_castps256_ps128(r));
        _mm_storeu_ps(sb + j, _mm256_extractf128_ps(r, 1));
    }
    s_scores1(qa, rows, j, cn, d_kv, scale, sa);
    s_scores1(qb, rows, j, cn, d_kv, scale, sb);
}

// oh += sum_j p_j rows[j][:kv_lora], 64 dims at a time in registers.
// Also *l += p_j in j order, inside the first block's loop: a serial add
// chain that would otherwise stall on its own latency.
static inline void s_acc1(float *oh, const float *p, const float *const *rows, int cn, int kv_lora,
                          float *l) {
    int i0 = 0;
    float ls = *l;
    for (; i0 + 64 <= kv_lora; i0 += 64) {
        __m256 o0 = _mm256_loadu_ps(oh + i0), o1 = _mm256_loadu_ps(oh + i0 + 8),
               o2 = _mm256_loadu_ps(oh + i0 + 16), o3 = _mm256_loadu_ps(oh + i0 + 24),
               o4 = _mm256_loadu_ps(oh + i0 + 32), o5 = _mm256_loadu_ps(oh + i0 + 40),
               o6 = _mm256_loadu_ps(oh + i0 + 48), o7 = _mm256_loadu_ps(oh + i0 + 56);
        for (int j = 0; j < cn; j++) {
            __m256 vp = _mm256_set1_ps(p[j]);
            const float *cr = rows[j] + i0;
            if (i0 == 0)
                ls += p[j];
            o0 = _mm256_fmadd_ps(vp, _mm256_loadu_ps(cr), o0);
            o1 = _mm256_fmadd_ps(vp, _mm256_loadu_ps(cr + 8), o1);
            o2 = _mm256_fmadd_ps(vp, _mm256_loadu_ps(cr + 16), o2);
            o3 = _mm256_fmadd_ps(vp, _mm256_loadu_ps(cr + 24), o3);
            o4 = _mm256_fmadd_ps(vp, _mm256_loadu_ps(cr + 32), o4);
            o5 = _mm256_fmadd_ps(vp, _mm256_loadu_ps(cr + 40), o5);
            o6 = _mm256_fmadd_ps(vp, _mm256_loadu_ps(cr + 48), o6);
            o7 = _mm256_fmadd_ps(vp, _mm256_loadu_ps(cr + 56), o7);
        }
        _mm256_storeu_ps(oh + i0, o0);
        _mm256_storeu_ps(oh + i0 + 8, o1);
        _mm256_storeu_ps(oh + i0 + 16, o2);
        _mm256_storeu_ps(oh + i0 + 24, o3);
        _mm256_storeu_ps(oh + i0 + 32, o4);
        _mm256_storeu_ps(oh + i0 + 40, o5);
        _mm256_storeu_ps(oh + i0 + 48, o6);
        _mm256_storeu_ps(oh + i0 + 56, o7);
    }
    for (; i0 < kv_lora; i0 += 8) {
        __m256 o0 = _mm256_loadu_ps(oh + i0);
        for (int j = 0; j < cn; j++) {
            o0 = _mm256_fmadd_ps(_mm256_set1_ps(p[j]), _mm256_loadu_ps(rows[j] + i0), o0);
            if (i0 == 0)
                ls += p[j];
        }
        _mm256_storeu_ps(oh + i0, o0);
    }
    *l = ls;
}

// Two heads at once, 32 dims x 2 heads in registers (kv_lora % 32 == 0).
static inline void s_acc2(float *oa, float *ob, const float *pa, const float *pb,
                          const float *const *rows, int cn, int kv_lora, float *la, float *lb) {
    float sa = *la, sb = *lb;
    for (int i0 = 0; i0 < kv_lora; i0 += 32) {
        __m256 a0 = _mm256_loadu_ps(oa + i0), a1 = _mm256_loadu_ps(oa + i0 + 8),
               a2 = _mm256_loadu_ps(oa + i0 + 16), a3 = _mm256_loadu_ps(oa + i0 + 24),
               b0 = _mm256_loadu_ps(ob + i0), b1 = _mm256_loadu_ps(ob + i0 + 8),
               b2 = _mm256_loadu_ps(ob + i0 + 16), b3 = _mm256_loadu_ps(ob + i0 + 24);
        for (int j = 0; j < cn; j++) {
            __m256 va = _mm256_set1_ps(pa[j]), vb = _mm256_set1_ps(pb[j]), cv;
            const float *cr = rows[j] + i0;
            if (i0 == 0) {
                sa += pa[j];
                sb += pb[j];
            }
            cv = _mm256_loadu_ps(cr);
            a0 = _mm256_fmadd_ps(va, cv, a0);
            b0 = _mm256_fmadd_ps(vb, cv, b0);
            cv = _mm256_loadu_ps(cr + 8);
            a1 = _mm256_fmadd_ps(va, cv, a1);
            b1 = _mm256_fmadd_ps(vb, cv, b1);
            cv = _mm256_loadu_ps(cr + 16);
            a2 = _mm256_fmadd_ps(va, cv, a2);
            b2 = _mm256_fmadd_ps(vb, cv, b2);
            cv = _mm256_loadu_ps(cr + 24);
            a3 = _mm256_fmadd_ps(va, cv, a3);
            b3 = _mm256_fmadd_ps(vb, cv, b3);
        }
        _mm256_storeu_ps(oa + i0, a0);
        _mm256_storeu_ps(oa + i0 + 8, a1);
        _mm256_storeu_ps(oa + i0 + 16, a2);
        _mm256_storeu_ps(oa + i0 + 24, a3);
        _mm256_storeu_ps(ob + i0, b0);
        _mm256_storeu_ps(ob + i0 + 8, b1);
        _mm256_storeu_ps(ob + i0 + 16, b2);
        _mm256_storeu_ps(ob + i0 + 24, b3);
    }
    *la = sa;
    *lb = sb;
}

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
        float sc[MESH_ATTN_MAX_GROUP][S_CHUNK + 8];
        get_rows(rows_ctx, s0, cn, rows); // once for all heads of the group
        // Scores, two heads x four rows at a time where possible (each row's
        // q and cache loads serve two heads); every score keeps its own fma
        // chain in the same order, so grouping never changes a result.
        int h = 0;
        for (; h + 2 <= nh; h += 2)
            s_scores2(q + h * q_head, q + (h + 1) * q_head, rows, cn, d_kv, scale, sc[h], sc[h + 1]);
        for (; h < nh; h++)
            s_scores1(q + h * q_head, rows, 0, cn, d_kv, scale, sc[h]);
        for (h = 0; h < nh; h++) {
            float *oh = o + h * o_head, *sh = sc[h];
            // max is exact in any order; max_ps(x, acc) keeps acc for a NaN
            // x, as the scalar compare did.
            for (int j = cn; j < ((cn + 7) & ~7); j++)
                sh[j] = -INFINITY;
            __m256 vm = _mm256_set1_ps(-INFINITY);
            for (int j = 0; j < cn; j += 8)
                vm = _mm256_max_ps(_mm256_loadu_ps(sh + j), vm);
            float mv[8], cmax = -INFINITY;
            _mm256_storeu_ps(mv, vm);
            for (int j = 0; j < 8; j++)
                cmax = mv[j] > cmax ? mv[j] : cmax;
            float nm = cmax > m[h] ? cmax : m[h];
            float rs = expf(m[h] - nm);
            l[h] *= rs;
            if (rs != 1.0f) {
                __m256 vr = _mm256_set1_ps(rs);
                for (int i = 0; i < kv_lora; i += 8)
                    _mm256_storeu_ps(oh + i, _mm256_mul_ps(_mm256_loadu_ps(oh + i), vr));
            }
            __m256 vnm = _mm256_set1_ps(nm);
            for (int j = 0; j < cn; j += 8)
                _mm256_storeu_ps(sh + j, s_exp(_mm256_sub_ps(_mm256_loadu_ps(sh + j), vnm)));
            m[h] = nm;
        }
        // o += p_j c_j: head pairs share each cache row load (32 latent dims
        // x 2 heads in registers), single heads 64 dims; each element still
        // sums over j in order.
        h = 0;
        if (kv_lora % 32 == 0)
            for (; h + 2 <= nh; h += 2)
                s_acc2(o + h * o_head, o + (h + 1) * o_head, sc[h], sc[h + 1], rows, cn, kv_lora, &l[h],
                       &l[h + 1]);
        for (; h < nh; h++)
            s_acc1(o + h * o_head, sc[h], rows, cn, kv_lora, &l[h]);
    }
    for (int h = 0; h < nh; h++) {
        __m256 inv = _mm256_set1_ps(l[h] > 0 ? 1.0f / l[h] : 0.0f);
        for (int i = 0; i < kv_lora; i += 8)
            _mm256_storeu_ps(o + h * o_head + i, _mm256_mul_ps(_mm256_loadu_ps(o + h * o_head + i), inv));
    }
}
