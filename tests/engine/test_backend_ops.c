// SPDX-License-Identifier: MIT
// Op-by-op check of every backend slot against the CPU backend: random
// inputs at GLM-4.7-Flash's shapes (n_embd 2048, q_lora 768, 20 heads of
// 192+64, kv_lora 512, 64 experts of 1536, 4 used, a shared expert), each
// op run on the CPU and on every other built backend, outputs compared by
// normalised mean squared error (sum (a-b)^2 / sum b^2) against a bound per
// op. Without a GPU backend in the build the same cases run at small shapes
// CPU against CPU (the harness and the determinism of the reference).
//
// Quantized weights are random bytes with sane f16 scale fields: every bit
// pattern of the quants is exercised, and making them costs no quantizer
// time. Bounds: matmul 2e-3 (the CPU quantizes activations to 8 bits per
// 256 or 32 elements, CUDA to 8 bits per 32 for its tensor-core types and
// not at all on its f32 path), MoE 5e-3 (the same, twice), element-wise ops
// 1e-8. Matmul and MoE also check batch invariance on every backend: the
// first and last token run alone give the same bits as inside the batch.
#include "backend.h"
#include "mesh_err.h"
#include "quant.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static const char *s_others[] = {
#ifdef MESH_HAVE_CUDA
    "cuda",
#endif
    "cpu", // last: the CPU against itself when nothing else is built
};
static int s_n_others(void) {
    return (int)(sizeof s_others / sizeof s_others[0]) > 1
               ? (int)(sizeof s_others / sizeof s_others[0]) - 1
               : 1;
}
static bool s_real(void) {
    return sizeof s_others / sizeof s_others[0] > 1;
}

static uint64_t s_rng = 0x9E3779B97F4A7C15ull;
static uint32_t s_u32(void) {
    s_rng ^= s_rng << 13;
    s_rng ^= s_rng >> 7;
    s_rng ^= s_rng << 17;
    return (uint32_t)(s_rng >> 11);
}
static float s_unif(void) { // [-1, 1)
    return (float)(s_u32() & 0xFFFFFF) / 8388608.0f - 1.0f;
}
static float *s_randf(size_t n, float scale) {
    float *p = malloc(sizeof(float) * n);
    assert_non_null(p);
    for (size_t i = 0; i < n; i++)
        p[i] = s_unif() * scale;
    return p;
}

static double s_nmse(const float *a, const float *ref, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(a[i]))
            return INFINITY;
        double d = (double)a[i] - ref[i];
        num += d * d;
        den += (double)ref[i] * ref[i];
    }
    return den > 0 ? num / den : num;
}

static void s_check(const char *what, const char *be, const float *a, const float *ref, size_t n,
                    double bound) {
    double e = s_nmse(a, ref, n);
    printf("  %-40s %-5s nmse %.3e (bound %.0e)\n", what, be, e, bound);
    if (!(e <= bound)) {
        fprintf(stderr, "%s on %s: nmse %.3e exceeds %.0e\n", what, be, e, bound);
        fail();
    }
}

// ---- device helpers ----
static mesh_backend_t *s_be(const char *name) {
    mesh_backend_t *b = NULL;
    mesh_backend_params_t p = {0, 0};
    int rc = mesh_backend_new(name, &p, &b);
    if (rc)
        fprintf(stderr, "backend %s: %s\n", name, mesh_strerror(rc));
    assert_int_equal(rc, 0);
    return b;
}
static mesh_bptr_t s_up(mesh_backend_t *b, const void *data, size_t n) {
    mesh_bbuf_t *buf = NULL;
    assert_int_equal(b->iface->buf_alloc(b->ctx, n, &buf), 0);
    if (data)
        assert_int_equal(b->iface->buf_upload(b->ctx, (mesh_bptr_t){buf, 0}, data, n), 0);
    return (mesh_bptr_t){buf, 0};
}
static void s_down(mesh_backend_t *b, mesh_bptr_t p, void *dst, size_t n) {
    assert_int_equal(b->iface->buf_download(b->ctx, dst, p, n), 0);
}
static void s_free(mesh_backend_t *b, mesh_bptr_t p) {
    b->iface->buf_free(b->ctx, p.buf);
}

// Host bytes of a random weight [ne0, ne1, ne2] of type t.
static uint8_t *s_rand_weight(uint32_t t, int64_t ne0, int64_t ne1, int64_t ne2, size_t *bytes) {
    size_t row = mesh_qtype_row_size(t, ne0);
    assert_true(row > 0);
    size_t n = row * (size_t)ne1 * (size_t)ne2;
    uint8_t *p = malloc(n);
    assert_non_null(p);
    *bytes = n;
    if (t == MESH_QT_F32 || t == MESH_QT_F16 || t == MESH_QT_BF16) {
        size_t ne = (size_t)ne0 * (size_t)ne1 * (size_t)ne2;
        for (size_t i = 0; i < ne; i++) {
            float v = s_unif() * 0.05f;
            if (t == MESH_QT_F32)
                memcpy(p + 4 * i, &v, 4);
            else {
                uint16_t h = t == MESH_QT_F16 ? mesh_f32_to_fp16(v) : mesh_f32_to_bf16(v);
                memcpy(p + 2 * i, &h, 2);
            }
        }
        return p;
    }
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)s_u32();
    const mesh_qtype_traits_t *tr = mesh_qtype_traits(t);
    int off[2] = {-1, -1};
    switch (t) {
    case MESH_QT_Q4_0: case MESH_QT_Q5_0: case MESH_QT_Q8_0: off[0] = 0; break;
    case MESH_QT_Q4_1: case MESH_QT_Q5_1: case MESH_QT_Q4_K: case MESH_QT_Q5_K:
        off[0] = 0; off[1] = 2; break;
    case MESH_QT_Q6_K: off[0] = 208; break;
    default: fail_msg("no scale layout for type %u", t);
    }
    for (size_t b = 0; b < n / tr->size; b++)
        for (int k = 0; k < 2; k++)
            if (off[k] >= 0) {
                uint16_t h = mesh_f32_to_fp16((0.5f + 0.5f * (s_unif() + 1.0f)) * 0.004f);
                memcpy(p + b * tr->size + off[k], &h, 2);
            }
    return p;
}

