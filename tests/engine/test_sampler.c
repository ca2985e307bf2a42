// SPDX-License-Identifier: MIT
// Sampler tests: greedy, seeded determinism, the distribution of draws
// against the exact probabilities (fixed seeds, many draws), each filter's
// cut, and the penalties' exact arithmetic.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mesh_err.h"
#include "sampler.h"

// Older cmocka has no assert_double_equal.
#define S_NEAR(a, b, eps) assert_true(fabs((double)(a) - (double)(b)) <= (eps))

static mesh_sampler_t *s_new(const mesh_sampler_params_t *p, int32_t vocab) {
    mesh_sampler_t *s = NULL;
    assert_int_equal(mesh_sampler_new(p, vocab, &s), 0);
    assert_non_null(s);
    return s;
}

// Draws n tokens and counts them into freq[vocab].
static void s_draw(mesh_sampler_t *s, const float *logits, int32_t vocab, int n, double *freq) {
    for (int32_t i = 0; i < vocab; i++)
        freq[i] = 0;
    mesh_sampler_result_t r;
    for (int i = 0; i < n; i++) {
        assert_int_equal(mesh_sampler_sample(s, logits, &r), 0);
        assert_true(r.token >= 0 && r.token < vocab);
        freq[r.token] += 1.0 / n;
    }
}

static uint64_t s_lcg(uint64_t *x) {
    *x = *x * 6364136223846793005ULL + 1442695040888963407ULL;
    return *x >> 33;
}

static void test_greedy_is_argmax(void **state) {
    (void)state;
    mesh_sampler_params_t p = mesh_sampler_params_default();
    enum { V = 1000 };
    static float l[V];
    mesh_sampler_t *s = s_new(&p, V);
    uint64_t x = 7;
    for (int trial = 0; trial < 20; trial++) {
        int32_t arg = 0;
        for (int i = 0; i < V; i++) {
            l[i] = (float)(s_lcg(&x) % 100000) / 1000.0f - 50.0f;
            if (l[i] > l[arg])
                arg = i;
        }
        mesh_sampler_result_t r;
        assert_int_equal(mesh_sampler_sample(s, l, &r), 0);
        assert_int_equal(r.token, arg);
    }
    mesh_sampler_destroy(&s);
    assert_null(s);
}

static void test_seeded_determinism(void **state) {
    (void)state;
    enum { V = 300 };
    float l[V];
    uint64_t x = 99;
    for (int i = 0; i < V; i++)
        l[i] = (float)(s_lcg(&x) % 1000) / 200.0f;
    mesh_sampler_params_t p = mesh_sampler_params_default();
    p.temperature = 0.9f;
    p.top_p = 0.95f;
    p.top_k = 100;
    p.seed = 1234;
    mesh_sampler_t *a = s_new(&p, V), *b = s_new(&p, V);
    p.seed = 1235;
    mesh_sampler_t *c = s_new(&p, V);
    int32_t ta[200];
    int differs = 0;
    for (int i = 0; i < 200; i++) {
        mesh_sampler_result_t ra, rb, rc;
        assert_int_equal(mesh_sampler_sample(a, l, &ra), 0);
        assert_int_equal(mesh_sampler_sample(b, l, &rb), 0);
        assert_int_equal(mesh_sampler_sample(c, l, &rc), 0);
        assert_int_equal(ra.token, rb.token);
        ta[i] = ra.token;
        differs += ra.token != rc.token;
    }
    assert_true(differs > 50); // another seed gives another stream
    // Reset replays the same stream.
    mesh_sampler_reset(a);
    for (int i = 0; i < 200; i++) {
        mesh_sampler_result_t r;
        assert_int_equal(mesh_sampler_sample(a, l, &r), 0);
        assert_int_equal(r.token, ta[i]);
    }
    mesh_sampler_destroy(&a);
    mesh_sampler_destroy(&b);
    mesh_sampler_destroy(&c);
}

