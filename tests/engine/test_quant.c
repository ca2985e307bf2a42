// SPDX-License-Identifier: MIT
// Reference tensor types: hand-built blocks with known values for every
// dequantizer (checked against a per-element reading of the published
// layout, written independently of quant_ref.c's loops), quantize ->
// dequantize error bounds on random data, f16/bf16 edge cases, and real
// tensors of the llama.cpp-quantized test models (read with engine/gguf.c)
// against the bf16 file, and our quantizer against llama.cpp's on them.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "quant.h"
#include "gguf.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t s_rng = 0x9E3779B97F4A7C15ull;
static uint32_t s_rand(void) {
    s_rng ^= s_rng << 13;
    s_rng ^= s_rng >> 7;
    s_rng ^= s_rng << 17;
    return (uint32_t)(s_rng >> 16);
}
static float s_randf(void) { return (float)(s_rand() & 0xFFFFFF) / 16777216.0f * 2.0f - 1.0f; }
static float s_gauss(void) {
    float u = ((float)(s_rand() & 0xFFFFFF) + 1.0f) / 16777217.0f, v = s_randf();
    return sqrtf(-2.0f * logf(u)) * cosf(3.14159265f * v);
}

static void s_dequant(uint32_t type, const void *src, float *dst, int64_t n) {
    const mesh_qtype_traits_t *t = mesh_qtype_traits(type);
    assert_non_null(t);
    assert_non_null(t->to_float);
    t->to_float(src, dst, n);
}

// ---------------------------------------------------------------- known blocks

static void test_q4_0_known(void **st) {
    (void)st;
    mesh_block_q4_0_t b;
    b.d = 0x3800; // 0.5
    for (int j = 0; j < 16; j++)
        b.qs[j] = (uint8_t)(j | (15 - j) << 4);
    float y[32];
    s_dequant(MESH_QT_Q4_0, &b, y, 32);
    for (int j = 0; j < 16; j++) {
        assert_true(y[j] == (float)(j - 8) * 0.5f);
        assert_true(y[j + 16] == (float)(7 - j) * 0.5f);
    }
    assert_true(y[0] == -4.0f && y[15] == 3.5f && y[16] == 3.5f);
}

static void test_q8_0_known(void **st) {
    (void)st;
    mesh_block_q8_0_t b;
    b.d = 0x3400; // 0.25
    for (int j = 0; j < 32; j++)
        b.qs[j] = (int8_t)(j * 8 - 128);
    float y[32];
    s_dequant(MESH_QT_Q8_0, &b, y, 32);
    assert_true(y[0] == -32.0f);
    assert_true(y[16] == 0.0f);
    assert_true(y[31] == 30.0f);
}

static void test_q4_1_q5_known(void **st) {
    (void)st;
    float y[32];
    mesh_block_q4_1_t a;
    a.d = 0x3400;  // 0.25
    a.m = 0xBC00;  // -1
    for (int j = 0; j < 16; j++)
        a.qs[j] = (uint8_t)(j | j << 4);
    s_dequant(MESH_QT_Q4_1, &a, y, 32);
    for (int j = 0; j < 16; j++)
        assert_true(y[j] == j * 0.25f - 1.0f && y[j + 16] == y[j]);

    mesh_block_q5_0_t b;
    b.d = 0x3C00; // 1
    uint32_t qh = 0xAAAA5555u;
    memcpy(b.qh, &qh, 4);
    for (int j = 0; j < 16; j++)
        b.qs[j] = (uint8_t)(j | (15 - j) << 4);
    s_dequant(MESH_QT_Q5_0, &b, y, 32);
    for (int j = 0; j < 16; j++) {
        int lo = j | (int)((qh >> j) & 1) * 16, hi = (15 - j) | (int)((qh >> (16 + j)) & 1) * 16;
        assert_true(y[j] == (float)(lo - 16));
        assert_true(y[j + 16] == (float)(hi - 16));
    }
    assert_true(y[0] == 0.0f && y[1] == -15.0f); // q 16 (high bit set) and q 1 (not set)
    mesh_block_q5_1_t c;
    c.d = 0x3800; // 0.5
    c.m = 0x4000; // 2
    memcpy(c.qh, &qh, 4);
    memcpy(c.qs, b.qs, 16);
    s_dequant(MESH_QT_Q5_1, &c, y, 32);
    for (int j = 0; j < 16; j++) {
        int lo = j | (int)((qh >> j) & 1) * 16;
        assert_true(y[j] == lo * 0.5f + 2.0f);
    }
}