static mesh_bweight_t s_weight(mesh_backend_t *b, uint32_t t, int64_t ne0, int64_t ne1,
                               int64_t ne2, const uint8_t *host, size_t bytes) {
    mesh_bweight_t w;
    memset(&w, 0, sizeof w);
    w.data = s_up(b, host, bytes);
    w.type = t;
    w.ne[0] = ne0;
    w.ne[1] = ne1;
    w.ne[2] = ne2;
    w.nb[1] = mesh_qtype_row_size(t, ne0);
    w.nb[2] = w.nb[1] * (size_t)ne1;
    if (b->iface->weight_prepare)
        assert_int_equal(b->iface->weight_prepare(b->ctx, &w), 0);
    return w;
}
static void s_wfree(mesh_backend_t *b, mesh_bweight_t *w) {
    if (b->iface->weight_release)
        b->iface->weight_release(b->ctx, w);
    s_free(b, w->data);
}

// ---- matmul ----
typedef struct {
    const char *name;
    uint32_t type;
    int64_t K, rows, mats;
    int n_mat;
    int64_t xs, xm, ys, ym; // 0: dense defaults
} s_mm_case_t;

static void s_run_mm(const s_mm_case_t *c, int n) {
    size_t wb;
    uint8_t *wh = s_rand_weight(c->type, c->K, c->rows, c->mats, &wb);
    const int64_t xs = c->xs ? c->xs : c->K, ys = c->ys ? c->ys : c->rows;
    size_t xn = (size_t)xs * (size_t)n, yn = (size_t)ys * (size_t)n;
    float *x = s_randf(xn, 1.0f), *ref = calloc(yn, sizeof(float)), *got = calloc(yn, sizeof(float));
    mesh_backend_t *cpu = s_be("cpu");
    for (int bi = 0; bi < s_n_others() + 1; bi++) {
        const char *bn = bi == 0 ? "cpu" : s_others[bi - 1];
        mesh_backend_t *b = bi == 0 ? cpu : s_be(bn);
        mesh_bweight_t w = s_weight(b, c->type, c->K, c->rows, c->mats, wh, wb);
        mesh_bptr_t X = s_up(b, x, sizeof(float) * xn), Y = s_up(b, NULL, sizeof(float) * yn);
        assert_int_equal(b->iface->matmul(b->ctx, &w, 0, c->n_mat, X, xs, c->xm, n, Y, ys, c->ym), 0);
        s_down(b, Y, bi == 0 ? ref : got, sizeof(float) * yn);
        if (n > 1) {
            // batch invariance: the first and the last token alone give the
            // same bits as inside the batch (backend.h's promise)
            float *solo = calloc((size_t)ys, sizeof(float));
            const float *all = bi == 0 ? ref : got;
            const int at[2] = {0, n - 1};
            for (int k = 0; k < 2; k++) {
                mesh_bptr_t X1 = X, Y1 = s_up(b, NULL, sizeof(float) * (size_t)ys);
                X1.off += sizeof(float) * (size_t)xs * (size_t)at[k];
                assert_int_equal(
                    b->iface->matmul(b->ctx, &w, 0, c->n_mat, X1, xs, c->xm, 1, Y1, ys, c->ym), 0);
                s_down(b, Y1, solo, sizeof(float) * (size_t)ys);
                if (memcmp(solo, all + (size_t)ys * (size_t)at[k], sizeof(float) * (size_t)ys)) {
                    fprintf(stderr, "matmul %s %s on %s: token %d alone differs from n=%d\n",
                            c->name, mesh_qtype_name(c->type), bn, at[k], n);
                    fail();
                }
                s_free(b, Y1);
            }
            free(solo);
        }
        if (bi) {
            char what[96];
            snprintf(what, sizeof what, "matmul %s %s n=%d", c->name, mesh_qtype_name(c->type), n);
            s_check(what, bn, got, ref, yn, 2e-3);
        }
        s_wfree(b, &w);
        s_free(b, X);
        s_free(b, Y);
        if (bi)
            mesh_backend_destroy(&b);
    }
    mesh_backend_destroy(&cpu);
    free(wh);
    free(x);
    free(ref);
    free(got);
}

