// SPDX-License-Identifier: MIT
// GLM output parser: content / reasoning / tool calls come out the same
// whatever way the text is split into pieces (every split point of each
// case, and one byte at a time), typed arguments stay typed, and broken or
// cut-off tool calls come back as content instead of being lost.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "output_glm.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char content[2048], reasoning[2048], tools[2048];
    int n_tools;
} s_out_t;

static void s_cat(char *dst, size_t cap, const char *t, size_t n) {
    size_t l = strlen(dst);
    assert_true(l + n < cap);
    memcpy(dst + l, t, n);
    dst[l + n] = 0;
}
static void s_c(void *u, const char *t, size_t n) {
    s_cat(((s_out_t *)u)->content, 2048, t, n);
}
static void s_r(void *u, const char *t, size_t n) {
    s_cat(((s_out_t *)u)->reasoning, 2048, t, n);
}
static void s_t(void *u, const char *name, const char *args) {
    s_out_t *o = u;
    char line[600];
    snprintf(line, sizeof line, "%s%s %s", o->n_tools ? "|" : "", name, args);
    s_cat(o->tools, 2048, line, strlen(line));
    o->n_tools++;
}

// Runs text through a parser cut at the given points (sorted, < len).
static void s_run(const char *text, int thinking, const size_t *cuts, size_t n_cuts,
                  s_out_t *o) {
    memset(o, 0, sizeof *o);
    mesh_out_sink_t sink = {s_c, s_r, s_t};
    mesh_out_parser_t *p = mesh_out_glm.create(thinking, &sink, o);
    assert_non_null(p);
    size_t at = 0, len = strlen(text);
    for (size_t i = 0; i <= n_cuts; i++) {
        size_t end = i < n_cuts ? cuts[i] : len;
        assert_int_equal(mesh_out_glm.feed(p, text + at, end - at), 0);
        at = end;
    }
    assert_int_equal(mesh_out_glm.finish(p), 0);
    mesh_out_glm.destroy(&p);
    assert_null(p);
}

typedef struct {
    const char *text;
    int thinking;
    const char *content, *reasoning, *tools;
} s_case_t;

static const s_case_t s_cases[] = {
    {"Hello world", 0, "Hello world", "", ""},
    {"I think so.</think>\nThe answer is 4.", 1, "The answer is 4.", "I think so.", ""},
    {"<think>plan</think>Done", 0, "Done", "plan", ""},
    {"a < b and c <think", 0, "a < b and c <think", "", ""},
    {"x</think>\n<tool_call>get_weather\n<arg_key>location</arg_key>\n<arg_value>Tokyo"
     "</arg_value>\n<arg_key>days</arg_key>\n<arg_value>2</arg_value>\n</tool_call>",
     1, "", "x", "get_weather {\"location\":\"Tokyo\",\"days\":2}"},
    {"<tool_call>f<arg_key>o</arg_key><arg_value>{\"a\": [1, true]}</arg_value></tool_call>"
     "<tool_call>g</tool_call>after",
     0, "after", "", "f {\"o\":{\"a\":[1,true]}}|g {}"},
    {"<tool_call>f<arg_key>s</arg_key><arg_value>\"quoted\"</arg_value><arg_key>t</arg_key>"
     "<arg_value>not json {</arg_value></tool_call>",
     0, "", "", "f {\"s\":\"quoted\",\"t\":\"not json {\"}"},
    // Malformed body: given back as content, nothing lost.
    {"<tool_call>bad name<oops></tool_call>", 0, "<tool_call>bad name<oops></tool_call>", "", ""},
    // Cut off by max_tokens inside a call.
    {"ok <tool_call>f<arg_key>a</arg_key><arg_va", 0, "ok <tool_call>f<arg_key>a</arg_key><arg_va",
     "", ""},
    // Cut off inside reasoning.
    {"still thinking <", 1, "", "still thinking <", ""},
    {"Grüße 你好 </thin", 0, "Grüße 你好 </thin", "", ""},
};

static void s_check(const s_case_t *c, const s_out_t *o, const char *how) {
    if (strcmp(o->content, c->content) || strcmp(o->reasoning, c->reasoning) ||
        strcmp(o->tools, c->tools)) {
        print_error("case '%s' (%s): content '%s' reasoning '%s' tools '%s'\n", c->text, how,
                    o->content, o->reasoning, o->tools);
        fail();
    }
}

static void test_cases_every_split(void **state) {
    (void)state;
    for (size_t k = 0; k < sizeof s_cases / sizeof *s_cases; k++) {
        const s_case_t *c = &s_cases[k];
        s_out_t o;
        s_run(c->text, c->thinking, NULL, 0, &o);
        s_check(c, &o, "whole");
        size_t len = strlen(c->text);
        for (size_t cut = 1; cut < len; cut++) {
            s_run(c->text, c->thinking, &cut, 1, &o);
            s_check(c, &o, "one split");
        }
        size_t *cuts = malloc(len * sizeof *cuts);
        for (size_t i = 1; i < len; i++)
            cuts[i - 1] = i;
        s_run(c->text, c->thinking, cuts, len ? len - 1 : 0, &o);
        s_check(c, &o, "byte by byte");
        free(cuts);
    }
}

static void test_tool_body(void **state) {
    (void)state;
    char *name, *args;
    const char *b = " search <arg_key>q</arg_key> <arg_value>1e999</arg_value>";
    assert_int_equal(mesh_out_glm_tool_body(b, strlen(b), &name, &args), 0);
    assert_string_equal(name, "search");
    // A number JSON cannot hold as a double: cJSON parses it as inf, which
    // must not become invalid JSON text.
    cJSON *j = cJSON_Parse(args);
    assert_non_null(j);
    cJSON_Delete(j);
    free(name);
    free(args);
    const char *bad[] = {"", "   ", "name<arg_key>k</arg_key>", "n<arg_key></arg_key><arg_value>v</arg_value>",
                         "n junk"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int rc = mesh_out_glm_tool_body(bad[i], strlen(bad[i]), &name, &args);
        if (i == 4) { // "n junk": a name with a space and no args is still one name
            assert_int_equal(rc, 0);
            free(name);
            free(args);
            continue;
        }
        assert_int_not_equal(rc, 0);
        assert_null(name);
        assert_null(args);
    }
}

static void test_family_lookup(void **state) {
    (void)state;
    assert_ptr_equal(mesh_out_family_for("deepseek2"), &mesh_out_glm);
    assert_string_equal(mesh_out_glm.family, "glm");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cases_every_split),
        cmocka_unit_test(test_tool_body),
        cmocka_unit_test(test_family_lookup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