static void test_top_k_1_is_greedy(void **state) {
    (void)state;
    enum { V = 500 };
    float l[V];
    uint64_t x = 3;
    mesh_sampler_params_t p = mesh_sampler_params_default();
    p.temperature = 1.5f;
    p.top_k = 1;
    p.seed = 5;
    mesh_sampler_t *s = s_new(&p, V);
    for (int trial = 0; trial < 50; trial++) {
        int32_t arg = 0;
        for (int i = 0; i < V; i++) {
            l[i] = (float)(s_lcg(&x) % 1000) / 300.0f;
            if (l[i] > l[arg])
                arg = i;
        }
        mesh_sampler_result_t r;
        assert_int_equal(mesh_sampler_sample(s, l, &r), 0);
        assert_int_equal(r.token, arg);
    }
    mesh_sampler_destroy(&s);
}

static void test_distribution_temperature_1(void **state) {
    (void)state;
    float l[3] = {logf(0.5f), logf(0.3f), logf(0.2f)};
    double f[3];
    mesh_sampler_params_t p = mesh_sampler_params_default();
    p.temperature = 1.0f;
    p.seed = 42;
    mesh_sampler_t *s = s_new(&p, 3);
    s_draw(s, l, 3, 40000, f);
    // Binomial sd at n=40000 is <= 0.0025; 0.012 is ~5 sd.
    S_NEAR(f[0], 0.5, 0.012);
    S_NEAR(f[1], 0.3, 0.012);
    S_NEAR(f[2], 0.2, 0.012);
    mesh_sampler_destroy(&s);

    // Temperature 2 flattens: p ~ sqrt(p0).
    p.temperature = 2.0f;
    s = s_new(&p, 3);
    s_draw(s, l, 3, 40000, f);
    double z = sqrt(0.5) + sqrt(0.3) + sqrt(0.2);
    S_NEAR(f[0], sqrt(0.5) / z, 0.012);
    S_NEAR(f[1], sqrt(0.3) / z, 0.012);
    S_NEAR(f[2], sqrt(0.2) / z, 0.012);
    mesh_sampler_destroy(&s);
}

static void test_filters_cut(void **state) {
    (void)state;
    float l[4] = {logf(0.5f), logf(0.3f), logf(0.15f), logf(0.05f)};
    double f[4];
    mesh_sampler_params_t p = mesh_sampler_params_default();
    p.temperature = 1.0f;
    p.seed = 7;

    // top-p 0.7: {0.5, 0.3} survive (0.5 < 0.7 <= 0.8), renormalised.
    p.top_p = 0.7f;
    mesh_sampler_t *s = s_new(&p, 4);
    s_draw(s, l, 4, 20000, f);
    S_NEAR(f[0], 0.625, 0.015);
    S_NEAR(f[1], 0.375, 0.015);
    assert_true(f[2] == 0 && f[3] == 0);
    mesh_sampler_destroy(&s);

    // top-p 0.5: the first token alone reaches it.
    p.top_p = 0.5f;
    s = s_new(&p, 4);
    s_draw(s, l, 4, 2000, f);
    assert_true(f[0] == 1.0 || fabs(f[0] - 1.0) < 1e-9);
    mesh_sampler_destroy(&s);

    // min-p 0.35: keep p >= 0.175: {0.5, 0.3}.
    p.top_p = 1.0f;
    p.min_p = 0.35f;
    s = s_new(&p, 4);
    s_draw(s, l, 4, 20000, f);
    S_NEAR(f[0], 0.625, 0.015);
    assert_true(f[2] == 0 && f[3] == 0);
    mesh_sampler_destroy(&s);

    // min-p 0.25: keep p >= 0.125: {0.5, 0.3, 0.15}.
    p.min_p = 0.25f;
    s = s_new(&p, 4);
    s_draw(s, l, 4, 20000, f);
    S_NEAR(f[2], 0.15 / 0.95, 0.015);
    assert_true(f[3] == 0);
    mesh_sampler_destroy(&s);

    // top-k 3.
    p.min_p = 0.0f;
    p.top_k = 3;
    s = s_new(&p, 4);
    s_draw(s, l, 4, 20000, f);
    S_NEAR(f[0], 0.5 / 0.95, 0.015);
    assert_true(f[3] == 0);
    mesh_sampler_destroy(&s);
}