static void test_matmul(void **state) {
    (void)state;
    const bool R = s_real();
    const uint32_t types[] = {MESH_QT_F32, MESH_QT_F16, MESH_QT_BF16, MESH_QT_Q8_0, MESH_QT_Q4_0,
                              MESH_QT_Q4_1, MESH_QT_Q5_0, MESH_QT_Q5_1, MESH_QT_Q4_K,
                              MESH_QT_Q5_K, MESH_QT_Q6_K};
    const int ns[] = {1, 5, 40, 77};
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++)
        for (size_t i = 0; i < 4; i++) {
            // q_a: [2048 -> 768] (small: [256 -> 64])
            s_mm_case_t c = {"q_a", types[t], R ? 2048 : 256, R ? 768 : 64, 1, 1, 0, 0, 0, 0};
            s_run_mm(&c, ns[i]);
        }
    // k_b per head: [192 -> 512] x 20 heads, strided q rows into qcat rows
    const uint32_t kt[] = {MESH_QT_Q8_0, MESH_QT_BF16, MESH_QT_Q5_0, MESH_QT_F32};
    for (size_t t = 0; t < 4; t++)
        for (size_t i = 0; i < 3; i++) {
            const int64_t H = R ? 20 : 4, dn = R ? 192 : 32, L = R ? 512 : 64, dq = dn + (R ? 64 : 16);
            s_mm_case_t c = {"k_b (heads)", kt[t], dn, L, H, (int)H, H * dq, dq, H * (L + (R ? 64 : 16)),
                             L + (R ? 64 : 16)};
            s_run_mm(&c, ns[i]);
        }
    // router: f32 [2048 -> 64], odd widths on f32
    for (size_t i = 0; i < 3; i++) {
        s_mm_case_t c = {"router", MESH_QT_F32, R ? 2048 : 256, R ? 64 : 16, 1, 1, 0, 0, 0, 0};
        s_run_mm(&c, ns[i]);
        s_mm_case_t o = {"odd", MESH_QT_F32, 77, 33, 1, 1, 0, 0, 0, 0};
        s_run_mm(&o, ns[i]);
    }
}

// Two products of the same x queued back to back (the graph's q_a and kv_a,
// which a GPU backend may run as one launch) give each product's bits as
// when run alone, and the CPU's values.
static void test_matmul_pair(void **state) {
    (void)state;
    const bool R = s_real();
    const int64_t K = R ? 2048 : 256, r1 = R ? 768 : 64, r2 = R ? 576 : 80;
    const uint32_t types[] = {MESH_QT_Q4_K, MESH_QT_Q8_0, MESH_QT_Q6_K, MESH_QT_F32};
    const int ns[] = {1, 5, 40};
    for (size_t ti = 0; ti < 4; ti++)
        for (size_t ni = 0; ni < 3; ni++) {
            const int n = ns[ni];
            size_t b1, b2;
            uint8_t *h1 = s_rand_weight(types[ti], K, r1, 1, &b1),
                    *h2 = s_rand_weight(types[ti], K, r2, 1, &b2);
            const size_t xn = (size_t)K * n, yn = (size_t)(r1 + r2) * n;
            float *x = s_randf(xn, 1.0f), *out[2] = {calloc(yn, 4), calloc(yn, 4)},
                  *solo = calloc(yn, 4);
            for (int bi = 0; bi < s_n_others() + 1; bi++) {
                const char *bn = bi == 0 ? "cpu" : s_others[bi - 1];
                mesh_backend_t *b = s_be(bn);
                mesh_bweight_t w1 = s_weight(b, types[ti], K, r1, 1, h1, b1),
                               w2 = s_weight(b, types[ti], K, r2, 1, h2, b2);
                mesh_bptr_t X = s_up(b, x, 4 * xn), Y1 = s_up(b, NULL, 4 * (size_t)r1 * n),
                            Y2 = s_up(b, NULL, 4 * (size_t)r2 * n);
                float *o = out[bi ? 1 : 0];
                // back to back, one download after both
                assert_int_equal(b->iface->matmul(b->ctx, &w1, 0, 1, X, K, 0, n, Y1, r1, 0), 0);
                assert_int_equal(b->iface->matmul(b->ctx, &w2, 0, 1, X, K, 0, n, Y2, r2, 0), 0);
                s_down(b, Y1, o, 4 * (size_t)r1 * n);
                s_down(b, Y2, o + (size_t)r1 * n, 4 * (size_t)r2 * n);
                // each alone (a download between them)
                mesh_bptr_t Z = s_up(b, NULL, 4 * (size_t)r1 * n);
                assert_int_equal(b->iface->matmul(b->ctx, &w1, 0, 1, X, K, 0, n, Z, r1, 0), 0);
                s_down(b, Z, solo, 4 * (size_t)r1 * n);
                assert_int_equal(b->iface->matmul(b->ctx, &w2, 0, 1, X, K, 0, n, Y2, r2, 0), 0);
                s_down(b, Y2, solo + (size_t)r1 * n, 4 * (size_t)r2 * n);
                if (memcmp(solo, o, 4 * yn)) {
                    fprintf(stderr, "matmul pair %s n=%d on %s: differs from each alone\n",
                            mesh_qtype_name(types[ti]), n, bn);
                    fail();
                }
                if (bi) {
                    char what[96];
                    snprintf(what, sizeof what, "matmul pair %s n=%d", mesh_qtype_name(types[ti]), n);
                    s_check(what, bn, out[1], out[0], yn, 2e-3);
                }
                s_wfree(b, &w1);
                s_wfree(b, &w2);
                s_free(b, X);
                s_free(b, Y1);
                s_free(b, Y2);
                s_free(b, Z);
                mesh_backend_destroy(&b);
            }
            free(h1);
            free(h2);
            free(x);
            free(out[0]);
            free(out[1]);
            free(solo);
        }
}

