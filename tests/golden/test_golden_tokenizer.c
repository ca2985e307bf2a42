// SPDX-License-Identifier: MIT
// Golden tokenizer test: the GLM tokenizer read from the tiny GLM GGUF must
// give exactly the reference ids (Hugging Face tokenizers, no BOS, special
// tokens parsed) for every text of glm-tiny/text.golden.json, and for the
// rendered string of every chat-template case; decoding the ids must give
// the text back. Also prints encode throughput (information, not pass/fail).
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gguf.h"
#include "mesh_err.h"
#include "mesh_test.h"
#include "tokenizer.h"

static mesh_tok_t *s_tok;
static mesh_json_t *s_golden; // text.golden.json

static int s_setup(void **state) {
    (void)state;
    char path[4096], err[256] = "";
    if (mesh_test_data_path(path, sizeof path, "glm-tiny/tiny-glm.bf16.gguf"))
        return -1;
    mesh_gguf_t *g = NULL;
    int rc = mesh_gguf_open(path, &g, err, sizeof err);
    if (rc < 0) {
        fprintf(stderr, "cannot open %s: %s\n", path, err);
        return -1;
    }
    rc = mesh_tok_new_from_gguf(g, &s_tok, err, sizeof err);
    mesh_gguf_close(&g); // the tokenizer keeps its own copy
    if (rc < 0) {
        fprintf(stderr, "tokenizer from %s: %s\n", path, err);
        return -1;
    }
    s_golden = mesh_test_load_json("glm-tiny/text.golden.json");
    return s_golden ? 0 : -1;
}

static int s_teardown(void **state) {
    (void)state;
    mesh_tok_destroy(&s_tok);
    mesh_json_destroy(&s_golden);
    return 0;
}

static void s_print_ids(const char *what, const int32_t *ids, size_t n) {
    print_error("  %s (%zu):", what, n);
    for (size_t i = 0; i < n; i++)
        print_error(" %d", ids[i]);
    print_error("\n");
}

// Encodes text and compares with the expected id array; then decodes.
static int s_check_case(const char *label, size_t idx, const mesh_json_t *text_v,
                        const mesh_json_t *ids_v) {
    size_t text_len = 0;
    const char *text = mesh_json_str(text_v, &text_len);
    int32_t *want = NULL;
    long n_want = mesh_test_json_ids(ids_v, &want);
    if (!text || n_want < 0) {
        print_error("%s[%zu]: missing text or ids in the golden file\n", label, idx);
        free(want);
        return 1;
    }
    int32_t *got = NULL;
    size_t n_got = 0;
    assert_int_equal(mesh_tok_encode_alloc(s_tok, text, text_len, true, false, &got, &n_got), 0);
    int bad = 0;
    if (n_got != (size_t)n_want || memcmp(got, want, n_got * sizeof *got)) {
        print_error("%s[%zu]: ids differ for text \"%.*s\"\n", label, idx, (int)text_len, text);
        s_print_ids("expected", want, (size_t)n_want);
        s_print_ids("actual  ", got, n_got);
        bad = 1;
    }
    size_t need = 0;
    mesh_tok_decode(s_tok, want, (size_t)n_want, false, NULL, 0, &need);
    char *back = malloc(need + 1);
    assert_non_null(back);
    assert_int_equal(mesh_tok_decode(s_tok, want, (size_t)n_want, false, back, need + 1, &need), 0);
    if (need != text_len || memcmp(back, text, need)) {
        print_error("%s[%zu]: decode(ids) gives \"%.*s\", expected \"%.*s\"\n", label, idx,
                    (int)need, back, (int)text_len, text);
        bad = 1;
    }
    free(back);
    free(got);
    free(want);
    return bad;
}

