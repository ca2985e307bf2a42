// SPDX-License-Identifier: MIT
// meshrun quantize (engine/quantize.c): converts the bf16 test model to q8_0
// and q4_k_m, reopens the results with the GGUF reader, and checks the
// per-tensor types against llama.cpp's own files of the same weights, the
// file-type keys, that all metadata came across, and that the dequantized
// weights are within each type's error of the bf16 weights. Also the
// failures: unknown type, missing and truncated inputs, and the CLI's exit
// codes.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "gguf.h"
#include "mesh_err.h"
#include "quant.h"
#include "quantize.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char s_dir[256];

static const char *s_testdata(void) {
    const char *d = getenv("MESH_TESTDATA");
    if (!d) {
        fprintf(stderr, "MESH_TESTDATA is not set: the reference data is required\n");
        fail();
        return ""; // not reached: fail() does not return (cmocka does not say so to the compiler)
    }
    return d ? d : ""; // fail() does not return; this keeps -Wformat-truncation quiet
}

static void s_model_path(char *out, size_t n, const char *file) {
    snprintf(out, n, "%s/glm-tiny/%s", s_testdata(), file);
    if (access(out, R_OK)) {
        fprintf(stderr, "missing reference file %s\n", out);
        fail();
    }
}

static mesh_gguf_t *s_open(const char *path) {
    mesh_gguf_t *g = NULL;
    char err[256];
    int rc = mesh_gguf_open(path, &g, err, sizeof err);
    if (rc) {
        fprintf(stderr, "open %s: %s\n", path, err);
        fail();
    }
    return g;
}

static float *s_deq(const mesh_gguf_tensor_t *t) {
    float *y = malloc(t->n_elements * sizeof(float));
    const mesh_qtype_traits_t *tr = mesh_qtype_traits(t->type);
    size_t rb = mesh_qtype_row_size(t->type, (int64_t)t->ne[0]);
    for (uint64_t r = 0; r < t->n_elements / t->ne[0]; r++)
        tr->to_float((const uint8_t *)t->data + r * rb, y + r * t->ne[0], (int64_t)t->ne[0]);
    return y;
}

static double s_bound(uint32_t type) {
    switch (type) {
    case MESH_QT_F32: return 0.0;
    case MESH_QT_Q8_0: return 0.008;
    case MESH_QT_Q6_K: return 0.025;
    case MESH_QT_Q5_0: return 0.05;
    case MESH_QT_Q4_K: return 0.09;
    default: return 0.2;
    }
}