// ---- get_rows ----
static void test_get_rows(void **state) {
    (void)state;
    const bool R = s_real();
    const uint32_t types[] = {MESH_QT_F32, MESH_QT_BF16, MESH_QT_F16, MESH_QT_Q8_0, MESH_QT_Q4_K,
                              MESH_QT_Q5_K, MESH_QT_Q6_K, MESH_QT_Q4_0, MESH_QT_Q5_0};
    const int64_t E = R ? 2048 : 256, V = 1000;
    const int n = 9;
    int32_t ids[9];
    for (int i = 0; i < n; i++)
        ids[i] = (int32_t)(s_u32() % V);
    float *ref = calloc((size_t)n * E, 4), *got = calloc((size_t)n * E, 4);
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
        size_t wb;
        uint8_t *wh = s_rand_weight(types[t], E, V, 1, &wb);
        for (int bi = 0; bi < s_n_others() + 1; bi++) {
            const char *bn = bi == 0 ? "cpu" : s_others[bi - 1];
            mesh_backend_t *b = s_be(bn);
            mesh_bweight_t w = s_weight(b, types[t], E, V, 1, wh, wb);
            mesh_bptr_t I = s_up(b, ids, sizeof ids), Y = s_up(b, NULL, 4 * (size_t)n * E);
            assert_int_equal(b->iface->get_rows(b->ctx, &w, I, n, Y, E), 0);
            s_down(b, Y, bi ? got : ref, 4 * (size_t)n * E);
            if (bi) {
                char what[64];
                snprintf(what, sizeof what, "get_rows %s", mesh_qtype_name(types[t]));
                s_check(what, bn, got, ref, (size_t)n * E, 1e-10);
            }
            s_wfree(b, &w);
            s_free(b, I);
            s_free(b, Y);
            mesh_backend_destroy(&b);
        }
        free(wh);
    }
    free(ref);
    free(got);
}

// ---- rms_norm, rope, swiglu, add, copy_rows ----
static void test_elementwise(void **state) {
    (void)state;
    const bool R = s_real();
    const int E = R ? 2048 : 256, n = 7;
    const size_t N = (size_t)n * E;
    float *x = s_randf(N, 3.0f), *x2 = s_randf(N, 2.0f), *nw = s_randf((size_t)E, 1.0f);
    float *ref = calloc(N, 4), *got = calloc(N, 4);
    int32_t idx[5] = {6, 0, 3, 3, 1};
    for (int bi = 1; bi < s_n_others() + 1; bi++) {
        const char *bn = s_others[bi - 1];
        mesh_backend_t *bs[2] = {s_be("cpu"), s_be(bn)};
        float *outs[2] = {ref, got};
        // rms_norm with a weight, then in place on a strided prefix without one
        for (int k = 0; k < 2; k++) {
            mesh_backend_t *b = bs[k];
            mesh_bweight_t w = s_weight(b, MESH_QT_F32, E, 1, 1, (const uint8_t *)nw, 4 * (size_t)E);
            mesh_bptr_t X = s_up(b, x, 4 * N), Y = s_up(b, NULL, 4 * N);
            assert_int_equal(b->iface->rms_norm(b->ctx, X, E, Y, E, n, E, &w, 1e-6f), 0);
            assert_int_equal(b->iface->rms_norm(b->ctx, X, E, X, E, n, E / 4, NULL, 1e-5f), 0);
            assert_int_equal(b->iface->add(b->ctx, Y, E, X, E, n, E), 0);
            s_down(b, Y, outs[k], 4 * N);
            s_wfree(b, &w);
            s_free(b, X);
            s_free(b, Y);
        }
        s_check("rms_norm + in place + add", bn, got, ref, N, 1e-10);
        // swiglu + copy_rows
        for (int k = 0; k < 2; k++) {
            mesh_backend_t *b = bs[k];
            mesh_bptr_t G = s_up(b, x, 4 * N), U = s_up(b, x2, 4 * N), Y = s_up(b, NULL, 4 * N),
                        I = s_up(b, idx, sizeof idx), C = s_up(b, NULL, 4 * N);
            assert_int_equal(b->iface->swiglu(b->ctx, G, E, U, E, Y, E, n, E - 3), 0);
            assert_int_equal(b->iface->copy_rows(b->ctx, Y, E, I, 5, C, E, E), 0);
            float *o = calloc(N, 4);
            s_down(b, C, o, 4 * N);
            if (k == 0) {
                free(ref);
                ref = o;
            } else {
                free(got);
                got = o;
            }
            s_free(b, G);
            s_free(b, U);
            s_free(b, Y);
            s_free(b, I);
            s_free(b, C);
        }
        s_check("swiglu + copy_rows", bn, got, ref, N, 1e-10);
        mesh_backend_destroy(&bs[0]);
        mesh_backend_destroy(&bs[1]);
    }
    free(x);
    free(x2);
    free(nw);
    free(ref);
    free(got);
}

