// SPDX-License-Identifier: MIT
// Golden logits: the engine on the tiny GLM-4.7-Flash files against the
// transformers reference in $MESH_TESTDATA/glm-tiny, judged per prompt by mean
// absolute error and argmax agreement over all positions (random-weight MoE
// routing makes single elements jumpy, see testdata/README.md):
//   bf16 file (computed in f32): mean <= 0.005 and argmax >= 99%;
//   q8_0 / q4_k_m files: mean <= 1.1 x what llama.cpp reached (peer_llama_cpp_cpu).
// Plus the engine's batching promises on the bf16 file: a prompt in one batch
// equals token-by-token (max abs diff < 1e-3), two sequences interleaved in one
// batch equal each alone (bit-identical), chunked batches equal one batch, and
// the f16 KV cache still meets the bf16 bound.
#include "engine.h"
#include "mesh_test.h"
#include "mesh_err.h"
#include "quant.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define S_NP 3

typedef struct {
    int n;
    int32_t *ids;
} s_prompt_t;

static mesh_json_t *s_golden; // tiny-glm.golden.json
static s_prompt_t s_p[S_NP];
static float *s_ref[S_NP]; // [n][V]
static int s_V;
static char s_dir[1024];

// llama.cpp's mean abs error for prompt i on a file kind ("q8_0_file"), or -1.
static double s_peer(const char *kind, int prompt) {
    const mesh_json_t *runs = mesh_json_get(mesh_json_get(s_golden, "peer_llama_cpp_cpu"), kind);
    const mesh_json_t *e = mesh_json_at(runs, (size_t)prompt);
    const mesh_json_t *v = mesh_json_get(e, "mean_abs_err");
    return v ? mesh_json_number(v) : -1;
}

static int s_setup(void **state) {
    (void)state;
    char path[1200];
    if (!(s_golden = mesh_test_load_json("glm-tiny/tiny-glm.golden.json")) ||
        mesh_test_data_path(path, sizeof path, "glm-tiny/tiny-glm.logits.f32"))
        return -1;
    snprintf(s_dir, sizeof s_dir, "%.*s", (int)(strrchr(path, '/') - path), path);
    s_V = (int)mesh_json_int(mesh_json_get(s_golden, "vocab_size"));
    size_t len = 0;
    char *lg = mesh_test_slurp(path, &len);
    if (!lg || s_V <= 0) {
        fprintf(stderr, "missing or bad test data: %s\n", path);
        free(lg);
        return -1;
    }
    const mesh_json_t *prompts = mesh_json_get(s_golden, "prompts");
    size_t off = 0;
    for (int i = 0; i < S_NP; i++) {
        long n = mesh_test_json_ids(mesh_json_get(mesh_json_at(prompts, (size_t)i), "ids"),
                                    &s_p[i].ids);
        if (n <= 0) {
            fprintf(stderr, "cannot read prompts[%d].ids from the golden json\n", i);
            free(lg);
            return -1;
        }
        s_p[i].n = (int)n;
        size_t bytes = sizeof(float) * (size_t)s_p[i].n * (size_t)s_V;
        if (off + bytes > len) {
            fprintf(stderr, "reference logits file is shorter than the prompts need\n");
            free(lg);
            return -1;
        }
        s_ref[i] = malloc(bytes);
        memcpy(s_ref[i], lg + off, bytes);
        off += bytes;
    }
    free(lg);
    return 0;
}

static int s_teardown(void **state) {
    (void)state;
    for (int i = 0; i < S_NP; i++) {
        free(s_p[i].ids);
        free(s_ref[i]);
    }
    mesh_json_destroy(&s_golden);
    return 0;
}

static mesh_model_t *s_load(const char *file, uint32_t kv_type, uint32_t max_batch) {
    char path[1200], err[256] = "";
    snprintf(path, sizeof path, "%s/%s", s_dir, file);
    mesh_model_params_t p;
    mesh_model_params_default(&p);
    if (getenv("MESH_TEST_BACKEND")) // e.g. cuda: the same bounds on another backend
        p.backend = getenv("MESH_TEST_BACKEND");
    p.kv_type = kv_type;
    p.kv_tokens = 4096;
    p.max_seqs = 4;
    if (max_batch)
        p.max_batch = max_batch;
    mesh_model_t *m = NULL;
    int rc = mesh_model_load(path, &p, &m, err, sizeof err);
    if (rc)
        fprintf(stderr, "load %s: %s\n", path, err);
    assert_int_equal(rc, 0);
    assert_int_equal((int)mesh_model_n_vocab(m), s_V);
    return m;
}