// A large flat-ish vocabulary makes top-p grow its sorted prefix past 64:
// every draw must lie inside the exact nucleus computed by brute force.
static int s_cmp_desc_f(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return x > y ? -1 : x < y ? 1 : 0;
}

static void test_top_p_large_vocab(void **state) {
    (void)state;
    enum { V = 5000 };
    static float l[V], sorted[V];
    uint64_t x = 11;
    for (int i = 0; i < V; i++)
        l[i] = (float)(s_lcg(&x) % 100000) / 50000.0f; // 0..2, distinct enough
    memcpy(sorted, l, sizeof l);
    qsort(sorted, V, sizeof *sorted, s_cmp_desc_f);
    double z = 0, cum = 0;
    for (int i = 0; i < V; i++)
        z += exp(sorted[i] - sorted[0]);
    float threshold = sorted[V - 1];
    int nucleus = V;
    for (int i = 0; i < V; i++) {
        cum += exp(sorted[i] - sorted[0]);
        if (cum >= 0.6 * z) {
            threshold = sorted[i];
            nucleus = i + 1;
            break;
        }
    }
    assert_true(nucleus > 256); // exercises several doublings
    mesh_sampler_params_t p = mesh_sampler_params_default();
    p.temperature = 1.0f;
    p.top_p = 0.6f;
    p.seed = 77;
    mesh_sampler_t *s = s_new(&p, V);
    int seen_edge = 0;
    for (int i = 0; i < 3000; i++) {
        mesh_sampler_result_t r;
        assert_int_equal(mesh_sampler_sample(s, l, &r), 0);
        assert_true(l[r.token] >= threshold);
        seen_edge += l[r.token] < sorted[nucleus / 2];
    }
    assert_true(seen_edge > 0); // draws reach the lower half of the nucleus
    mesh_sampler_destroy(&s);
}

// top-k by quickselect on a large vocabulary: every draw is among the k
// best; with logprobs on, the reported logprob is the exact log-softmax.
static void test_top_k_large_vocab(void **state) {
    (void)state;
    enum { V = 5000, K = 100 };
    static float l[V], sorted[V];
    uint64_t x = 5;
    for (int i = 0; i < V; i++)
        l[i] = (float)(s_lcg(&x) % 100000) / 20000.0f;
    memcpy(sorted, l, sizeof l);
    qsort(sorted, V, sizeof *sorted, s_cmp_desc_f);
    double z = 0;
    for (int i = 0; i < V; i++)
        z += exp((double)l[i] - sorted[0]);
    mesh_sampler_params_t p = mesh_sampler_params_default();
    p.temperature = 1.5f;
    p.top_k = K;
    p.logprobs = true;
    p.seed = 3;
    mesh_sampler_t *s = s_new(&p, V);
    int below_top10 = 0;
    for (int i = 0; i < 2000; i++) {
        mesh_sampler_result_t r;
        assert_int_equal(mesh_sampler_sample(s, l, &r), 0);
        assert_true(l[r.token] >= sorted[K - 1]);
        below_top10 += l[r.token] < sorted[9];
        S_NEAR(r.logprob, (double)l[r.token] - sorted[0] - log(z), 1e-4);
    }
    assert_true(below_top10 > 0);
    mesh_sampler_destroy(&s);
}