// rope on its own with identical inputs on both sides.
static void test_rope(void **state) {
    (void)state;
    const bool R = s_real();
    const int n = 7, H = R ? 20 : 4, dq = R ? 256 : 48, rot = R ? 64 : 16;
    const size_t qn = (size_t)n * H * dq;
    int32_t pos[7] = {0, 1, 17, 300, 4095, 8191, 12000};
    float *q = s_randf(qn, 1.0f);
    float *o[2] = {calloc(2 * qn, 4), calloc(2 * qn, 4)};
    for (int bi = 1; bi < s_n_others() + 1; bi++) {
        const char *bn = s_others[bi - 1];
        for (int yarn = 0; yarn < 2; yarn++) {
            for (int neox = 0; neox < 2; neox++) {
                mesh_rope_params_t rp = {rot, 1e6f, neox != 0, yarn != 0, 4.0f, 4096, 32.0f, 1.0f,
                                         yarn ? 1.1f : 1.0f};
                for (int k = 0; k < 2; k++) {
                    mesh_backend_t *b = s_be(k ? bn : "cpu");
                    mesh_bptr_t Q = s_up(b, q, 4 * qn), P = s_up(b, pos, sizeof pos),
                                Y = s_up(b, NULL, 4 * qn);
                    mesh_bptr_t qpe = {Q.buf, 4 * (size_t)(dq - rot)};
                    assert_int_equal(b->iface->rope(b->ctx, qpe, (int64_t)H * dq, dq, Y,
                                                    (int64_t)H * dq, dq, n, H, P, &rp), 0);
                    assert_int_equal(b->iface->rope(b->ctx, qpe, (int64_t)H * dq, 0, qpe,
                                                    (int64_t)H * dq, 0, n, 1, P, &rp), 0);
                    s_down(b, Y, o[k], 4 * qn);
                    s_down(b, Q, o[k] + qn, 4 * qn);
                    s_free(b, Q);
                    s_free(b, P);
                    s_free(b, Y);
                    mesh_backend_destroy(&b);
                }
                char what[64];
                snprintf(what, sizeof what, "rope yarn=%d neox=%d", yarn, neox);
                s_check(what, bn, o[1], o[0], 2 * qn, 1e-8);
            }
        }
    }
    free(q);
    free(o[0]);
    free(o[1]);
}

// ---- the fused ops (mesh_be_*: a backend's own slot, the CPU's plain ops) ----
static void test_fused(void **state) {
    (void)state;
    const bool R = s_real();
    const int E = R ? 2048 : 256, n = 7;
    const int H = R ? 20 : 4, dq = R ? 256 : 48, rot = R ? 64 : 16, L = R ? 512 : 64;
    const int D = L + rot, NL = 2, BT = 16, NB = 4;
    const size_t N = (size_t)n * E, qn = (size_t)n * H * dq, qcn = (size_t)n * H * D,
                 kvn = (size_t)n * D, pool = (size_t)NB * NL * BT * D;
    int32_t pos[7] = {0, 1, 17, 300, 4095, 8191, 12000}, slot[7] = {5, 0, 17, 63, 40, 22, 31};
    float *x = s_randf(N, 3.0f), *y = s_randf(N, 2.0f), *nw = s_randf((size_t)E, 1.0f);
    float *q = s_randf(qn, 1.0f), *kv = s_randf(kvn, 2.0f), *kw = s_randf((size_t)L, 1.0f);
    const size_t outn = 2 * N + qcn + kvn + pool;
    float *o[2] = {calloc(outn, 4), calloc(outn, 4)};
    uint16_t *h16 = calloc(pool, 2);
    for (int bi = 1; bi < s_n_others() + 1; bi++) {
        const char *bn = s_others[bi - 1];
        for (int f16 = 0; f16 < 2; f16++) {
            const uint32_t ct = f16 ? MESH_QT_F16 : MESH_QT_F32;
            mesh_rope_params_t rp = {rot, 1e6f, false, f16 != 0, 4.0f, 4096, 32.0f, 1.0f,
                                     f16 ? 1.1f : 1.0f};
            for (int k = 0; k < 2; k++) {
                mesh_backend_t *b = s_be(k ? bn : "cpu");
                float *out = o[k];
                // x += y; y = rmsnorm(x) * w (out aliasing the addend, as the graph does)
                mesh_bweight_t w = s_weight(b, MESH_QT_F32, E, 1, 1, (const uint8_t *)nw, 4 * (size_t)E);
                mesh_bptr_t X = s_up(b, x, 4 * N), Y = s_up(b, y, 4 * N);
                assert_int_equal(mesh_be_add_rms_norm(b, X, E, Y, E, Y, E, n, E, &w, 1e-6f), 0);
                s_down(b, X, out, 4 * N);
                s_down(b, Y, out + N, 4 * N);
                // mla_prep
                mesh_bweight_t kn = s_weight(b, MESH_QT_F32, L, 1, 1, (const uint8_t *)kw, 4 * (size_t)L);
                mesh_bptr_t Q = s_up(b, q, 4 * qn), QC = s_up(b, NULL, 4 * qcn),
                            KV = s_up(b, kv, 4 * kvn), P = s_up(b, pos, sizeof pos),
                            S = s_up(b, slot, sizeof slot), C = s_up(b, NULL, 4 * pool);
                mesh_mla_prep_t pa = {.q = {Q.buf, 4 * (size_t)(dq - rot)}, .q_stride = (int64_t)H * dq,
                                      .q_head = dq, .qc = {QC.buf, 4 * (size_t)L},
                                      .qc_stride = (int64_t)H * D, .qc_head = D, .n_head = H,
                                      .kv = KV, .kv_stride = D, .kv_lora = L, .kv_norm = &kn,
                                      .eps = 1e-6f, .pos = P, .slot = S, .cache = C,
                                      .cache_type = ct, .n_layer = NL, .layer = 1,
                                      .block_tokens = BT, .n = n, .rope = &rp};
                assert_int_equal(mesh_be_mla_prep(b, &pa), 0);
                s_down(b, QC, out + 2 * N, 4 * qcn);
                s_down(b, KV, out + 2 * N + qcn, 4 * kvn);
                float *po = out + 2 * N + qcn + kvn;
                if (f16) {
                    s_down(b, C, h16, 2 * pool);
                    for (size_t i = 0; i < pool; i++)
                        po[i] = mesh_fp16_to_f32(h16[i]);
                } else {
                    s_down(b, C, po, 4 * pool);
                }
                s_wfree(b, &w);
                s_wfree(b, &kn);
                s_free(b, X);
                s_free(b, Y);
                s_free(b, Q);
                s_free(b, QC);
                s_free(b, KV);
                s_free(b, P);
                s_free(b, S);
                s_free(b, C);
                mesh_backend_destroy(&b);
            }
            s_check("add_rms_norm: x", bn, o[1], o[0], N, 1e-12);
            s_check("add_rms_norm: out", bn, o[1] + N, o[0] + N, N, 1e-10);
            s_check(f16 ? "mla_prep (f16 pool, yarn)" : "mla_prep (f32 pool)", bn, o[1] + 2 * N,
                    o[0] + 2 * N, qcn + kvn + pool, f16 ? 1e-6 : 1e-8);
            // on each side the stored rows are exactly its normalised and roped
            // kv rows (rounded to f16 for an f16 pool)
            for (int k = 0; k < 2; k++) {
                const float *pk = o[k] + 2 * N + qcn, *pp = o[k] + 2 * N + qcn + kvn;
                for (int t = 0; t < n; t++) {
                    const size_t row = ((size_t)(slot[t] / BT) * NL + 1) * BT + (size_t)(slot[t] % BT);
                    for (int j = 0; j < D; j++) {
                        const float a = pk[(size_t)t * D + j];
                        const float want = f16 ? mesh_fp16_to_f32(mesh_f32_to_fp16(a)) : a;
                        assert_true(pp[row * D + j] == want);
                    }
                }
            }
        }
    }
    free(x);
    free(y);
    free(nw);
    free(q);
    free(kv);
    free(kw);
    free(o[0]);
    free(o[1]);
    free(h16);
}