// Random bytes with finite f16 scales, then each element decoded straight
// from the layout description.
static uint16_t s_rand_half(void) { return mesh_f32_to_fp16(0.01f + (float)(s_rand() % 1000) * 1e-4f); }

static void s_fill_rand(void *p, size_t n) {
    uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        b[i] = (uint8_t)s_rand();
}

static void test_q2_k_elementwise(void **st) {
    (void)st;
    mesh_block_q2_k_t b;
    s_fill_rand(&b, sizeof b);
    b.d = s_rand_half();
    b.dmin = s_rand_half();
    float y[256];
    s_dequant(MESH_QT_Q2_K, &b, y, 256);
    float d = mesh_fp16_to_f32(b.d), dm = mesh_fp16_to_f32(b.dmin);
    for (int e = 0; e < 256; e++) {
        int half = e / 128, g = (e % 128) / 32, l = e % 32;
        int q = (b.qs[32 * half + l] >> (2 * g)) & 3;
        uint8_t sc = b.scales[e / 16];
        float want = d * (float)(sc & 15) * (float)q - dm * (float)(sc >> 4);
        assert_float_equal(y[e], want, 1e-6 * (1 + fabsf(want)));
    }
}

static int s_q3_scale(const uint8_t *s, int j) {
    // 16 6-bit values: low nibbles in bytes 0..7 (j >= 8 uses the high nibble
    // of byte j-8), top 2 bits in bytes 8..11, two bits per value.
    int lo = (j < 8) ? (s[j] & 15) : (s[j - 8] >> 4);
    int hi = (s[8 + j % 4] >> (2 * (j / 4))) & 3;
    return lo + 16 * hi - 32;
}

static void test_q3_k_elementwise(void **st) {
    (void)st;
    mesh_block_q3_k_t b;
    s_fill_rand(&b, sizeof b);
    b.d = s_rand_half();
    float y[256];
    s_dequant(MESH_QT_Q3_K, &b, y, 256);
    float d = mesh_fp16_to_f32(b.d);
    for (int e = 0; e < 256; e++) {
        int half = e / 128, g = (e % 128) / 32, l = e % 32;
        int q = (b.qs[32 * half + l] >> (2 * g)) & 3;
        int h = (b.hmask[l] >> (4 * half + g)) & 1;
        q -= h ? 0 : 4;
        float want = d * (float)s_q3_scale(b.scales, e / 16) * (float)q;
        assert_float_equal(y[e], want, 1e-6 * (1 + fabsf(want)));
    }
}

static void s_k4_scale(const uint8_t *s, int j, int *sc, int *m) {
    if (j < 4) {
        *sc = s[j] & 63;
        *m = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 15) + 16 * (s[j - 4] >> 6);
        *m = (s[j + 4] >> 4) + 16 * (s[j] >> 6);
    }
}