static void test_penalties_exact(void **state) {
    (void)state;
    mesh_sampler_params_t p = mesh_sampler_params_default();
    p.repetition_penalty = 2.0f;
    p.presence_penalty = 0.5f;
    p.frequency_penalty = 0.25f;
    p.penalty_last_n = -1;
    mesh_sampler_t *s = s_new(&p, 5);
    mesh_sampler_accept(s, 0);
    mesh_sampler_accept(s, 1);
    mesh_sampler_accept(s, 1);
    mesh_sampler_accept(s, 9); // out of vocabulary: ignored
    float l[5] = {2.0f, -2.0f, 1.0f, 0.5f, -1.0f};
    mesh_sampler_apply_penalties(s, l);
    assert_float_equal(l[0], 2.0f / 2.0f - 0.5f - 0.25f, 1e-6);       // 0.25
    assert_float_equal(l[1], -2.0f * 2.0f - 0.5f - 0.25f * 2, 1e-6);   // -5
    assert_float_equal(l[2], 1.0f, 0);
    assert_float_equal(l[3], 0.5f, 0);
    assert_float_equal(l[4], -1.0f, 0);
    mesh_sampler_destroy(&s);

    // A window of 2 sees only the last two accepted tokens (1, 1).
    p.penalty_last_n = 2;
    p.presence_penalty = 0.0f;
    p.frequency_penalty = 1.0f;
    p.repetition_penalty = 1.0f;
    s = s_new(&p, 5);
    mesh_sampler_accept(s, 0);
    mesh_sampler_accept(s, 1);
    mesh_sampler_accept(s, 1);
    float m[5] = {2.0f, -2.0f, 1.0f, 0.5f, -1.0f};
    mesh_sampler_apply_penalties(s, m);
    assert_float_equal(m[0], 2.0f, 0);
    assert_float_equal(m[1], -4.0f, 1e-6);
    mesh_sampler_accept(s, 3); // window now (1, 3)
    float n[5] = {2.0f, -2.0f, 1.0f, 0.5f, -1.0f};
    mesh_sampler_apply_penalties(s, n);
    assert_float_equal(n[1], -3.0f, 1e-6);
    assert_float_equal(n[3], -0.5f, 1e-6);
    mesh_sampler_destroy(&s);

    // Penalties steer greedy: the repeated argmax loses to the runner-up.
    p = mesh_sampler_params_default();
    p.frequency_penalty = 1.0f;
    s = s_new(&p, 3);
    float g[3] = {3.0f, 2.5f, 0.0f};
    mesh_sampler_result_t r;
    assert_int_equal(mesh_sampler_sample(s, g, &r), 0);
    assert_int_equal(r.token, 0);
    mesh_sampler_accept(s, 0);
    assert_int_equal(mesh_sampler_sample(s, g, &r), 0);
    assert_int_equal(r.token, 1);
    mesh_sampler_destroy(&s);
}