// ---- kv_store + mla_attn over a paged pool ----
static void test_mla(void **state) {
    (void)state;
    const bool R = s_real();
    const int H = R ? 20 : 4, L = R ? 512 : 64, D = L + (R ? 64 : 16), NL = 2, BT = 32, NB = 16;
    const int32_t blocks[12] = {5, 2, 9, 0, 12, 7, 3, 14, 1, 10, /* B: */ 4, 11};
    const int lenA = 300, lenB = 45, NT = lenA + lenB;
    int32_t *slots = malloc(4 * (size_t)NT);
    for (int i = 0; i < NT; i++) {
        int s = i < lenA ? i : i - lenA;
        const int32_t *tab = i < lenA ? blocks : blocks + 10;
        slots[i] = tab[s / BT] * BT + s % BT;
    }
    float *rows = s_randf((size_t)NT * D, 1.0f);
    const size_t pool_el = (size_t)NB * NL * BT * D;
    const int ns[3] = {3, 40, 300};
    for (int bi = 1; bi < s_n_others() + 1; bi++) {
        const char *bn = s_others[bi - 1];
        for (int ct = 0; ct < 2; ct++) {
            uint32_t cty = ct ? MESH_QT_F16 : MESH_QT_F32;
            for (int ni = 0; ni < 3; ni++) {
                const int n = ns[ni];
                mesh_attn_tok_t *tk = malloc(sizeof *tk * (size_t)n);
                for (int i = 0; i < n; i++) {
                    if (n == 3) {
                        const int c[3][2] = {{lenA, 0}, {lenB, 10}, {1, 0}};
                        tk[i] = (mesh_attn_tok_t){c[i][0], c[i][1]};
                    } else {
                        tk[i] = (mesh_attn_tok_t){lenA - n + 1 + i, 0};
                    }
                }
                size_t qn = (size_t)n * H * D, on = (size_t)n * H * L;
                float *q = s_randf(qn, 0.6f);
                float *o[2] = {calloc(on, 4), calloc(on, 4)};
                for (int k = 0; k < 2; k++) {
                    mesh_backend_t *b = s_be(k ? bn : "cpu");
                    mesh_bptr_t C = s_up(b, NULL, pool_el * (ct ? 2 : 4)),
                                X = s_up(b, rows, 4 * (size_t)NT * D), S = s_up(b, slots, 4 * (size_t)NT),
                                Q = s_up(b, q, 4 * qn), O = s_up(b, NULL, 4 * on),
                                T = s_up(b, tk, sizeof *tk * (size_t)n), TB = s_up(b, blocks, sizeof blocks);
                    assert_int_equal(b->iface->kv_store(b->ctx, C, cty, NL, 1, BT, D, X, D, S, NT), 0);
                    mesh_mla_args_t a = {.q = Q, .out = O, .toks = T, .tables = TB, .cache = C, .n = n,
                                         .n_head = H, .kv_lora = L, .d_kv = D, .layer = 1,
                                         .n_layer = NL, .block_tokens = BT, .cache_type = cty,
                                         .scale = 0.0625f};
                    assert_int_equal(b->iface->mla_attn(b->ctx, &a), 0);
                    s_down(b, O, o[k], 4 * on);
                    {
                        // the last token alone (decode's split path) gives the
                        // same bits as inside the batch (n=300: one block per token)
                        const size_t hd = (size_t)H * D, hl = (size_t)H * L;
                        mesh_bptr_t Q1 = s_up(b, q + (size_t)(n - 1) * hd, 4 * hd),
                                    O1 = s_up(b, NULL, 4 * hl),
                                    T1 = s_up(b, &tk[n - 1], sizeof *tk);
                        mesh_mla_args_t a1 = a;
                        a1.q = Q1;
                        a1.out = O1;
                        a1.toks = T1;
                        a1.n = 1;
                        assert_int_equal(b->iface->mla_attn(b->ctx, &a1), 0);
                        float *solo = calloc(hl, 4);
                        s_down(b, O1, solo, 4 * hl);
                        if (memcmp(solo, o[k] + (size_t)(n - 1) * hl, 4 * hl)) {
                            fprintf(stderr, "mla %s on %s: the last token alone differs from n=%d\n",
                                    ct ? "f16" : "f32", k ? bn : "cpu", n);
                            fail();
                        }
                        free(solo);
                        s_free(b, Q1);
                        s_free(b, O1);
                        s_free(b, T1);
                    }
                    s_free(b, C);
                    s_free(b, X);
                    s_free(b, S);
                    s_free(b, Q);
                    s_free(b, O);
                    s_free(b, T);
                    s_free(b, TB);
                    mesh_backend_destroy(&b);
                }
                char what[64];
                snprintf(what, sizeof what, "kv_store + mla_attn %s n=%d", ct ? "f16" : "f32", n);
                s_check(what, bn, o[1], o[0], on, 1e-8);
                free(q);
                free(o[0]);
                free(o[1]);
                free(tk);
            }
        }
    }
    free(slots);
    free(rows);
}