static void test_q4_k_q5_k_elementwise(void **st) {
    (void)st;
    mesh_block_q4_k_t b;
    s_fill_rand(&b, sizeof b);
    b.d = s_rand_half();
    b.dmin = s_rand_half();
    float y[256];
    s_dequant(MESH_QT_Q4_K, &b, y, 256);
    float d = mesh_fp16_to_f32(b.d), dm = mesh_fp16_to_f32(b.dmin);
    for (int e = 0; e < 256; e++) {
        int sub = e / 32, sc, m;
        s_k4_scale(b.scales, sub, &sc, &m);
        int q = (b.qs[32 * (e / 64) + e % 32] >> (4 * (sub & 1))) & 15;
        float want = d * sc * q - dm * m;
        assert_float_equal(y[e], want, 1e-5 * (1 + fabsf(want)));
    }
    mesh_block_q5_k_t c;
    s_fill_rand(&c, sizeof c);
    c.d = s_rand_half();
    c.dmin = s_rand_half();
    s_dequant(MESH_QT_Q5_K, &c, y, 256);
    d = mesh_fp16_to_f32(c.d);
    dm = mesh_fp16_to_f32(c.dmin);
    for (int e = 0; e < 256; e++) {
        int sub = e / 32, sc, m;
        s_k4_scale(c.scales, sub, &sc, &m);
        int q = (c.qs[32 * (e / 64) + e % 32] >> (4 * (sub & 1))) & 15;
        q += 16 * ((c.qh[e % 32] >> sub) & 1);
        float want = d * sc * q - dm * m;
        assert_float_equal(y[e], want, 1e-5 * (1 + fabsf(want)));
    }
}

static void test_q6_k_q8_k_elementwise(void **st) {
    (void)st;
    mesh_block_q6_k_t b;
    s_fill_rand(&b, sizeof b);
    b.d = s_rand_half();
    float y[256];
    s_dequant(MESH_QT_Q6_K, &b, y, 256);
    float d = mesh_fp16_to_f32(b.d);
    for (int e = 0; e < 256; e++) {
        int half = e / 128, g = (e % 128) / 32, l = e % 32;
        int lo = (b.ql[64 * half + 32 * (g % 2) + l] >> (4 * (g / 2))) & 15;
        int hi = (b.qh[32 * half + l] >> (2 * g)) & 3;
        float want = d * (float)b.scales[e / 16] * (float)(lo + 16 * hi - 32);
        assert_float_equal(y[e], want, 1e-5 * (1 + fabsf(want)));
    }
    mesh_block_q8_k_t k;
    s_fill_rand(&k, sizeof k);
    k.d = 0.125f;
    s_dequant(MESH_QT_Q8_K, &k, y, 256);
    for (int e = 0; e < 256; e++)
        assert_true(y[e] == 0.125f * k.qs[e]);
}

// ---------------------------------------------------------------- round trips

typedef struct {
    mesh_qtype_t type;
    double max_rel_rms; // RMS error / RMS value, gaussian data
} s_bound_t;

static double s_roundtrip_rel_rms(mesh_qtype_t type, const float *x, int64_t n) {
    const mesh_qtype_traits_t *t = mesh_qtype_traits(type);
    assert_non_null(t);
    assert_non_null(t->from_float);
    size_t bytes = mesh_qtype_row_size(type, n);
    assert_true(bytes > 0);
    void *q = malloc(bytes);
    float *y = malloc((size_t)n * sizeof(float));
    t->from_float(x, q, n);
    t->to_float(q, y, n);
    double se = 0, sx = 0;
    for (int64_t i = 0; i < n; i++) {
        se += ((double)y[i] - x[i]) * ((double)y[i] - x[i]);
        sx += (double)x[i] * x[i];
    }
    free(q);
    free(y);
    return sqrt(se / sx);
}