// Runs prompt i alone in a fresh sequence, one batch (or token by token).
static float *s_run(mesh_model_t *m, int i, bool incremental) {
    const s_prompt_t *p = &s_p[i];
    mesh_kv_t *kv = mesh_model_kv(m);
    int32_t seq;
    assert_int_equal(mesh_kv_seq_new(kv, &seq), 0);
    float *out = malloc(sizeof(float) * (size_t)p->n * (size_t)s_V);
    mesh_batch_tok_t *bt = malloc(sizeof *bt * (size_t)p->n);
    for (int t = 0; t < p->n; t++)
        bt[t] = (mesh_batch_tok_t){p->ids[t], seq, t, true};
    if (incremental) {
        for (int t = 0; t < p->n; t++) {
            mesh_batch_t b = {1, &bt[t]};
            assert_int_equal(mesh_model_forward(m, kv, &b, out + (size_t)t * s_V), 0);
        }
    } else {
        mesh_batch_t b = {p->n, bt};
        assert_int_equal(mesh_model_forward(m, kv, &b, out), 0);
    }
    assert_int_equal(mesh_kv_seq_len(kv, seq), p->n);
    assert_int_equal(mesh_kv_seq_free(kv, seq), 0);
    free(bt);
    return out;
}

static void s_score(const float *got, int i, double *mean, double *agree) {
    const float *ref = s_ref[i];
    double s = 0;
    int ag = 0;
    for (int t = 0; t < s_p[i].n; t++) {
        const float *a = got + (size_t)t * s_V, *b = ref + (size_t)t * s_V;
        int ia = 0, ib = 0;
        for (int v = 0; v < s_V; v++) {
            s += fabs((double)a[v] - b[v]);
            if (a[v] > a[ia])
                ia = v;
            if (b[v] > b[ib])
                ib = v;
        }
        ag += ia == ib;
    }
    *mean = s / ((double)s_p[i].n * s_V);
    *agree = (double)ag / s_p[i].n;
}

static void s_check_file(const char *file, const char *peer_kind, uint32_t kv_type) {
    mesh_model_t *m = s_load(file, kv_type, 0);
    for (int i = 0; i < S_NP; i++) {
        float *got = s_run(m, i, false);
        double mean, agree;
        s_score(got, i, &mean, &agree);
        if (peer_kind) {
            double peer = s_peer(peer_kind, i);
            printf("golden %s prompt %d (%d tokens): mean abs err %.5f (bound 1.1 x llama.cpp "
                   "%.5f = %.5f), argmax agreement %.1f%%\n", file, i, s_p[i].n, mean, peer,
                   1.1 * peer, 100 * agree);
            assert_true(peer > 0);
            assert_true(mean <= 1.1 * peer);
        } else {
            printf("golden %s kv %s prompt %d (%d tokens): mean abs err %.6f (bound 0.005), "
                   "argmax agreement %.1f%% (bound 99%%)\n", file, mesh_qtype_name(kv_type), i,
                   s_p[i].n, mean, 100 * agree);
            assert_true(mean <= 0.005);
            assert_true(agree >= 0.99);
        }
        free(got);
    }
    mesh_model_destroy(&m);
}

static void test_bf16(void **state) {
    (void)state;
    s_check_file("tiny-glm.bf16.gguf", NULL, MESH_QT_F32);
}
static void test_bf16_kv_f16(void **state) {
    (void)state;
    s_check_file("tiny-glm.bf16.gguf", NULL, MESH_QT_F16);
}
static void test_q8_0(void **state) {
    (void)state;
    s_check_file("tiny-glm.q8_0.gguf", "q8_0_file", MESH_QT_F32);
}
static void test_q4_k_m(void **state) {
    (void)state;
    s_check_file("tiny-glm.q4_k_m.gguf", "q4_k_m_file", MESH_QT_F32);
}

// One batch vs token by token, and chunked batches (max_batch 7) vs one batch.
static void test_batch_vs_incremental(void **state) {
    (void)state;
    mesh_model_t *m = s_load("tiny-glm.bf16.gguf", MESH_QT_F32, 0);
    mesh_model_t *mc = s_load("tiny-glm.bf16.gguf", MESH_QT_F32, 7);
    for (int i = 0; i < 2; i++) {
        float *a = s_run(m, i, false), *b = s_run(m, i, true), *c = s_run(mc, i, false);
        double mx = 0;
        size_t n = (size_t)s_p[i].n * s_V;
        for (size_t j = 0; j < n; j++)
            mx = fmax(mx, fabs((double)a[j] - b[j]));
        printf("prompt %d: batch vs token-by-token max abs diff %.3g (bound 1e-3)\n", i, mx);
        assert_true(mx < 1e-3);
        assert_memory_equal(a, c, n * sizeof(float));
        free(a);
        free(b);
        free(c);
    }
    mesh_model_destroy(&mc);
    mesh_model_destroy(&m);
}

