// SPDX-License-Identifier: MIT
// meshrun tokenize as a real process: its ids equal the library's for the
// same text, --decode gives the text back, and bad use exits 2 (usage) or
// 1 (runtime) with one line on stderr. Uses glm-tiny from the reference data.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "gguf.h"
#include "tokenizer.h"

static char s_bin[4096], s_model[4096];

static int s_setup(void **state) {
    (void)state;
    const char *b = getenv("MESH_BIN_DIR"), *d = getenv("MESH_TESTDATA");
    if (!b || !d) {
        fprintf(stderr, "MESH_BIN_DIR and MESH_TESTDATA must be set (run through ctest)\n");
        return -1;
    }
    snprintf(s_bin, sizeof s_bin, "%s/meshrun", b);
    snprintf(s_model, sizeof s_model, "%s/glm-tiny/tiny-glm.bf16.gguf", d);
    return 0;
}

// Runs a shell command line; returns the exit status and the first line of stdout.
static int s_run(const char *cmd, char *out, size_t out_len) {
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(out, 1, out_len - 1, p);
    out[n] = 0;
    char *nl = strchr(out, '\n');
    if (nl)
        *nl = 0;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_cli_matches_library(void **state) {
    (void)state;
    const char *text = "[gMASK]<sop><|user|>Hello, world! 1234567 \xe4\xb8\xad\xe6\x96\x87";
    mesh_gguf_t *g = NULL;
    mesh_tok_t *t = NULL;
    char err[256];
    assert_int_equal(mesh_gguf_open(s_model, &g, err, sizeof err), 0);
    assert_int_equal(mesh_tok_new_from_gguf(g, &t, err, sizeof err), 0);
    mesh_gguf_close(&g);
    int32_t *ids;
    size_t n;
    assert_int_equal(mesh_tok_encode_alloc(t, text, strlen(text), true, false, &ids, &n), 0);
    char want[4096] = "";
    for (size_t i = 0; i < n; i++)
        snprintf(want + strlen(want), sizeof want - strlen(want), i ? " %d" : "%d", ids[i]);
    free(ids);
    mesh_tok_destroy(&t);

    char cmd[16384], out[8192];
    snprintf(cmd, sizeof cmd, "'%s' tokenize --model '%s' --text '%s'", s_bin, s_model, text);
    assert_int_equal(s_run(cmd, out, sizeof out), 0);
    assert_string_equal(out, want);
    snprintf(cmd, sizeof cmd, "'%s' tokenize --model '%s' --decode --ids '%s'", s_bin, s_model,
             want);
    assert_int_equal(s_run(cmd, out, sizeof out), 0);
    assert_string_equal(out, text);
}

static void test_cli_errors(void **state) {
    (void)state;
    char cmd[16384], out[4096];
    snprintf(cmd, sizeof cmd, "'%s' tokenize --help", s_bin);
    assert_int_equal(s_run(cmd, out, sizeof out), 0);
    assert_non_null(strstr(out, "usage"));
    snprintf(cmd, sizeof cmd, "'%s' tokenize --text hi 2>/dev/null", s_bin);
    assert_int_equal(s_run(cmd, out, sizeof out), 2);
    snprintf(cmd, sizeof cmd, "'%s' tokenize --model '%s' --bogus 2>/dev/null", s_bin, s_model);
    assert_int_equal(s_run(cmd, out, sizeof out), 2);
    snprintf(cmd, sizeof cmd, "'%s' tokenize --model '%s' --decode --ids '1 x' 2>&1", s_bin,
             s_model);
    assert_int_equal(s_run(cmd, out, sizeof out), 2);
    assert_non_null(strstr(out, "'x' is not a token id"));
    snprintf(cmd, sizeof cmd, "'%s' tokenize --model '%s' --decode --ids 9999999 2>&1", s_bin,
             s_model);
    assert_int_equal(s_run(cmd, out, sizeof out), 2);
    assert_non_null(strstr(out, "outside the vocabulary"));
    snprintf(cmd, sizeof cmd, "'%s' tokenize --model does-not-exist.gguf --text hi 2>&1", s_bin);
    assert_int_equal(s_run(cmd, out, sizeof out), 1);
    assert_non_null(strstr(out, "does-not-exist.gguf"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cli_matches_library),
        cmocka_unit_test(test_cli_errors),
    };
    return cmocka_run_group_tests(tests, s_setup, NULL);
}