// ---- moe ----
static void s_run_moe(uint32_t tg, uint32_t td, uint32_t tsh, int gating, int n, bool shared) {
    const bool R = s_real();
    const int D = R ? 2048 : 256, F = R ? 1536 : 256, E = R ? 64 : 16, K = 4, FS = shared ? F : 0;
    size_t b_r, b_g, b_u, b_d, b_gs = 0, b_us = 0, b_ds = 0;
    uint8_t *hr = s_rand_weight(MESH_QT_F32, D, E, 1, &b_r);
    // a router with spread-out logits
    for (size_t i = 0; i < (size_t)D * E; i++)
        ((float *)hr)[i] *= 20.0f;
    uint8_t *hg = s_rand_weight(tg, D, F, E, &b_g), *hu = s_rand_weight(tg, D, F, E, &b_u),
            *hd = s_rand_weight(td, F, D, E, &b_d);
    uint8_t *hgs = shared ? s_rand_weight(tsh, D, FS, 1, &b_gs) : NULL,
            *hus = shared ? s_rand_weight(tsh, D, FS, 1, &b_us) : NULL,
            *hds = shared ? s_rand_weight(tsh, FS, D, 1, &b_ds) : NULL;
    float *bias = s_randf((size_t)E, 0.1f), *x = s_randf((size_t)n * D, 1.0f);
    float *resid = s_randf((size_t)n * D, 2.0f), *nrm = s_randf((size_t)D, 1.0f);
    float *o[2] = {calloc((size_t)n * D, 4), calloc((size_t)n * D, 4)};
    for (int bi = 1; bi < s_n_others() + 1; bi++) {
        const char *bn = s_others[bi - 1];
        for (int k = 0; k < 2; k++) {
            mesh_backend_t *b = s_be(k ? bn : "cpu");
            mesh_bweight_t wr = s_weight(b, MESH_QT_F32, D, E, 1, hr, b_r),
                           wb = s_weight(b, MESH_QT_F32, E, 1, 1, (const uint8_t *)bias, 4 * (size_t)E),
                           wg = s_weight(b, tg, D, F, E, hg, b_g), wu = s_weight(b, tg, D, F, E, hu, b_u),
                           wd = s_weight(b, td, F, D, E, hd, b_d), wgs, wus, wds;
            if (shared) {
                wgs = s_weight(b, tsh, D, FS, 1, hgs, b_gs);
                wus = s_weight(b, tsh, D, FS, 1, hus, b_us);
                wds = s_weight(b, tsh, FS, D, 1, hds, b_ds);
            }
            size_t sb = b->iface->moe_scratch_bytes(b->ctx, n, D, F, FS, E, K);
            mesh_bptr_t X = s_up(b, x, 4 * (size_t)n * D), O = s_up(b, NULL, 4 * (size_t)n * D),
                        S = s_up(b, NULL, sb);
            mesh_moe_args_t a = {.x = X, .out = O, .scratch = S, .n = n, .router = &wr,
                                 .sel_bias = gating == 2 ? &wb : NULL, .gate_exps = &wg,
                                 .up_exps = &wu, .down_exps = &wd,
                                 .gate_sh = shared ? &wgs : NULL, .up_sh = shared ? &wus : NULL,
                                 .down_sh = shared ? &wds : NULL, .n_embd = D, .n_ff = F,
                                 .n_ff_sh = FS, .n_expert = E, .n_used = K, .gating = gating,
                                 .norm_w = gating == 2, .w_scale = gating == 2 ? 1.8f : 1.0f};
            assert_int_equal(b->iface->moe(b->ctx, &a), 0);
            s_down(b, O, o[k], 4 * (size_t)n * D);
            if (n > 1) { // the last token alone: the same bits as in the batch
                mesh_bptr_t X1 = X, O1 = s_up(b, NULL, 4 * (size_t)D);
                X1.off += 4 * (size_t)(n - 1) * D;
                mesh_moe_args_t a1 = a;
                a1.x = X1;
                a1.out = O1;
                a1.n = 1;
                assert_int_equal(b->iface->moe(b->ctx, &a1), 0);
                float *solo = calloc((size_t)D, 4);
                s_down(b, O1, solo, 4 * (size_t)D);
                if (memcmp(solo, o[k] + (size_t)(n - 1) * D, 4 * (size_t)D)) {
                    fprintf(stderr, "moe on %s: the last token alone differs from n=%d\n",
                            k ? bn : "cpu", n);
                    fail();
                }
                free(solo);
                s_free(b, O1);
            }
            {
                // then a residual add and norm queued right after (a GPU backend
                // may fuse them with the combination): the same bits as with a
                // download between them, the MoE's output stored as well
                const size_t nd = (size_t)n * D;
                float *res[2] = {calloc(3 * nd, 4), calloc(3 * nd, 4)};
                mesh_bweight_t wn = s_weight(b, MESH_QT_F32, D, 1, 1, (const uint8_t *)nrm, 4 * (size_t)D);
                for (int fused = 0; fused < 2; fused++) {
                    mesh_bptr_t Y = s_up(b, resid, 4 * nd), N = s_up(b, NULL, 4 * nd);
                    mesh_moe_args_t a2 = a;
                    a2.out = O;
                    assert_int_equal(b->iface->moe(b->ctx, &a2), 0);
                    if (!fused)
                        s_down(b, O, res[0], 4 * nd);
                    assert_int_equal(mesh_be_add_rms_norm(b, Y, D, O, D, N, D, n, D, &wn, 1e-6f), 0);
                    s_down(b, O, res[fused], 4 * nd);
                    s_down(b, Y, res[fused] + nd, 4 * nd);
                    s_down(b, N, res[fused] + 2 * nd, 4 * nd);
                    s_free(b, Y);
                    s_free(b, N);
                }
                if (memcmp(res[0], res[1], 12 * nd) || memcmp(res[0], o[k], 4 * nd)) {
                    fprintf(stderr, "moe + add_rms_norm on %s: differs from the ops apart (n=%d)\n",
                            k ? bn : "cpu", n);
                    fail();
                }
                s_wfree(b, &wn);
                free(res[0]);
                free(res[1]);
            }
            s_free(b, X);
            s_free(b, O);
            s_free(b, S);
            s_wfree(b, &wr);
            s_wfree(b, &wb);
            s_wfree(b, &wg);
            s_wfree(b, &wu);
            s_wfree(b, &wd);
            if (shared) {
                s_wfree(b, &wgs);
                s_wfree(b, &wus);
                s_wfree(b, &wds);
            }
            mesh_backend_destroy(&b);
        }
        char what[96];
        snprintf(what, sizeof what, "moe %s/%s/%s %s n=%d%s", mesh_qtype_name(tg),
                 mesh_qtype_name(td), shared ? mesh_qtype_name(tsh) : "-",
                 gating == 2 ? "sigmoid" : "softmax", n, shared ? "" : " (no shared)");
        s_check(what, bn, o[1], o[0], (size_t)n * D, 5e-3);
    }
    free(hr);
    free(hg);
    free(hu);
    free(hd);
    free(hgs);
    free(hus);
    free(hds);
    free(bias);
    free(x);
    free(resid);
    free(nrm);
    free(o[0]);
    free(o[1]);
}

