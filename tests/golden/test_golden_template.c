// SPDX-License-Identifier: MIT
// Golden: every chat_template_cases[i] of glm-tiny/text.golden.json renders
// byte for byte with the model's own tokenizer.chat_template (read from the
// GGUF at test time through the engine's reader). On a mismatch it prints the first differing offset
// with context on both sides.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "chat_template.h"
#include "gguf.h"
#include "json.h"

static char *s_path(const char *rel) {
    const char *td = getenv("MESH_TESTDATA");
    if (!td || !*td) {
        fprintf(stderr, "MESH_TESTDATA is not set: the golden test needs shared/testdata\n");
        return NULL;
    }
    size_t n = strlen(td) + strlen(rel) + 2;
    char *p = malloc(n);
    snprintf(p, n, "%s/%s", td, rel);
    return p;
}

static char *s_slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    if (b) {
        b[n] = 0;
        *len = (size_t)n;
    }
    return b;
}

static void s_show_diff(size_t i, const char *got, size_t gn, const char *want, size_t wn) {
    size_t k = 0;
    while (k < gn && k < wn && got[k] == want[k])
        k++;
    size_t from = k > 40 ? k - 40 : 0;
    fprintf(stderr, "case %zu: first difference at byte %zu (got %zu bytes, want %zu)\n", i, k, gn, wn);
    fprintf(stderr, "  got:  ...%.*s|>>%.*s\n", (int)(k - from), got + from,
            (int)(gn - k > 40 ? 40 : gn - k), got + k);
    fprintf(stderr, "  want: ...%.*s|>>%.*s\n", (int)(k - from), want + from,
            (int)(wn - k > 40 ? 40 : wn - k), want + k);
}

static void test_golden_chat_template(void **state) {
    (void)state;
    char *gguf = s_path("glm-tiny/tiny-glm.bf16.gguf");
    char *gold = s_path("glm-tiny/text.golden.json");
    assert_non_null(gguf);
    assert_non_null(gold);
    char err[256];
    mesh_gguf_t *model = NULL;
    if (mesh_gguf_open(gguf, &model, err, sizeof err))
        fprintf(stderr, "cannot open %s: %s\n", gguf, err);
    assert_non_null(model);
    const char *src = NULL;
    if (mesh_gguf_get_str(model, "tokenizer.chat_template", &src, NULL))
        fprintf(stderr, "no tokenizer.chat_template in %s\n", gguf);
    assert_non_null(src);
    size_t glen = 0;
    char *gtext = s_slurp(gold, &glen);
    if (!gtext)
        fprintf(stderr, "cannot read %s\n", gold);
    assert_non_null(gtext);
    mesh_json_t *g = NULL;
    assert_int_equal(mesh_json_parse(gtext, glen, &g, err, sizeof err), 0);
    mesh_tmpl_t *t = mesh_tmpl_new(src, err, sizeof err);
    if (!t)
        fprintf(stderr, "%s\n", err);
    assert_non_null(t);
    mesh_json_t *cases = mesh_json_get(g, "chat_template_cases");
    assert_int_equal(mesh_json_type(cases), MESH_JSON_ARRAY);
    assert_true(mesh_json_len(cases) >= 8);
    int failures = 0;
    for (size_t i = 0; i < mesh_json_len(cases); i++) {
        mesh_json_t *c = mesh_json_at(cases, i);
        mesh_json_t *et = mesh_json_get(c, "enable_thinking");
        mesh_tmpl_chat_t chat = {
            .messages = mesh_json_get(c, "messages"),
            .tools = mesh_json_get(c, "tools"),
            .add_generation_prompt = mesh_json_bool(mesh_json_get(c, "add_generation_prompt")),
            .enable_thinking = et ? mesh_json_bool(et) : -1,
        };
        size_t wn;
        const char *want = mesh_json_str(mesh_json_get(c, "rendered"), &wn);
        assert_non_null(want);
        char *out = NULL;
        size_t on = 0;
        int rc = mesh_tmpl_render_chat(t, &chat, &out, &on, err, sizeof err);
        if (rc) {
            fprintf(stderr, "case %zu: render failed: %s\n", i, err);
            failures++;
            continue;
        }
        if (on != wn || memcmp(out, want, wn)) {
            s_show_diff(i, out, on, want, wn);
            failures++;
        }
        free(out);
    }
    fprintf(stderr, "golden chat template: %zu cases, %d failures\n", mesh_json_len(cases), failures);
    assert_int_equal(failures, 0);
    mesh_tmpl_destroy(&t);
    assert_null(t);
    mesh_json_destroy(&g);
    free(gtext);
    mesh_gguf_close(&model);
    free(gguf);
    free(gold);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden_chat_template),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
