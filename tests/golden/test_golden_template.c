// SPDX-License-Identifier: MIT
// Golden: every chat_template_cases[i] of glm-tiny/text.golden.json renders
// byte for byte with the model's own tokenizer.chat_template (read from the
// GGUF at test time through the engine's reader). On a mismatch it prints the first differing offset
// with context on both sides. Also runs `meshrun render` on every case.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "chat_template.h"
#include "gguf.h"
#include "json.h"
#include "mesh_test.h"

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
    char gguf[4096], err[256];
    assert_int_equal(mesh_test_data_path(gguf, sizeof gguf, "glm-tiny/tiny-glm.bf16.gguf"), 0);
    mesh_gguf_t *model = NULL;
    if (mesh_gguf_open(gguf, &model, err, sizeof err))
        fprintf(stderr, "cannot open %s: %s\n", gguf, err);
    assert_non_null(model);
    const char *src = NULL;
    if (mesh_gguf_get_str(model, "tokenizer.chat_template", &src, NULL))
        fprintf(stderr, "no tokenizer.chat_template in %s\n", gguf);
    assert_non_null(src);
    mesh_json_t *g = mesh_test_load_json("glm-tiny/text.golden.json");
    assert_non_null(g);
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
    mesh_gguf_close(&model);
}

// Runs a shell command; returns its exit status and stdout (caller frees).
static int s_run(const char *cmd, char **out, size_t *out_len) {
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t cap = 1 << 16, n = 0;
    char *b = malloc(cap);
    size_t k;
    while ((k = fread(b + n, 1, cap - n - 1, p)) > 0) {
        n += k;
        if (n + 1 >= cap)
            b = realloc(b, cap *= 2);
    }
    b[n] = 0;
    int st = pclose(p);
    *out = b;
    *out_len = n;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

// meshrun render prints each golden case byte for byte, and fails cleanly on bad input.
static void test_meshrun_render(void **state) {
    (void)state;
    const char *bin = getenv("MESH_BIN_DIR");
    assert_non_null(bin);
    char gguf[4096];
    assert_int_equal(mesh_test_data_path(gguf, sizeof gguf, "glm-tiny/tiny-glm.bf16.gguf"), 0);
    mesh_json_t *g = mesh_test_load_json("glm-tiny/text.golden.json");
    assert_non_null(g);
    mesh_json_t *cases = mesh_json_get(g, "chat_template_cases");
    char tmp[] = "/tmp/mesh_render_XXXXXX";
    int fd = mkstemp(tmp);
    assert_true(fd >= 0);
    close(fd);
    char cmd[10240];
    for (size_t i = 0; i < mesh_json_len(cases); i++) {
        mesh_json_t *c = mesh_json_clone(mesh_json_at(cases, i));
        size_t wn;
        const char *want0 = mesh_json_str(mesh_json_get(c, "rendered"), &wn);
        char *want = malloc(wn + 1);
        memcpy(want, want0, wn + 1);
        // The chat file carries only the inputs.
        mesh_json_t *in = mesh_json_new_object();
        static const char *keys[] = {"messages", "tools", "add_generation_prompt", "enable_thinking"};
        for (size_t k = 0; k < 4; k++) {
            mesh_json_t *v = mesh_json_get(c, keys[k]);
            if (v)
                assert_int_equal(mesh_json_set(in, keys[k], strlen(keys[k]), mesh_json_clone(v)), 0);
        }
        size_t jn;
        char *js = mesh_json_write(in, NULL, &jn);
        FILE *f = fopen(tmp, "wb");
        assert_non_null(f);
        assert_int_equal(fwrite(js, 1, jn, f), jn);
        fclose(f);
        snprintf(cmd, sizeof cmd, "'%s/meshrun' render --model '%s' --chat-json '%s'", bin, gguf, tmp);
        char *out;
        size_t on;
        int st = s_run(cmd, &out, &on);
        assert_int_equal(st, 0);
        if (on != wn || memcmp(out, want, wn))
            s_show_diff(i, out, on, want, wn);
        assert_int_equal(on, wn);
        assert_memory_equal(out, want, wn);
        free(out);
        free(js);
        free(want);
        mesh_json_destroy(&in);
        mesh_json_destroy(&c);
    }
    // Usage and input errors: non-zero exit, one line on stderr, nothing on stdout.
    static const struct {
        const char *args;
        const char *content;
        int status;
    } bad[] = {
        {"--chat-json TMP", NULL, 2},                       // neither --model nor --template-file
        {"--model GGUF", NULL, 2},                          // no --chat-json
        {"--model GGUF --chat-json TMP --bogus", NULL, 2},  // unknown option
        {"--model GGUF --chat-json TMP", "{\"messages\": [}", 1},
        {"--model GGUF --chat-json TMP", "{\"messages\": 3}", 1},
        {"--model GGUF --chat-json TMP", "[1]", 1},
        {"--model /nonexistent.gguf --chat-json TMP", "{\"messages\": []}", 1},
        {"--template-file TMP --chat-json TMP", "{\"messages\": []}", 0}, // plain text is a template too
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (bad[i].content) {
            FILE *f = fopen(tmp, "wb");
            fputs(bad[i].content, f);
            fclose(f);
        }
        char args[1024] = "";
        const char *a = bad[i].args;
        size_t k = 0;
        while (*a && k + 300 < sizeof args) {
            if (!strncmp(a, "TMP", 3)) {
                k += (size_t)snprintf(args + k, sizeof args - k, "'%s'", tmp);
                a += 3;
            } else if (!strncmp(a, "GGUF", 4)) {
                k += (size_t)snprintf(args + k, sizeof args - k, "'%s'", gguf);
                a += 4;
            } else {
                args[k++] = *a++;
            }
        }
        args[k] = 0;
        snprintf(cmd, sizeof cmd, "'%s/meshrun' render %s 2>/dev/null", bin, args);
        char *out;
        size_t on;
        int st = s_run(cmd, &out, &on);
        if (i == 7) { // a JSON text is a valid (plain-text) template: renders as is
            assert_int_equal(st, 0);
            assert_string_equal(out, "{\"messages\": []}");
        } else {
            if (st != bad[i].status)
                fprintf(stderr, "meshrun render %s: status %d, want %d\n", args, st, bad[i].status);
            assert_int_equal(st, bad[i].status);
            assert_int_equal(on, 0);
        }
        free(out);
    }
    snprintf(cmd, sizeof cmd, "'%s/meshrun' render --help", bin);
    char *out;
    size_t on;
    assert_int_equal(s_run(cmd, &out, &on), 0);
    assert_non_null(strstr(out, "usage: meshrun render"));
    free(out);
    unlink(tmp);
    mesh_json_destroy(&g);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden_chat_template),
        cmocka_unit_test(test_meshrun_render),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