static void test_roundtrip_bounds(void **st) {
    (void)st;
    // Bounds sit a little above what these formats give on gaussian data
    // (an n-bit grid over about +-3 sigma), so a broken scale search fails.
    static const s_bound_t bounds[] = {
        {MESH_QT_F16, 0.0005},  {MESH_QT_BF16, 0.004}, {MESH_QT_Q8_0, 0.01},
        {MESH_QT_Q8_1, 0.01},   {MESH_QT_Q8_K, 0.01},  {MESH_QT_Q5_0, 0.05},
        {MESH_QT_Q5_1, 0.045},  {MESH_QT_Q4_0, 0.10},  {MESH_QT_Q4_1, 0.09},
        {MESH_QT_Q6_K, 0.025},  {MESH_QT_Q5_K, 0.045}, {MESH_QT_Q4_K, 0.09},
        {MESH_QT_Q3_K, 0.20},   {MESH_QT_Q2_K, 0.40},
    };
    const int64_t n = 256 * 64;
    float *x = malloc((size_t)n * sizeof(float));
    for (int64_t i = 0; i < n; i++)
        x[i] = s_gauss() * 0.02f;
    for (size_t i = 0; i < sizeof bounds / sizeof bounds[0]; i++) {
        double e = s_roundtrip_rel_rms(bounds[i].type, x, n);
        printf("  %-5s rel rms %.5f (bound %.3f)\n", mesh_qtype_name(bounds[i].type), e,
               bounds[i].max_rel_rms);
        assert_true(e < bounds[i].max_rel_rms);
    }
    // All-zero and constant blocks must not produce NaN.
    memset(x, 0, 256 * sizeof(float));
    for (size_t i = 0; i < sizeof bounds / sizeof bounds[0]; i++) {
        const mesh_qtype_traits_t *t = mesh_qtype_traits(bounds[i].type);
        uint8_t q[1024];
        float y[256];
        t->from_float(x, q, 256);
        t->to_float(q, y, 256);
        for (int j = 0; j < 256; j++)
            assert_true(y[j] == 0.0f);
    }
    for (int j = 0; j < 256; j++)
        x[j] = 0.75f;
    for (size_t i = 0; i < sizeof bounds / sizeof bounds[0]; i++) {
        const mesh_qtype_traits_t *t = mesh_qtype_traits(bounds[i].type);
        uint8_t q[1024];
        float y[256];
        t->from_float(x, q, 256);
        t->to_float(q, y, 256);
        for (int j = 0; j < 256; j++)
            assert_true(fabsf(y[j] - 0.75f) < 0.75f * 0.1f);
    }
    free(x);
}

static void test_all_types_have_converters(void **st) {
    (void)st;
    static const mesh_qtype_t all[] = {MESH_QT_F32, MESH_QT_F16, MESH_QT_BF16, MESH_QT_Q4_0,
                                       MESH_QT_Q4_1, MESH_QT_Q5_0, MESH_QT_Q5_1, MESH_QT_Q8_0,
                                       MESH_QT_Q8_1, MESH_QT_Q2_K, MESH_QT_Q3_K, MESH_QT_Q4_K,
                                       MESH_QT_Q5_K, MESH_QT_Q6_K, MESH_QT_Q8_K};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        const mesh_qtype_traits_t *t = mesh_qtype_traits(all[i]);
        assert_non_null(t);
        assert_non_null(t->to_float);
        assert_non_null(t->from_float);
    }
    assert_null(mesh_qtype_traits(5)); // q4_2, removed from GGML
    assert_null(mesh_qtype_traits(1000));
}

// ---------------------------------------------------------------- f16 / bf16