static void s_check_against(const char *ftype, const char *llama_file, uint32_t want_ftype) {
    char in[1024], ref[1024], out[512], err[512] = "";
    s_model_path(in, sizeof in, "tiny-glm.bf16.gguf");
    s_model_path(ref, sizeof ref, llama_file);
    snprintf(out, sizeof out, "%s/out-%s.gguf", s_dir, ftype);
    int rc = mesh_quantize_file(in, out, ftype, 2, NULL, err, sizeof err);
    if (rc)
        fprintf(stderr, "quantize: %s\n", err);
    assert_int_equal(rc, 0);
    mesh_gguf_t *src = s_open(in), *got = s_open(out), *lc = s_open(ref);
    uint32_t v;
    assert_int_equal(mesh_gguf_get_u32(got, "general.file_type", &v), 0);
    assert_int_equal(v, want_ftype);
    assert_int_equal(mesh_gguf_get_u32(got, "general.quantization_version", &v), 0);
    assert_int_equal(v, 2);
    // Every key of the input is there with the same type.
    for (int64_t i = 0; i < mesh_gguf_n_kv(src); i++) {
        const char *k = mesh_gguf_key_name(src, i);
        int64_t j = mesh_gguf_find_key(got, k);
        assert_true(j >= 0);
        if (strcmp(k, "general.file_type"))
            assert_int_equal(mesh_gguf_key_type(got, j), mesh_gguf_key_type(src, i));
    }
    assert_int_equal(mesh_gguf_n_tensors(got), mesh_gguf_n_tensors(src));
    for (int64_t i = 0; i < mesh_gguf_n_tensors(src); i++) {
        const mesh_gguf_tensor_t *ts = mesh_gguf_tensor(src, i);
        const mesh_gguf_tensor_t *tg = mesh_gguf_find_tensor(got, ts->name);
        const mesh_gguf_tensor_t *tl = mesh_gguf_find_tensor(lc, ts->name);
        assert_non_null(tg);
        assert_non_null(tl);
        if (tg->type != tl->type) {
            fprintf(stderr, "%s: %s is %s, llama.cpp made it %s\n", ftype, ts->name,
                    mesh_qtype_name(tg->type), mesh_qtype_name(tl->type));
            fail();
        }
        assert_int_equal(tg->n_dims, ts->n_dims);
        assert_memory_equal(tg->ne, ts->ne, sizeof ts->ne);
        // Q8_0 (and kept F32) tensors follow the published reference's
        // rounding exactly: the bytes must be llama.cpp's.
        if ((tg->type == MESH_QT_Q8_0 || tg->type == MESH_QT_F32) &&
            (tg->n_bytes != tl->n_bytes || memcmp(tg->data, tl->data, tg->n_bytes))) {
            fprintf(stderr, "%s: %s (%s) differs from llama.cpp's bytes\n", ftype, ts->name,
                    mesh_qtype_name(tg->type));
            fail();
        }
        float *a = s_deq(ts), *b = s_deq(tg);
        double se = 0, s2 = 0;
        for (uint64_t e = 0; e < ts->n_elements; e++) {
            se += ((double)a[e] - b[e]) * ((double)a[e] - b[e]);
            s2 += (double)a[e] * a[e];
        }
        double rel = s2 > 0 ? sqrt(se / s2) : sqrt(se);
        if (rel > s_bound(tg->type)) {
            fprintf(stderr, "%s: %s (%s) rel rms error %.4f above %.4f\n", ftype, ts->name,
                    mesh_qtype_name(tg->type), rel, s_bound(tg->type));
            fail();
        }
        free(a);
        free(b);
    }
    assert_int_equal(mesh_gguf_file_size(got), mesh_gguf_file_size(lc));
    mesh_gguf_close(&src);
    mesh_gguf_close(&got);
    mesh_gguf_close(&lc);
    unlink(out);
}

static void test_q8_0(void **st) {
    (void)st;
    s_check_against("q8_0", "tiny-glm.q8_0.gguf", 7);
}

static void test_q4_k_m(void **st) {
    (void)st;
    s_check_against("q4_k_m", "tiny-glm.q4_k_m.gguf", 15);
}

static void test_type_rules(void **st) {
    (void)st;
    const mesh_ftype_t *ft = mesh_ftype_find("Q4_K_M");
    assert_non_null(ft);
    uint64_t ne2[4] = {2048, 1536, 1, 1}, ne1[4] = {2048, 1, 1, 1}, ne_odd[4] = {100, 8, 1, 1};
    assert_int_equal(mesh_ftype_tensor_type(ft, "blk.5.attn_norm.weight", 1, ne1, 47, MESH_QT_F32),
                     MESH_QT_F32);
    assert_int_equal(mesh_ftype_tensor_type(ft, "blk.5.ffn_gate_inp.weight", 2, ne2, 47, MESH_QT_BF16),
                     MESH_QT_F32);
    assert_int_equal(mesh_ftype_tensor_type(ft, "output.weight", 2, ne2, 47, MESH_QT_BF16),
                     MESH_QT_Q6_K);
    assert_int_equal(mesh_ftype_tensor_type(ft, "blk.0.ffn_down_exps.weight", 3, ne2, 47, MESH_QT_BF16),
                     MESH_QT_Q6_K); // first eighth of the layers
    assert_int_equal(mesh_ftype_tensor_type(ft, "blk.6.ffn_down_exps.weight", 3, ne2, 47, MESH_QT_BF16),
                     MESH_QT_Q4_K);
    assert_int_equal(mesh_ftype_tensor_type(ft, "blk.7.ffn_up_exps.weight", 3, ne_odd, 47, MESH_QT_BF16),
                     MESH_QT_BF16); // not even a multiple of 32: stays a float type
    assert_int_equal(mesh_ftype_tensor_type(mesh_ftype_find("bf16"), "output.weight", 2, ne2, 47,
                                            MESH_QT_F16),
                     MESH_QT_BF16);
    assert_int_equal(mesh_ftype_tensor_type(mesh_ftype_find("q8_0"), "output.weight", 2, ne2, 47,
                                            MESH_QT_BF16),
                     MESH_QT_Q8_0);
    assert_null(mesh_ftype_find("q4_k_x"));
}