static void test_tokenizer_cases(void **state) {
    (void)state;
    const mesh_json_t *cases = mesh_json_get(s_golden, "tokenizer_cases");
    size_t n_cases = mesh_json_len(cases);
    assert_int_equal(mesh_json_type(cases), MESH_JSON_ARRAY);
    assert_true(n_cases > 0);
    int bad = 0;
    for (size_t i = 0; i < n_cases; i++)
        bad += s_check_case("tokenizer_cases", i, mesh_json_get(mesh_json_at(cases, i), "text"),
                            mesh_json_get(mesh_json_at(cases, i), "ids"));
    print_message("tokenizer_cases: %zu of %zu match\n", n_cases - (size_t)bad, n_cases);
    assert_int_equal(bad, 0);
}

static void test_chat_template_cases(void **state) {
    (void)state;
    const mesh_json_t *cases = mesh_json_get(s_golden, "chat_template_cases");
    size_t n_cases = mesh_json_len(cases);
    assert_int_equal(mesh_json_type(cases), MESH_JSON_ARRAY);
    assert_true(n_cases > 0);
    int bad = 0;
    for (size_t i = 0; i < n_cases; i++)
        bad += s_check_case("chat_template_cases", i, mesh_json_get(mesh_json_at(cases, i), "rendered"),
                            mesh_json_get(mesh_json_at(cases, i), "ids"));
    print_message("chat_template_cases: %zu of %zu match\n", n_cases - (size_t)bad, n_cases);
    assert_int_equal(bad, 0);
}

static void test_model_specials(void **state) {
    (void)state;
    // The GGUF's ids, read back through the API (values from the file's metadata).
    int32_t eos = mesh_tok_eos(s_tok), eot = mesh_tok_eot(s_tok), eom = mesh_tok_eom(s_tok);
    assert_true(eos >= 0 && eot >= 0 && eom >= 0);
    assert_true(mesh_tok_is_end_of_generation(s_tok, eos));
    assert_true(mesh_tok_is_end_of_generation(s_tok, eot));
    assert_true(mesh_tok_is_end_of_generation(s_tok, eom));
    assert_false(mesh_tok_is_end_of_generation(s_tok, mesh_tok_bos(s_tok)));
    assert_string_equal(mesh_tok_token_text(s_tok, eos, NULL), "<|endoftext|>");
    assert_string_equal(mesh_tok_token_text(s_tok, eot, NULL), "<|user|>");
    assert_string_equal(mesh_tok_token_text(s_tok, eom, NULL), "<|observation|>");
    assert_string_equal(mesh_tok_pre(s_tok), "glm4");
    assert_false(mesh_tok_add_bos_default(s_tok));
}

// Information only: encode throughput over the case texts repeated to ~2 MB.
static void test_throughput_report(void **state) {
    (void)state;
    const mesh_json_t *cases = mesh_json_get(s_golden, "tokenizer_cases");
    assert_non_null(cases);
    size_t cap = 2u << 20, n = 0;
    char *buf = malloc(cap);
    assert_non_null(buf);
    while (n < cap - 4096)
        for (size_t i = 0; i < mesh_json_len(cases) && n < cap - 4096; i++) {
            size_t tl = 0;
            const char *t = mesh_json_str(mesh_json_get(mesh_json_at(cases, i), "text"), &tl);
            if (t && tl < 4096) {
                memcpy(buf + n, t, tl);
                n += tl;
            }
        }
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    int32_t *ids = NULL;
    size_t n_ids = 0;
    assert_int_equal(mesh_tok_encode_alloc(s_tok, buf, n, true, false, &ids, &n_ids), 0);
    clock_gettime(CLOCK_MONOTONIC, &b);
    double s = (double)(b.tv_sec - a.tv_sec) + 1e-9 * (double)(b.tv_nsec - a.tv_nsec);
    print_message("encode: %zu bytes -> %zu ids in %.3f s = %.1f MB/s\n", n, n_ids, s,
                  (double)n / 1e6 / (s > 0 ? s : 1e-9));
    size_t need = 0;
    mesh_tok_decode(s_tok, ids, n_ids, false, NULL, 0, &need);
    assert_int_equal(need, n);
    free(ids);
    free(buf);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tokenizer_cases),
        cmocka_unit_test(test_chat_template_cases),
        cmocka_unit_test(test_model_specials),
        cmocka_unit_test(test_throughput_report),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