static uint32_t s_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}
static float s_from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static void test_half_edges(void **st) {
    (void)st;
    // f16: smallest subnormal, largest subnormal, smallest normal, max, inf, nan.
    assert_true(mesh_fp16_to_f32(0x0001) == ldexpf(1.0f, -24));
    assert_true(mesh_fp16_to_f32(0x03FF) == ldexpf(1023.0f, -24));
    assert_true(mesh_fp16_to_f32(0x0400) == ldexpf(1.0f, -14));
    assert_true(mesh_fp16_to_f32(0x7BFF) == 65504.0f);
    assert_true(isinf(mesh_fp16_to_f32(0x7C00)) && mesh_fp16_to_f32(0xFC00) < 0);
    assert_true(isnan(mesh_fp16_to_f32(0x7E00)));
    assert_true(s_bits(mesh_fp16_to_f32(0x8000)) == 0x80000000u);
    assert_int_equal(mesh_f32_to_fp16(ldexpf(1.0f, -24)), 0x0001);
    assert_int_equal(mesh_f32_to_fp16(ldexpf(1.0f, -25)), 0x0000);      // tie -> even (0)
    assert_int_equal(mesh_f32_to_fp16(ldexpf(3.0f, -25)), 0x0002);      // 1.5 ulp -> 2
    assert_int_equal(mesh_f32_to_fp16(ldexpf(1.0f, -26)), 0x0000);
    assert_int_equal(mesh_f32_to_fp16(65504.0f), 0x7BFF);
    assert_int_equal(mesh_f32_to_fp16(65520.0f), 0x7C00);               // rounds to inf
    assert_int_equal(mesh_f32_to_fp16(1e10f), 0x7C00);
    assert_int_equal(mesh_f32_to_fp16(-INFINITY), 0xFC00);
    assert_true((mesh_f32_to_fp16(NAN) & 0x7C00) == 0x7C00 && (mesh_f32_to_fp16(NAN) & 0x3FF));
    // 1 + 2^-11 is a tie between 1 and 1+2^-10: even is 1.
    assert_int_equal(mesh_f32_to_fp16(1.0f + ldexpf(1.0f, -11)), 0x3C00);
    assert_int_equal(mesh_f32_to_fp16(1.0f + 3 * ldexpf(1.0f, -11)), 0x3C02);
    // Every finite half round-trips exactly.
    for (uint32_t h = 0; h < 0x10000; h++) {
        if ((h & 0x7C00) == 0x7C00)
            continue;
        assert_int_equal(mesh_f32_to_fp16(mesh_fp16_to_f32((uint16_t)h)), h);
    }
    // bf16: ties to even, nan stays nan, inf stays inf, subnormals keep their bits.
    assert_int_equal(mesh_f32_to_bf16(s_from_bits(0x3F808000u)), 0x3F80); // tie, even down
    assert_int_equal(mesh_f32_to_bf16(s_from_bits(0x3F818000u)), 0x3F82); // tie, even up
    assert_int_equal(mesh_f32_to_bf16(s_from_bits(0x3F808001u)), 0x3F81);
    assert_int_equal(mesh_f32_to_bf16(INFINITY), 0x7F80);
    assert_true(isnan(mesh_bf16_to_f32(mesh_f32_to_bf16(NAN))));
    assert_true(isnan(mesh_bf16_to_f32(mesh_f32_to_bf16(s_from_bits(0x7F800001u)))));
    assert_int_equal(mesh_f32_to_bf16(s_from_bits(0x00010000u)), 0x0001);
    assert_true(mesh_bf16_to_f32(0x0001) == s_from_bits(0x00010000u));
    assert_int_equal(mesh_f32_to_bf16(s_from_bits(0x7F7FFFFFu)), 0x7F80); // max float -> inf
}

// ---------------------------------------------------------------- real tensors

static const char *s_testdata(void) {
    const char *d = getenv("MESH_TESTDATA");
    if (!d) {
        fprintf(stderr, "MESH_TESTDATA is not set: the reference data is required\n");
        fail();
        return ""; // not reached: fail() does not return (cmocka does not say so to the compiler)
    }
    return d ? d : ""; // fail() does not return; this keeps -Wformat-truncation quiet
}

static mesh_gguf_t *s_open_model(const char *name) {
    char path[1024], err[256] = "";
    snprintf(path, sizeof path, "%s/glm-tiny/%s", s_testdata(), name);
    mesh_gguf_t *g = NULL;
    if (mesh_gguf_open(path, &g, err, sizeof err)) {
        fprintf(stderr, "cannot read %s: %s (the reference data is required)\n", path, err);
        fail();
    }
    return g;
}

// Dequantizes a tensor (any type) into a new f32 array. Caller frees.
static float *s_tensor_f32(const mesh_gguf_t *g, const char *name, uint64_t *n_out, uint32_t *type) {
    const mesh_gguf_tensor_t *t = mesh_gguf_find_tensor(g, name);
    assert_non_null(t);
    uint64_t n = t->n_elements;
    size_t rb = mesh_qtype_row_size(t->type, (int64_t)t->ne[0]);
    float *y = malloc(n * sizeof(float));
    for (uint64_t r = 0; r < n / t->ne[0]; r++)
        s_dequant(t->type, (const uint8_t *)t->data + r * rb, y + r * t->ne[0], (int64_t)t->ne[0]);
    *n_out = n;
    *type = t->type;
    return y;
}

