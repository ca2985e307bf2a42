// SPDX-License-Identifier: MIT
// Every SIMD level of the fused CPU dot products that this CPU has
// (AVX2, AVX-512 on x86-64; NEON on arm64) against the scalar kernel:
// bit-identical for the block types (Q8_0 .. Q6_K), close for f32/f16/bf16
// (those may sum in another order), and batch invariance per level (a
// column's result is the same bits whatever n_cols is). Odd row counts and
// odd block counts reach the edge tiles and the tail paths.
//
// Plain C with no test framework on purpose: the same program is cross-
// compiled for arm64 and run under qemu (simd_cross.sh), and run on hosts
// without cmocka. `--require LEVEL` fails when the CPU lacks LEVEL, so a
// run meant to cover a level cannot silently test only scalar.
#include "cpu_features.h"
#include "quant.h"
#include "quant_dot.h"

#if defined(__aarch64__)
#include "cpu_impl.h" // the NEON matmul kernels
#endif

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t s_rng = 0x9e3779b97f4a7c15ull;
static float s_gauss(void) {
    double u = 0;
    for (int i = 0; i < 12; i++) {
        s_rng ^= s_rng << 13;
        s_rng ^= s_rng >> 7;
        s_rng ^= s_rng << 17;
        u += (double)(s_rng >> 11) / 9007199254740992.0;
    }
    return (float)(u - 6.0);
}

static const mesh_qtype_t s_wtypes[] = {MESH_QT_Q8_0, MESH_QT_Q4_K, MESH_QT_Q6_K, MESH_QT_Q5_0,
                                        MESH_QT_Q4_0, MESH_QT_Q4_1, MESH_QT_Q5_1, MESH_QT_Q2_K,
                                        MESH_QT_Q3_K, MESH_QT_Q5_K, MESH_QT_F32,  MESH_QT_F16,
                                        MESH_QT_BF16};

static int s_failures;

static void s_fail(const char *msg, mesh_qtype_t wt, mesh_simd_level_t lv, long long k, int nc,
                   int c, int r, float a, float b) {
    if (s_failures++ < 20)
        fprintf(stderr, "FAIL %s: %s level %s k=%lld n_cols=%d col %d row %d: %.9g vs %.9g\n", msg,
                mesh_qtype_name(wt), mesh_cpu_simd_name(lv), k, nc, c, r, (double)a, (double)b);
}

static int s_level_present(mesh_simd_level_t lv) {
    const mesh_cpu_features_t *f = mesh_cpu_features();
    switch (lv) {
    case MESH_SIMD_SCALAR: return 1;
    case MESH_SIMD_AVX2: return f->avx2 && f->fma && f->f16c;
    case MESH_SIMD_AVX512:
        return f->avx2 && f->fma && f->f16c && f->avx512f && f->avx512bw && f->avx512vl &&
               f->avx512dq;
    case MESH_SIMD_NEON: return f->neon;
    default: return 0;
    }
}