// Prompts 0 and 1 interleaved token by token in one batch (with only every
// other row flagged for logits) give exactly their solo logits.
static void test_interleaved(void **state) {
    (void)state;
    mesh_model_t *m = s_load("tiny-glm.bf16.gguf", MESH_QT_F32, 0);
    float *solo0 = s_run(m, 0, false), *solo1 = s_run(m, 1, false);
    mesh_kv_t *kv = mesh_model_kv(m);
    int32_t s0, s1;
    assert_int_equal(mesh_kv_seq_new(kv, &s1), 0); // ids differ from the solo runs
    assert_int_equal(mesh_kv_seq_new(kv, &s0), 0);
    int n0 = s_p[0].n, n1 = s_p[1].n, n = n0 + n1;
    mesh_batch_tok_t *bt = malloc(sizeof *bt * (size_t)n);
    int k = 0, i0 = 0, i1 = 0;
    while (i0 < n0 || i1 < n1) {
        if (i1 < n1)
            bt[k++] = (mesh_batch_tok_t){s_p[1].ids[i1], s1, i1, true}, i1++;
        if (i0 < n0)
            bt[k++] = (mesh_batch_tok_t){s_p[0].ids[i0], s0, i0, true}, i0++;
    }
    float *out = malloc(sizeof(float) * (size_t)n * s_V);
    mesh_batch_t b = {n, bt};
    assert_int_equal(mesh_model_forward(m, kv, &b, out), 0);
    for (int j = 0; j < n; j++) {
        const float *want = bt[j].seq == s0 ? solo0 + (size_t)bt[j].pos * s_V
                                            : solo1 + (size_t)bt[j].pos * s_V;
        assert_memory_equal(out + (size_t)j * s_V, want, sizeof(float) * (size_t)s_V);
    }
    // A decode step of both sequences together equals each alone.
    mesh_batch_tok_t step[2] = {{5, s0, n0, true}, {7, s1, n1, true}};
    float both[2 * 4096], alone[4096];
    assert_true(s_V <= 4096);
    mesh_batch_t b2 = {2, step};
    assert_int_equal(mesh_model_forward(m, kv, &b2, both), 0);
    assert_int_equal(mesh_kv_seq_truncate(kv, s1, n1), 0);
    mesh_batch_t b3 = {1, &step[1]};
    assert_int_equal(mesh_model_forward(m, kv, &b3, alone), 0);
    assert_memory_equal(both + s_V, alone, sizeof(float) * (size_t)s_V);
    printf("interleaved: %d tokens of 2 sequences in one batch equal their solo logits exactly\n", n);
    free(out);
    free(bt);
    free(solo0);
    free(solo1);
    mesh_model_destroy(&m);
}

// Refusals: bad ids, a position gap, a full pool; nothing changes.
static void test_refusals(void **state) {
    (void)state;
    char path[1200], err[256];
    snprintf(path, sizeof path, "%s/tiny-glm.bf16.gguf", s_dir);
    mesh_model_params_t p;
    mesh_model_params_default(&p);
    if (getenv("MESH_TEST_BACKEND")) // e.g. cuda: the same bounds on another backend
        p.backend = getenv("MESH_TEST_BACKEND");
    p.kv_tokens = 64; // two blocks of 32
    p.max_seqs = 2;
    mesh_model_t *m = NULL;
    assert_int_equal(mesh_model_load(path, &p, &m, err, sizeof err), 0);
    mesh_kv_t *kv = mesh_model_kv(m);
    assert_int_equal((int)mesh_kv_capacity_tokens(kv), 64);
    int32_t s;
    assert_int_equal(mesh_kv_seq_new(kv, &s), 0);
    float lg[4096];
    mesh_batch_tok_t t = {s_V, s, 0, true};
    mesh_batch_t b = {1, &t};
    assert_int_equal(mesh_model_forward(m, kv, &b, lg), MESH_EINVAL);
    t = (mesh_batch_tok_t){1, s, 1, true}; // gap: position 0 not filled
    assert_int_equal(mesh_model_forward(m, kv, &b, lg), MESH_EINVAL);
    t = (mesh_batch_tok_t){1, 99, 0, true};
    assert_int_equal(mesh_model_forward(m, kv, &b, lg), MESH_EINVAL);
    mesh_batch_tok_t many[65];
    for (int i = 0; i < 65; i++)
        many[i] = (mesh_batch_tok_t){1, s, i, false};
    mesh_batch_t bm = {65, many};
    assert_int_equal(mesh_model_forward(m, kv, &bm, NULL), MESH_ENOSPACE);
    assert_int_equal(mesh_kv_seq_len(kv, s), 0);
    assert_int_equal((int)mesh_kv_free_tokens(kv), 64);
    bm.n = 64;
    assert_int_equal(mesh_model_forward(m, kv, &bm, NULL), 0);
    assert_int_equal(mesh_kv_seq_len(kv, s), 64);
    int32_t s2;
    assert_int_equal(mesh_kv_seq_new(kv, &s2), 0);
    t = (mesh_batch_tok_t){1, s2, 0, true};
    assert_int_equal(mesh_model_forward(m, kv, &b, lg), MESH_ENOSPACE);
    assert_int_equal(mesh_kv_seq_free(kv, s), 0);
    assert_int_equal(mesh_model_forward(m, kv, &b, lg), 0);
    mesh_model_destroy(&m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bf16),
        cmocka_unit_test(test_bf16_kv_f16),
        cmocka_unit_test(test_q8_0),
        cmocka_unit_test(test_q4_k_m),
        cmocka_unit_test(test_batch_vs_incremental),
        cmocka_unit_test(test_interleaved),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