static double s_rel_rms(const float *a, const float *ref, uint64_t n) {
    double se = 0, s = 0;
    for (uint64_t i = 0; i < n; i++) {
        se += ((double)a[i] - ref[i]) * ((double)a[i] - ref[i]);
        s += (double)ref[i] * ref[i];
    }
    return sqrt(se / s);
}

static void test_real_tensors(void **st) {
    (void)st;
    mesh_gguf_t *bf = s_open_model("tiny-glm.bf16.gguf");
    mesh_gguf_t *q8 = s_open_model("tiny-glm.q8_0.gguf");
    mesh_gguf_t *q4 = s_open_model("tiny-glm.q4_k_m.gguf");
    const struct {
        const mesh_gguf_t *g;
        const char *name;
        uint32_t want_type;
        double bound; // relative RMS error against the bf16 weights
    } cases[] = {
        {q8, "blk.0.ffn_up.weight", MESH_QT_Q8_0, 0.01},
        {q8, "output.weight", MESH_QT_Q8_0, 0.01},
        {q4, "output.weight", MESH_QT_Q6_K, 0.03},
        {q4, "token_embd.weight", MESH_QT_Q4_K, 0.10},
        {q4, "blk.1.ffn_gate_exps.weight", MESH_QT_Q4_K, 0.10},
        {q4, "blk.0.attn_output.weight", MESH_QT_Q5_0, 0.05},
        {q4, "blk.2.ffn_down_exps.weight", MESH_QT_Q8_0, 0.01},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint64_t n, nr;
        uint32_t type, rtype;
        float *ref = s_tensor_f32(bf, cases[i].name, &nr, &rtype);
        float *got = s_tensor_f32(cases[i].g, cases[i].name, &n, &type);
        assert_int_equal(rtype, MESH_QT_BF16);
        assert_int_equal(type, cases[i].want_type);
        assert_int_equal(n, nr);
        double e = s_rel_rms(got, ref, n);
        // Our own quantizer on the same weights must be about as good as llama.cpp's.
        const mesh_qtype_traits_t *t = mesh_qtype_traits(type);
        const mesh_gguf_tensor_t *tt = mesh_gguf_find_tensor(cases[i].g, cases[i].name);
        int64_t row = (int64_t)tt->ne[0];
        size_t rb = mesh_qtype_row_size(type, row);
        uint8_t *q = malloc(rb * (n / (uint64_t)row));
        float *mine = malloc(n * sizeof(float));
        for (uint64_t r = 0; r < n / (uint64_t)row; r++) {
            t->from_float(ref + r * (uint64_t)row, q + r * rb, row);
            t->to_float(q + r * rb, mine + r * (uint64_t)row, row);
        }
        double em = s_rel_rms(mine, ref, n);
        printf("  %-28s %-5s llama.cpp rel rms %.5f, ours %.5f\n", cases[i].name,
               mesh_qtype_name(type), e, em);
        assert_true(e < cases[i].bound);
        assert_true(em < e * 1.02 + 1e-6);
        free(q);
        free(mine);
        free(ref);
        free(got);
    }
    mesh_gguf_close(&bf);
    mesh_gguf_close(&q8);
    mesh_gguf_close(&q4);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_all_types_have_converters),
        cmocka_unit_test(test_q4_0_known),
        cmocka_unit_test(test_q8_0_known),
        cmocka_unit_test(test_q4_1_q5_known),
        cmocka_unit_test(test_q2_k_elementwise),
        cmocka_unit_test(test_q3_k_elementwise),
        cmocka_unit_test(test_q4_k_q5_k_elementwise),
        cmocka_unit_test(test_q6_k_q8_k_elementwise),
        cmocka_unit_test(test_roundtrip_bounds),
        cmocka_unit_test(test_half_edges),
        cmocka_unit_test(test_real_tensors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