// One weight type at one k: nr rows, each column count of ncs[0..n_ncs)
// (ascending; the last one is the most columns).
static void s_check_ncs(mesh_qtype_t wt, int64_t k, int nr, const int *ncs, int n_ncs,
                        const mesh_simd_level_t *lvs, int nlv) {
    const int NCMAX = ncs[n_ncs - 1];
    mesh_qtype_t at = mesh_cpu_act_type(wt);
    size_t wrb = mesh_qtype_row_size(wt, k), xrb = mesh_cpu_act_row_size(wt, k);
    if (at == MESH_QT_COUNT || !wrb || !xrb) {
        fprintf(stderr, "FAIL setup: %s k=%lld unsupported\n", mesh_qtype_name(wt), (long long)k);
        s_failures++;
        return;
    }
    uint8_t *w = malloc(wrb * (size_t)nr), *x = malloc(xrb * NCMAX);
    float *tmp = malloc(sizeof(float) * (size_t)k);
    float *ref = malloc(sizeof(float) * (size_t)nr * NCMAX);
    float *ref_abs = malloc(sizeof(float) * (size_t)nr * NCMAX);
    float *y = malloc(sizeof(float) * (size_t)nr * NCMAX), *y1 = malloc(sizeof(float) * (size_t)nr);
    float *wf = malloc(sizeof(float) * (size_t)k), *xf = malloc(sizeof(float) * (size_t)k);
    const mesh_qtype_traits_t *tw = mesh_qtype_traits(wt), *ta = mesh_qtype_traits(at);
    for (int r = 0; r < nr; r++) {
        float scale = 0.01f * (float)(1 + r % 5);
        for (int64_t i = 0; i < k; i++)
            tmp[i] = s_gauss() * scale + (r % 3 == 1 ? 0.004f : 0.0f);
        tw->from_float(tmp, w + (size_t)r * wrb, k);
    }
    for (int c = 0; c < NCMAX; c++) {
        for (int64_t i = 0; i < k; i++)
            tmp[i] = s_gauss() * (float)(1 + c);
        mesh_cpu_quantize_act(at, tmp, x + (size_t)c * xrb, k);
    }
    // sum |w*x| per output: the scale of the rounding error for float types.
    for (int r = 0; r < nr; r++) {
        tw->to_float(w + (size_t)r * wrb, wf, k);
        for (int c = 0; c < NCMAX; c++) {
            ta->to_float(x + (size_t)c * xrb, xf, k);
            double s = 0;
            for (int64_t i = 0; i < k; i++)
                s += fabs((double)wf[i] * xf[i]);
            ref_abs[(size_t)c * nr + r] = (float)s;
        }
    }
    const int exact = at != MESH_QT_F32;
    mesh_cpu_gemm_tile_level(MESH_SIMD_SCALAR, wt, k, w, wrb, nr, x, xrb, NCMAX, ref, (size_t)nr);
    for (int li = 0; li < nlv; li++) {
        mesh_simd_level_t lv = lvs[li];
        for (int ni = 0; ni < n_ncs; ni++) {
            const int nc = ncs[ni];
            mesh_cpu_gemm_tile_level(lv, wt, k, w, wrb, nr, x, xrb, nc, y, (size_t)nr);
            for (int c = 0; c < nc; c++)
                for (int r = 0; r < nr; r++) {
                    float a = y[(size_t)c * nr + r], b = ref[(size_t)c * nr + r];
                    if (exact ? memcmp(&a, &b, sizeof a) != 0
                              : !(fabsf(a - b) <= 1e-5f * ref_abs[(size_t)c * nr + r] + 1e-30f))
                        s_fail(exact ? "not bit-identical to scalar" : "too far from scalar", wt,
                               lv, (long long)k, nc, c, r, a, b);
                }
            // batch invariance: each column alone gives the same bits.
            for (int c = 0; c < nc; c++) {
                mesh_cpu_gemm_tile_level(lv, wt, k, w, wrb, nr, x + (size_t)c * xrb, xrb, 1, y1, 1);
                for (int r = 0; r < nr; r++)
                    if (memcmp(&y1[r], &y[(size_t)c * nr + r], sizeof(float)) != 0)
                        s_fail("batch variance", wt, lv, (long long)k, nc, c, r, y1[r],
                               y[(size_t)c * nr + r]);
            }
        }
    }
    free(w);
    free(x);
    free(tmp);
    free(ref);
    free(ref_abs);
    free(y);
    free(y1);
    free(wf);
    free(xf);
}

static void s_check(mesh_qtype_t wt, int64_t k, int nr, const mesh_simd_level_t *lvs, int nlv) {
    static const int ncs[] = {1, 3, 5, 7}; // decode and edge tiles
    s_check_ncs(wt, k, nr, ncs, 4, lvs, nlv);
}

#if defined(__aarch64__)
// NEON matmul kernels: row conversions bit-identical to the reference
// converters; the f32 dot tile close to a double reference and the same
// bits for every row count and batch size.
static void s_check_matmul_neon(void) {
    enum { K = 100, NR = 4, NT = 5 };
    uint16_t h[K], bf[K];
    float a[K], b[K];
    for (int i = 0; i < K; i++) {
        float v = s_gauss() * 3.0f;
        h[i] = mesh_f32_to_fp16(v);
        bf[i] = mesh_f32_to_bf16(v);
    }
    mesh__cpu_f16_to_f32_neon(h, a, K);
    mesh_qtype_traits(MESH_QT_F16)->to_float(h, b, K);
    if (memcmp(a, b, sizeof a))
        s_fail("f16 row conversion differs", MESH_QT_F16, MESH_SIMD_NEON, K, 1, 0, 0, a[0], b[0]);
    mesh__cpu_bf16_to_f32_neon(bf, a, K);
    mesh_qtype_traits(MESH_QT_BF16)->to_float(bf, b, K);
    if (memcmp(a, b, sizeof a))
        s_fail("bf16 row conversion differs", MESH_QT_BF16, MESH_SIMD_NEON, K, 1, 0, 0, a[0], b[0]);
    static const int64_t ks[2] = {96, K}; // no tail, tail of 4
    for (int kk = 0; kk < 2; kk++) {
        const int64_t k = ks[kk];
        float w[NR * K], x[NT * K], y[NT * NR], y1[NR];
        for (int i = 0; i < NR * K; i++)
            w[i] = s_gauss();
        for (int i = 0; i < NT * K; i++)
            x[i] = s_gauss();
        mesh__cpu_dot_tile_neon(w, NR, k, x, K, NT, y, NR);
        for (int t = 0; t < NT; t++)
            for (int r = 0; r < NR; r++) {
                double ref = 0, mag = 0;
                for (int64_t i = 0; i < k; i++) {
                    ref += (double)w[r * k + i] * x[t * K + i];
                    mag += fabs((double)w[r * k + i] * x[t * K + i]);
                }
                float got = y[t * NR + r];
                if (!(fabs(got - ref) <= 1e-5 * mag))
                    s_fail("f32 dot tile too far from reference", MESH_QT_F32, MESH_SIMD_NEON, k,
                           NT, t, r, got, (float)ref);
                for (int nr = 1; nr <= NR; nr++) { // rows r < nr, one token alone
                    if (r >= nr)
                        continue;
                    mesh__cpu_dot_tile_neon(w, nr, k, x + t * K, K, 1, y1, NR);
                    if (memcmp(&y1[r], &got, sizeof got))
                        s_fail("f32 dot tile batch variance", MESH_QT_F32, MESH_SIMD_NEON, k, nr,
                               t, r, y1[r], got);
                }
            }
    }
}
#endif

