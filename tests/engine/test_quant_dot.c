// SPDX-License-Identifier: MIT
// Fused CPU dot products: every weight type, scalar and AVX2 (when this CPU
// has it), n_cols 1..8 and odd n_rows, against dequantize-then-dot in
// double; the batch invariance (a column's result is bit-identical whatever
// n_cols is and whatever the other columns hold); and scalar == AVX2
// bit-for-bit for the block types.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "cpu_features.h"
#include "quant.h"
#include "quant_dot.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t s_rng = 0x1234567887654321ull;
static float s_gauss(void) {
    double u = 0;
    for (int i = 0; i < 12; i++) { // Irwin-Hall: close enough to gaussian
        s_rng ^= s_rng << 13;
        s_rng ^= s_rng >> 7;
        s_rng ^= s_rng << 17;
        u += (double)(s_rng >> 11) / 9007199254740992.0;
    }
    return (float)(u - 6.0);
}

static const mesh_qtype_t s_wtypes[] = {MESH_QT_F32,  MESH_QT_F16,  MESH_QT_BF16, MESH_QT_Q8_0,
                                        MESH_QT_Q4_0, MESH_QT_Q4_1, MESH_QT_Q5_0, MESH_QT_Q5_1,
                                        MESH_QT_Q2_K, MESH_QT_Q3_K, MESH_QT_Q4_K, MESH_QT_Q5_K,
                                        MESH_QT_Q6_K};

typedef struct {
    mesh_qtype_t wt, at;
    int64_t k;
    int nr, nc;
    size_t wrb, xrb;
    uint8_t *w, *x;
    float *wf, *xf; // dequantized copies
} s_case_t;

static void s_case_init(s_case_t *t, mesh_qtype_t wt, int64_t k, int nr, int nc) {
    t->wt = wt;
    t->at = mesh_cpu_act_type(wt);
    assert_int_not_equal(t->at, MESH_QT_COUNT);
    t->k = k;
    t->nr = nr;
    t->nc = nc;
    t->wrb = mesh_qtype_row_size(wt, k);
    t->xrb = mesh_cpu_act_row_size(wt, k);
    assert_true(t->wrb > 0 && t->xrb > 0);
    t->w = malloc(t->wrb * (size_t)nr);
    t->x = malloc(t->xrb * (size_t)nc);
    t->wf = malloc(sizeof(float) * (size_t)(k * nr));
    t->xf = malloc(sizeof(float) * (size_t)(k * nc));
    float *tmp = malloc(sizeof(float) * (size_t)k);
    const mesh_qtype_traits_t *tw = mesh_qtype_traits(wt), *ta = mesh_qtype_traits(t->at);
    for (int r = 0; r < nr; r++) {
        float scale = 0.01f * (float)(1 + r % 5);
        for (int64_t i = 0; i < k; i++)
            tmp[i] = s_gauss() * scale + (r % 3 == 1 ? 0.004f : 0.0f);
        tw->from_float(tmp, t->w + (size_t)r * t->wrb, k);
        tw->to_float(t->w + (size_t)r * t->wrb, t->wf + r * k, k);
    }
    for (int c = 0; c < nc; c++) {
        for (int64_t i = 0; i < k; i++)
            tmp[i] = s_gauss() * (float)(1 + c);
        mesh_cpu_quantize_act(t->at, tmp, t->x + (size_t)c * t->xrb, k);
        ta->to_float(t->x + (size_t)c * t->xrb, t->xf + c * k, k);
    }
    free(tmp);
}

static void s_case_free(s_case_t *t) {
    free(t->w);
    free(t->x);
    free(t->wf);
    free(t->xf);
}

static void s_run(const s_case_t *t, mesh_simd_level_t lv, int nc, const uint8_t *x, float *y,
                  size_t ys) {
    mesh_cpu_gemm_tile_level(lv, t->wt, t->k, t->w, t->wrb, t->nr, x, t->xrb, nc, y, ys);
}