static void test_moe(void **state) {
    (void)state;
    s_run_moe(MESH_QT_Q4_K, MESH_QT_Q6_K, MESH_QT_Q4_K, 2, 1, true);
    s_run_moe(MESH_QT_Q4_K, MESH_QT_Q6_K, MESH_QT_Q4_K, 2, 5, true);
    s_run_moe(MESH_QT_Q4_K, MESH_QT_Q4_K, MESH_QT_Q4_K, 2, 40, true);
    s_run_moe(MESH_QT_Q8_0, MESH_QT_Q8_0, MESH_QT_Q8_0, 2, 3, true);
    s_run_moe(MESH_QT_Q8_0, MESH_QT_Q8_0, MESH_QT_Q8_0, 2, 130, true);
    s_run_moe(MESH_QT_Q4_K, MESH_QT_Q6_K, MESH_QT_Q4_K, 2, 130, true);
    s_run_moe(MESH_QT_BF16, MESH_QT_BF16, MESH_QT_Q8_0, 1, 24, true);
    s_run_moe(MESH_QT_Q5_K, MESH_QT_Q6_K, MESH_QT_Q6_K, 1, 2, false);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matmul),  cmocka_unit_test(test_matmul_pair),
        cmocka_unit_test(test_get_rows),
        cmocka_unit_test(test_elementwise), cmocka_unit_test(test_rope),
        cmocka_unit_test(test_fused),   cmocka_unit_test(test_mla),
        cmocka_unit_test(test_moe),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