int main(int argc, char **argv) {
    mesh_simd_level_t require = MESH_SIMD_COUNT;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: test_simd_levels [--require scalar|avx2|avx512|neon]\n"
                   "Compares every SIMD level of the fused CPU dot products this CPU has with\n"
                   "the scalar kernel. Exit 0 when all match, 1 on a mismatch, 2 on bad use.\n");
            return 0;
        }
        if (!strcmp(argv[i], "--require") && i + 1 < argc) {
            const char *n = argv[++i];
            for (int lv = 0; lv < MESH_SIMD_COUNT; lv++)
                if (!strcmp(n, mesh_cpu_simd_name((mesh_simd_level_t)lv)))
                    require = (mesh_simd_level_t)lv;
            if (require == MESH_SIMD_COUNT) {
                fprintf(stderr, "test_simd_levels: unknown level '%s'\n", n);
                return 2;
            }
            continue;
        }
        fprintf(stderr, "test_simd_levels: unknown argument '%s' (see --help)\n", argv[i]);
        return 2;
    }
    if (require != MESH_SIMD_COUNT && !s_level_present(require)) {
        fprintf(stderr, "FAIL: level %s required but this CPU lacks it\n",
                mesh_cpu_simd_name(require));
        return 1;
    }
    mesh_simd_level_t lvs[MESH_SIMD_COUNT];
    int nlv = 0;
    printf("levels compared with scalar:");
    for (int lv = MESH_SIMD_SCALAR + 1; lv < MESH_SIMD_COUNT; lv++)
        if (s_level_present((mesh_simd_level_t)lv)) {
            lvs[nlv++] = (mesh_simd_level_t)lv;
            printf(" %s", mesh_cpu_simd_name((mesh_simd_level_t)lv));
        }
    printf("%s\n", nlv ? "" : " none (scalar only on this CPU)");
    for (size_t i = 0; i < sizeof s_wtypes / sizeof s_wtypes[0]; i++) {
        mesh_qtype_t wt = s_wtypes[i];
        const int64_t bk = mesh_qtype_traits(mesh_cpu_act_type(wt))->blck;
        // even and odd block counts (the AVX-512 32-blocks go two at a time)
        int64_t ks[3] = {bk == 1 ? 803 : bk * 3, bk == 1 ? 64 : bk * 8, bk == 256 ? 512 : bk * 25};
        for (int j = 0; j < 3; j++)
            s_check(wt, ks[j], 13, lvs, nlv);
    }
    // Wide shapes for the kernels that tile 16 rows x 16 columns (AVX-512
    // VNNI Q8_0): 16-row tiles with a ragged last one, one and two column
    // tiles (past 16 columns the rows go in blocks of 64: 77 rows cross
    // two), and k past one 256-block chunk (sums carried over in y).
    {
        static const int ncs[] = {1, 2, 16, 17, 20};
        s_check_ncs(MESH_QT_Q8_0, 32 * 21, 77, ncs, 5, lvs, nlv);
        s_check_ncs(MESH_QT_Q8_0, 32 * 261, 21, ncs, 5, lvs, nlv);
    }
#if defined(__aarch64__)
    if (s_level_present(MESH_SIMD_NEON)) {
        s_check_matmul_neon();
        printf("matmul NEON kernels checked\n");
    }
#endif
    if (s_failures) {
        fprintf(stderr, "test_simd_levels: %d mismatches\n", s_failures);
        return 1;
    }
    printf("test_simd_levels: all %zu weight types match\n", sizeof s_wtypes / sizeof s_wtypes[0]);
    return 0;
}