static int s_have_avx2(void) {
    const mesh_cpu_features_t *f = mesh_cpu_features();
    return f->avx2 && f->fma && f->f16c;
}

static void s_check_type(mesh_qtype_t wt, int64_t k, int nr) {
    s_case_t t;
    const int ncmax = 8;
    s_case_init(&t, wt, k, nr, ncmax);
    mesh_simd_level_t levels[2] = {MESH_SIMD_SCALAR, MESH_SIMD_AVX2};
    int n_levels = s_have_avx2() ? 2 : 1;
    float *ylv[2] = {NULL, NULL};
    for (int li = 0; li < n_levels; li++) {
        size_t ys = (size_t)nr + 3; // a stride larger than n_rows
        float *y1 = malloc(sizeof(float) * ys * ncmax);
        // Reference for every nc: each column alone (n_cols = 1).
        for (int c = 0; c < ncmax; c++)
            s_run(&t, levels[li], 1, t.x + (size_t)c * t.xrb, y1 + (size_t)c * ys, ys);
        for (int c = 0; c < ncmax; c++)
            for (int r = 0; r < nr; r++) {
                double ref = 0, mag = 0;
                for (int64_t i = 0; i < k; i++) {
                    ref += (double)t.wf[r * k + i] * t.xf[c * k + i];
                    mag += fabs((double)t.wf[r * k + i] * t.xf[c * k + i]);
                }
                double got = y1[(size_t)c * ys + r];
                double tol = t.at == MESH_QT_F32 ? 2e-5 : 4e-6; // f32: k roundings in a row
                if (fabs(got - ref) > tol * mag + 1e-30) {
                    fprintf(stderr, "%s %s k=%lld r=%d c=%d: got %.9g want %.9g (mag %.3g)\n",
                            mesh_qtype_name(wt), mesh_cpu_simd_name(levels[li]), (long long)k, r,
                            c, got, ref, mag);
                    fail();
                }
            }
        // Batch invariance: n_cols = 2..8 over the same columns, bit-identical.
        float *yn = malloc(sizeof(float) * ys * ncmax);
        for (int nc = 2; nc <= ncmax; nc++) {
            memset(yn, 0xFF, sizeof(float) * ys * ncmax);
            s_run(&t, levels[li], nc, t.x, yn, ys);
            for (int c = 0; c < nc; c++)
                if (memcmp(yn + (size_t)c * ys, y1 + (size_t)c * ys, sizeof(float) * (size_t)nr)) {
                    fprintf(stderr, "%s %s: n_cols=%d column %d differs from n_cols=1\n",
                            mesh_qtype_name(wt), mesh_cpu_simd_name(levels[li]), nc, c);
                    fail();
                }
        }
        // n_cols = 7 starting at column 1 (other neighbours, other tile positions).
        s_run(&t, levels[li], 7, t.x + t.xrb, yn, ys);
        for (int c = 0; c < 7; c++)
            assert_memory_equal(yn + (size_t)c * ys, y1 + (size_t)(c + 1) * ys,
                                sizeof(float) * (size_t)nr);
        free(yn);
        ylv[li] = y1;
    }
    if (n_levels == 2 && t.at != MESH_QT_F32) {
        // Block types: scalar and AVX2 form the same integers and floats.
        size_t ys = (size_t)nr + 3;
        for (int c = 0; c < ncmax; c++)
            if (memcmp(ylv[0] + (size_t)c * ys, ylv[1] + (size_t)c * ys, sizeof(float) * (size_t)nr)) {
                fprintf(stderr, "%s: scalar and avx2 differ in column %d\n", mesh_qtype_name(wt), c);
                fail();
            }
    }
    free(ylv[0]);
    free(ylv[1]);
    s_case_free(&t);
}