static void test_errors(void **st) {
    (void)st;
    char in[1024], out[512], bad[512], err[512];
    s_model_path(in, sizeof in, "tiny-glm.bf16.gguf");
    snprintf(out, sizeof out, "%s/never.gguf", s_dir);
    err[0] = 0;
    assert_int_equal(mesh_quantize_file(in, out, "q9_9", 1, NULL, err, sizeof err), MESH_EINVAL);
    assert_non_null(strstr(err, "q9_9"));
    err[0] = 0;
    assert_true(mesh_quantize_file("no/such/file.gguf", out, "q8_0", 1, NULL, err, sizeof err) < 0);
    assert_non_null(strstr(err, "no/such/file.gguf"));
    // A truncated copy of the model: refused by the reader, no output left.
    snprintf(bad, sizeof bad, "%s/cut.gguf", s_dir);
    FILE *f = fopen(in, "rb"), *g = fopen(bad, "wb");
    assert_non_null(f);
    assert_non_null(g);
    char buf[65536];
    size_t total = 0, n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0 && total < 3000000) {
        fwrite(buf, 1, n, g);
        total += n;
    }
    fclose(f);
    fclose(g);
    err[0] = 0;
    assert_true(mesh_quantize_file(bad, out, "q8_0", 1, NULL, err, sizeof err) < 0);
    assert_true(strlen(err) > 0);
    assert_true(access(out, F_OK) != 0);
    unlink(bad);
}

static int s_sh(const char *cmd) {
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_cli(void **st) {
    (void)st;
    const char *bin = getenv("MESH_BIN_DIR");
    if (!bin) {
        fprintf(stderr, "MESH_BIN_DIR is not set\n");
        fail();
    }
    char in[1024], cmd[4096];
    s_model_path(in, sizeof in, "tiny-glm.bf16.gguf");
    snprintf(cmd, sizeof cmd, "'%s/meshrun' quantize --help >/dev/null", bin);
    assert_int_equal(s_sh(cmd), 0);
    snprintf(cmd, sizeof cmd, "'%s/meshrun' quantize '%s' '%s/x.gguf' q7_7 2>/dev/null", bin, in, s_dir);
    assert_int_equal(s_sh(cmd), 2);
    snprintf(cmd, sizeof cmd, "'%s/meshrun' quantize '%s' 2>/dev/null", bin, in);
    assert_int_equal(s_sh(cmd), 2);
    snprintf(cmd, sizeof cmd, "'%s/meshrun' quantize '%s/none.gguf' '%s/x.gguf' q8_0 2>/dev/null", bin,
             s_dir, s_dir);
    assert_int_equal(s_sh(cmd), 1);
    snprintf(cmd, sizeof cmd, "'%s/meshrun' quantize '%s' '%s/x.gguf' q4_0 --threads 2 >/dev/null", bin,
             in, s_dir);
    assert_int_equal(s_sh(cmd), 0);
    snprintf(cmd, sizeof cmd, "%s/x.gguf", s_dir);
    mesh_gguf_t *g = s_open(cmd);
    assert_int_equal(mesh_gguf_find_tensor(g, "output.weight")->type, MESH_QT_Q6_K);
    assert_int_equal(mesh_gguf_find_tensor(g, "token_embd.weight")->type, MESH_QT_Q4_0);
    mesh_gguf_close(&g);
    unlink(cmd);
}

static int s_setup(void **st) {
    (void)st;
    snprintf(s_dir, sizeof s_dir, "%s/mesh_quantize_XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    return mkdtemp(s_dir) ? 0 : -1;
}

static int s_teardown(void **st) {
    (void)st;
    rmdir(s_dir);
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_type_rules), cmocka_unit_test(test_q8_0),
        cmocka_unit_test(test_q4_k_m),     cmocka_unit_test(test_errors),
        cmocka_unit_test(test_cli),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