// Logprobs are those of the raw logits: bias and penalties steer the draw
// but not the reported distribution.
static void test_bias_and_logprobs(void **state) {
    (void)state;
    mesh_sampler_bias_t bias[2] = {{0, -INFINITY}, {2, 1.0f}};
    mesh_sampler_params_t p = mesh_sampler_params_default();
    p.logit_bias = bias;
    p.n_logit_bias = 2;
    p.n_logprobs = 3;
    float l[4] = {5.0f, 1.0f, 0.5f, 0.0f};
    mesh_sampler_t *s = s_new(&p, 4);
    mesh_sampler_result_t r;
    assert_int_equal(mesh_sampler_sample(s, l, &r), 0);
    // Adjusted logits: {-inf, 1, 1.5, 0}: token 2 wins; reported: raw.
    assert_int_equal(r.token, 2);
    double z = exp(5.0) + exp(1.0) + exp(0.5) + exp(0.0);
    assert_float_equal(r.logprob, (float)(0.5 - log(z)), 1e-5);
    assert_int_equal(r.n_top, 3);
    assert_int_equal(r.top[0].token, 0); // banned, yet the model's favourite
    assert_int_equal(r.top[1].token, 1);
    assert_int_equal(r.top[2].token, 2);
    assert_float_equal(r.top[0].logprob, (float)(5.0 - log(z)), 1e-5);
    assert_float_equal(r.top[1].logprob, (float)(1.0 - log(z)), 1e-5);
    assert_float_equal(r.top[2].logprob, r.logprob, 0);
    mesh_sampler_destroy(&s);

    // A frequency penalty moves greedy to the runner-up; the logprobs stay.
    p = mesh_sampler_params_default();
    p.frequency_penalty = 1.0f;
    p.n_logprobs = 2;
    s = s_new(&p, 3);
    float g[3] = {3.0f, 2.5f, 0.0f};
    double zg = exp(3.0) + exp(2.5) + exp(0.0);
    mesh_sampler_result_t r0, r1;
    assert_int_equal(mesh_sampler_sample(s, g, &r0), 0);
    mesh_sampler_accept(s, r0.token);
    assert_int_equal(mesh_sampler_sample(s, g, &r1), 0);
    assert_int_equal(r0.token, 0);
    assert_int_equal(r1.token, 1);
    assert_float_equal(r0.logprob, (float)(3.0 - log(zg)), 1e-5);
    assert_float_equal(r1.logprob, (float)(2.5 - log(zg)), 1e-5);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(r1.top[i].token, r0.top[i].token);
        assert_float_equal(r1.top[i].logprob, r0.top[i].logprob, 0);
    }
    assert_int_equal(r1.top[0].token, 0);
    mesh_sampler_destroy(&s);

    // Everything banned: nothing to draw.
    float all[2] = {-INFINITY, NAN};
    p = mesh_sampler_params_default();
    s = s_new(&p, 2);
    assert_int_equal(mesh_sampler_sample(s, all, &r), MESH_ERANGE);
    mesh_sampler_destroy(&s);
}

static void test_params_check(void **state) {
    (void)state;
    char msg[160];
    mesh_sampler_params_t p = mesh_sampler_params_default();
    assert_int_equal(mesh_sampler_params_check(&p, 10, msg, sizeof msg), 0);
    p.top_p = 0.0f;
    assert_int_equal(mesh_sampler_params_check(&p, 10, msg, sizeof msg), MESH_EINVAL);
    assert_non_null(strstr(msg, "top_p"));
    p = mesh_sampler_params_default();
    p.temperature = NAN;
    assert_int_equal(mesh_sampler_params_check(&p, 10, msg, sizeof msg), MESH_EINVAL);
    p = mesh_sampler_params_default();
    p.top_k = -1;
    assert_int_equal(mesh_sampler_params_check(&p, 10, msg, sizeof msg), MESH_EINVAL);
    p = mesh_sampler_params_default();
    p.n_logprobs = MESH_SAMPLER_MAX_LOGPROBS + 1;
    assert_int_equal(mesh_sampler_params_check(&p, 10, msg, sizeof msg), MESH_EINVAL);
    mesh_sampler_bias_t b = {10, 1.0f};
    p = mesh_sampler_params_default();
    p.logit_bias = &b;
    p.n_logit_bias = 1;
    assert_int_equal(mesh_sampler_params_check(&p, 10, msg, sizeof msg), MESH_EINVAL);
    assert_non_null(strstr(msg, "outside"));
    mesh_sampler_t *s = (mesh_sampler_t *)&b;
    assert_int_equal(mesh_sampler_new(&p, 10, &s), MESH_EINVAL);
    assert_null(s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_greedy_is_argmax),
        cmocka_unit_test(test_seeded_determinism),
        cmocka_unit_test(test_top_k_1_is_greedy),
        cmocka_unit_test(test_distribution_temperature_1),
        cmocka_unit_test(test_filters_cut),
        cmocka_unit_test(test_top_p_large_vocab),
        cmocka_unit_test(test_top_k_large_vocab),
        cmocka_unit_test(test_penalties_exact),
        cmocka_unit_test(test_bias_and_logprobs),
        cmocka_unit_test(test_params_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