static void test_all_types(void **st) {
    (void)st;
    if (!s_have_avx2())
        printf("  (no AVX2 on this CPU: scalar only)\n");
    for (size_t i = 0; i < sizeof s_wtypes / sizeof s_wtypes[0]; i++) {
        mesh_qtype_t wt = s_wtypes[i];
        int blck = mesh_qtype_traits(wt)->blck;
        if (wt == MESH_QT_F32 || wt == MESH_QT_F16 || wt == MESH_QT_BF16) {
            s_check_type(wt, 67, 7);  // a k with a tail after the 8-wide chunks
            s_check_type(wt, 512, 5);
        } else if (blck == 32) {
            s_check_type(wt, 96, 7);
            s_check_type(wt, 512, 9);
        } else {
            s_check_type(wt, 256, 7);
            s_check_type(wt, 768, 5);
        }
    }
}

static void test_act_types(void **st) {
    (void)st;
    assert_int_equal(mesh_cpu_act_type(MESH_QT_BF16), MESH_QT_F32);
    assert_int_equal(mesh_cpu_act_type(MESH_QT_F16), MESH_QT_F32);
    assert_int_equal(mesh_cpu_act_type(MESH_QT_Q5_0), MESH_QT_Q8_0);
    assert_int_equal(mesh_cpu_act_type(MESH_QT_Q4_K), MESH_QT_Q8_K);
    assert_int_equal(mesh_cpu_act_type(MESH_QT_Q8_K), MESH_QT_COUNT);
    assert_false(mesh_cpu_gemm_supported(MESH_QT_Q8_1));
    assert_int_equal(mesh_cpu_act_row_size(MESH_QT_Q6_K, 512), 2 * 292);
    assert_int_equal(mesh_cpu_act_row_size(MESH_QT_Q6_K, 100), 0);
    assert_int_equal(mesh_cpu_act_row_size(MESH_QT_BF16, 10), 40);
    // Q8_K bsums are the sums of their 16 quants.
    float x[256];
    for (int i = 0; i < 256; i++)
        x[i] = s_gauss();
    mesh_block_q8_k_t b;
    mesh_cpu_quantize_act(MESH_QT_Q8_K, x, &b, 256);
    for (int g = 0; g < 16; g++) {
        int s = 0;
        for (int l = 0; l < 16; l++)
            s += b.qs[16 * g + l];
        assert_int_equal(s, b.bsums[g]);
    }
}

static void test_act_levels_agree(void **st) {
    (void)st;
    if (!s_have_avx2()) {
        printf("  (no AVX2 on this CPU: only the scalar quantizer exists)\n");
        return;
    }
    enum { N = 1024 };
    float *x = malloc(sizeof(float) * N);
    uint8_t a[N / 256 * 292 + N / 32 * 34], b[sizeof a];
    for (int trial = 0; trial < 50; trial++) {
        for (int i = 0; i < N; i++)
            x[i] = s_gauss() * (float)(trial + 1) * 0.1f;
        if (trial % 5 == 0)
            for (int i = 0; i < 256; i++)
                x[i] = 0.0f; // an all-zero block
        if (trial % 7 == 0)
            for (int i = 256; i < 512; i += 2)
                x[i] = (float)((i % 5) - 2) * 0.5f; // exact halves: rounding ties
        static const mesh_qtype_t at[] = {MESH_QT_Q8_0, MESH_QT_Q8_K};
        for (int j = 0; j < 2; j++) {
            size_t bytes = mesh_qtype_row_size(at[j], N);
            memset(a, 0x55, sizeof a);
            memset(b, 0xAA, sizeof b);
            mesh_cpu_quantize_act_level(MESH_SIMD_SCALAR, at[j], x, a, N);
            mesh_cpu_quantize_act_level(MESH_SIMD_AVX2, at[j], x, b, N);
            assert_memory_equal(a, b, bytes);
        }
    }
    free(x);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_act_types),
        cmocka_unit_test(test_act_levels_agree),
        cmocka_unit_test(test_all_types),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
