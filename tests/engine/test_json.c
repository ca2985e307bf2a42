// SPDX-License-Identifier: MIT
// Unit tests for the engine's JSON: strict parsing (with byte offsets in
// errors), exact integers, string escapes and UTF-8 checks, limits, duplicate
// keys, builders, and a writer that matches Python's json.dumps byte for byte
// (expected strings below are what CPython 3.11 prints). Ends with random and
// mutated inputs that must never crash, and whose successful parses must
// survive a write/re-parse round trip.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "json.h"
#include "mesh_err.h"

static mesh_json_t *s_parse_ok(const char *s) {
    mesh_json_t *v = NULL;
    char err[256] = "";
    int rc = mesh_json_parse(s, strlen(s), &v, err, sizeof err);
    if (rc)
        fprintf(stderr, "parse of [%s] failed: %s\n", s, err);
    assert_int_equal(rc, 0);
    assert_non_null(v);
    return v;
}

static void s_parse_err(const char *s, int want_rc, const char *needle) {
    mesh_json_t *v = (mesh_json_t *)1;
    char err[256] = "";
    int rc = mesh_json_parse(s, strlen(s), &v, err, sizeof err);
    if (rc != want_rc || !strstr(err, needle))
        fprintf(stderr, "parse of [%s]: rc %d (want %d), err '%s' (want '%s')\n", s, rc, want_rc, err,
                needle);
    assert_int_equal(rc, want_rc);
    assert_null(v);
    assert_non_null(strstr(err, needle));
}

static void test_scalars(void **state) {
    (void)state;
    mesh_json_t *v = s_parse_ok(" [null, true, false, 0, -0, 42, -17, 9223372036854775807, "
                                "-9223372036854775808, 1.5, -2.5e3, 1E2, 0.0] ");
    assert_int_equal(mesh_json_type(v), MESH_JSON_ARRAY);
    assert_int_equal(mesh_json_len(v), 13);
    assert_int_equal(mesh_json_type(mesh_json_at(v, 0)), MESH_JSON_NULL);
    assert_true(mesh_json_bool(mesh_json_at(v, 1)));
    assert_false(mesh_json_bool(mesh_json_at(v, 2)));
    assert_int_equal(mesh_json_type(mesh_json_at(v, 3)), MESH_JSON_INT);
    assert_int_equal(mesh_json_int(mesh_json_at(v, 5)), 42);
    assert_int_equal(mesh_json_int(mesh_json_at(v, 6)), -17);
    assert_true(mesh_json_int(mesh_json_at(v, 7)) == INT64_MAX);
    assert_true(mesh_json_int(mesh_json_at(v, 8)) == INT64_MIN);
    assert_int_equal(mesh_json_type(mesh_json_at(v, 9)), MESH_JSON_DOUBLE);
    assert_true(mesh_json_number(mesh_json_at(v, 9)) == 1.5);
    assert_true(mesh_json_number(mesh_json_at(v, 10)) == -2500.0);
    assert_int_equal(mesh_json_type(mesh_json_at(v, 11)), MESH_JSON_DOUBLE);
    assert_true(mesh_json_number(mesh_json_at(v, 11)) == 100.0);
    assert_null(mesh_json_at(v, 13));
    assert_null(mesh_json_str(mesh_json_at(v, 0), NULL));
    mesh_json_destroy(&v);
    assert_null(v);
    mesh_json_destroy(&v); // NULL-safe
    // Accessors on NULL are harmless.
    assert_int_equal(mesh_json_type(NULL), MESH_JSON_NULL);
    assert_int_equal(mesh_json_len(NULL), 0);
    assert_null(mesh_json_get(NULL, "x"));
}

static void test_numbers_limits(void **state) {
    (void)state;
    s_parse_err("9223372036854775808", MESH_ERANGE, "does not fit in 64 bits");
    s_parse_err("-9223372036854775809", MESH_ERANGE, "does not fit");
    s_parse_err("123456789012345678901234567890", MESH_ERANGE, "does not fit");
    s_parse_err("1e400", MESH_ERANGE, "out of range");
    s_parse_err("-1e400", MESH_ERANGE, "out of range");
    s_parse_err("01", MESH_EFORMAT, "offset 0: leading zero");
    s_parse_err("-", MESH_EFORMAT, "bad number");
    s_parse_err("1.", MESH_EFORMAT, "offset 2: digit expected after '.'");
    s_parse_err("1e", MESH_EFORMAT, "digit expected in exponent");
    s_parse_err(".5", MESH_EFORMAT, "unexpected character '.'");
    s_parse_err("+1", MESH_EFORMAT, "unexpected character '+'");
    s_parse_err("NaN", MESH_EFORMAT, "unexpected character 'N'");
    s_parse_err("Infinity", MESH_EFORMAT, "unexpected");
    // Tiny values underflow to 0 or subnormals: allowed (Python does the same).
    mesh_json_t *v = s_parse_ok("1e-400");
    assert_true(mesh_json_number(v) == 0.0);
    mesh_json_destroy(&v);
}

static void test_strings(void **state) {
    (void)state;
    mesh_json_t *v = s_parse_ok("\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\\u0041\\u00e9\\u20ac\\ud83d\\ude00\\u0000z\"");
    size_t n;
    const char *s = mesh_json_str(v, &n);
    const char want[] = "a\"b\\c/d\b\f\n\r\tA\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\0z";
    assert_int_equal(n, sizeof want - 1);
    assert_memory_equal(s, want, n);
    mesh_json_destroy(&v);
    v = s_parse_ok("\"h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80\"");
    assert_string_equal(mesh_json_str(v, NULL), "h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80");
    mesh_json_destroy(&v);
    s_parse_err("\"\\ud83d\"", MESH_EFORMAT, "lone high surrogate");
    s_parse_err("\"\\ud83dx\"", MESH_EFORMAT, "lone high surrogate");
    s_parse_err("\"\\ud83d\\u0041\"", MESH_EFORMAT, "not followed by a low one");
    s_parse_err("\"\\ude00\"", MESH_EFORMAT, "lone low surrogate");
    s_parse_err("\"\\u12g4\"", MESH_EFORMAT, "bad hex digit");
    s_parse_err("\"\\u12\"", MESH_EFORMAT, "truncated \\u escape");
    s_parse_err("\"\\u12\"  ", MESH_EFORMAT, "bad hex digit");
    s_parse_err("\"\\x41\"", MESH_EFORMAT, "offset 1: bad escape '\\x'");
    s_parse_err("\"abc", MESH_EFORMAT, "unterminated string");
    s_parse_err("\"a\nb\"", MESH_EFORMAT, "offset 2: control character 0x0a");
    s_parse_err("\"\xff\"", MESH_EFORMAT, "invalid UTF-8");
    s_parse_err("\"\xc0\xaf\"", MESH_EFORMAT, "invalid UTF-8");             // overlong '/'
    s_parse_err("\"\xed\xa0\x80\"", MESH_EFORMAT, "invalid UTF-8");         // encoded surrogate
    s_parse_err("\"\xf4\x90\x80\x80\"", MESH_EFORMAT, "invalid UTF-8");     // > U+10FFFF
    s_parse_err("\"\xe2\x82\"", MESH_EFORMAT, "invalid UTF-8");             // truncated
    assert_true(mesh_json_utf8_valid("h\xc3\xa9", 3));
    assert_false(mesh_json_utf8_valid("h\xc3", 2));
}

static void test_syntax_errors(void **state) {
    (void)state;
    s_parse_err("", MESH_EFORMAT, "offset 0: value expected, found end of input");
    s_parse_err("   ", MESH_EFORMAT, "offset 3: value expected");
    s_parse_err("[1,]", MESH_EFORMAT, "offset 3: trailing comma");
    s_parse_err("{\"a\":1,}", MESH_EFORMAT, "trailing comma");
    s_parse_err("[1 2]", MESH_EFORMAT, "offset 3: ',' or ']' expected");
    s_parse_err("{\"a\" 1}", MESH_EFORMAT, "offset 5: ':' expected");
    s_parse_err("{a:1}", MESH_EFORMAT, "object key (a string) expected");
    s_parse_err("[1", MESH_EFORMAT, "unterminated array");
    s_parse_err("{\"a\":1", MESH_EFORMAT, "unterminated object");
    s_parse_err("{} {}", MESH_EFORMAT, "offset 3: unexpected data after the value");
    s_parse_err("tru", MESH_EFORMAT, "unknown literal");
    s_parse_err("nul", MESH_EFORMAT, "unknown literal");
    s_parse_err("// c\n1", MESH_EFORMAT, "unexpected character '/'");
    s_parse_err("[1]\x01", MESH_EFORMAT, "unexpected data");
    s_parse_err("\x01", MESH_EFORMAT, "unexpected byte 0x01");
    // Embedded NUL: the length decides, not the terminator.
    mesh_json_t *v = NULL;
    assert_int_equal(mesh_json_parse("1\0", 2, &v, NULL, 0), MESH_EFORMAT);
    assert_null(v);
    assert_int_equal(mesh_json_parse(NULL, 0, &v, NULL, 0), MESH_EFORMAT);
}

static void test_depth_and_size_limits(void **state) {
    (void)state;
    char *buf = malloc(200001);
    // Exactly 128 levels parse; 129 do not.
    for (int d = 128; d <= 129; d++) {
        for (int i = 0; i < d; i++)
            buf[i] = '[';
        for (int i = 0; i < d; i++)
            buf[d + i] = ']';
        buf[2 * d] = 0;
        mesh_json_t *v = NULL;
        char err[128];
        int rc = mesh_json_parse(buf, (size_t)(2 * d), &v, err, sizeof err);
        if (d == 128) {
            assert_int_equal(rc, 0);
            mesh_json_destroy(&v);
        } else {
            assert_int_equal(rc, MESH_ERANGE);
            assert_non_null(strstr(err, "nesting deeper than 128"));
        }
    }
    // 100000 open brackets: an error, not a stack overflow.
    memset(buf, '[', 100000);
    buf[100000] = 0;
    s_parse_err(buf, MESH_ERANGE, "nesting deeper");
    memset(buf, 0, 200001);
    for (int i = 0; i < 100000; i++)
        memcpy(buf + 2 * i, "{\"", 2);
    s_parse_err(buf, MESH_EFORMAT, "");
    free(buf);
    // Custom limits.
    mesh_json_parse_opts_t o = {.max_depth = 2, .max_bytes = 10};
    mesh_json_t *v = NULL;
    char err[128];
    assert_int_equal(mesh_json_parse_opts("[[1]]", 5, &o, &v, err, sizeof err), 0);
    mesh_json_destroy(&v);
    assert_int_equal(mesh_json_parse_opts("[[[1]]]", 7, &o, &v, err, sizeof err), MESH_ERANGE);
    assert_int_equal(mesh_json_parse_opts("[1,2,3,4,5,6]", 13, &o, &v, err, sizeof err), MESH_ERANGE);
    assert_non_null(strstr(err, "exceeds the limit of 10"));
}

static void test_objects_and_duplicates(void **state) {
    (void)state;
    mesh_json_t *v = s_parse_ok("{\"b\": 1, \"a\": {\"x\": [true]}, \"b\": 3, \"c\": null, \"b\": 5}");
    assert_int_equal(mesh_json_len(v), 3); // Python: {'b': 5, 'a': {...}, 'c': None}
    size_t kn;
    assert_string_equal(mesh_json_key_at(v, 0, &kn), "b");
    assert_int_equal(kn, 1);
    assert_int_equal(mesh_json_int(mesh_json_at(v, 0)), 5);
    assert_string_equal(mesh_json_key_at(v, 1, NULL), "a");
    assert_string_equal(mesh_json_key_at(v, 2, NULL), "c");
    assert_true(mesh_json_bool(mesh_json_at(mesh_json_get(mesh_json_get(v, "a"), "x"), 0)));
    assert_null(mesh_json_get(v, "zz"));
    assert_null(mesh_json_key_at(v, 3, NULL));
    mesh_json_destroy(&v);
    // Many keys with duplicates (the sorted path).
    char buf[4096];
    size_t n = 0;
    n += (size_t)snprintf(buf + n, sizeof buf - n, "{");
    for (int i = 0; i < 40; i++)
        n += (size_t)snprintf(buf + n, sizeof buf - n, "%s\"k%d\": %d", i ? ", " : "", i % 20, i);
    snprintf(buf + n, sizeof buf - n, "}");
    v = s_parse_ok(buf);
    assert_int_equal(mesh_json_len(v), 20);
    for (int i = 0; i < 20; i++) {
        char k[8];
        snprintf(k, sizeof k, "k%d", i);
        assert_string_equal(mesh_json_key_at(v, (size_t)i, NULL), k);
        assert_int_equal(mesh_json_int(mesh_json_at(v, (size_t)i)), i + 20);
    }
    mesh_json_destroy(&v);
    // Keys with embedded NUL are distinct from their prefixes.
    v = s_parse_ok("{\"a\\u0000b\": 1, \"a\": 2}");
    assert_int_equal(mesh_json_len(v), 2);
    assert_int_equal(mesh_json_int(mesh_json_get_n(v, "a\0b", 3)), 1);
    assert_int_equal(mesh_json_int(mesh_json_get(v, "a")), 2);
    mesh_json_destroy(&v);
}

static char *s_write(const mesh_json_t *v, bool ascii, bool py, int indent, bool sort) {
    mesh_json_write_opts_t o = {.ensure_ascii = ascii, .python_separators = py, .indent = indent,
                                .sort_keys = sort};
    size_t n;
    char *s = mesh_json_write(v, &o, &n);
    assert_non_null(s);
    assert_int_equal(n, strlen(s));
    return s;
}

static void test_writer_matches_python(void **state) {
    (void)state;
    mesh_json_t *v = s_parse_ok(
        "{\"a\":[1,2.5,null,true,false],\"s\":\"\\u00e9\\ud83d\\ude00\\u0001\\\"\\\\/\\n\",\"e\":{},"
        "\"l\":[],\"n\":-0.0,\"big\":1e300,\"small\":1.5e-7,\"i\":-9223372036854775808}");
    char *s = s_write(v, true, true, -1, false);
    assert_string_equal(s, "{\"a\": [1, 2.5, null, true, false], \"s\": \"\\u00e9\\ud83d\\ude00\\u0001\\\"\\\\/\\n\", "
                           "\"e\": {}, \"l\": [], \"n\": -0.0, \"big\": 1e+300, \"small\": 1.5e-07, "
                           "\"i\": -9223372036854775808}");
    free(s);
    s = s_write(v, false, false, -1, true);
    assert_string_equal(s, "{\"a\":[1,2.5,null,true,false],\"big\":1e+300,\"e\":{},\"i\":-9223372036854775808,"
                           "\"l\":[],\"n\":-0.0,\"s\":\"\xc3\xa9\xf0\x9f\x98\x80\\u0001\\\"\\\\/\\n\","
                           "\"small\":1.5e-07}");
    free(s);
    s = s_write(v, false, true, 2, false);
    assert_string_equal(s, "{\n  \"a\": [\n    1,\n    2.5,\n    null,\n    true,\n    false\n  ],\n"
                           "  \"s\": \"\xc3\xa9\xf0\x9f\x98\x80\\u0001\\\"\\\\/\\n\",\n  \"e\": {},\n"
                           "  \"l\": [],\n  \"n\": -0.0,\n  \"big\": 1e+300,\n  \"small\": 1.5e-07,\n"
                           "  \"i\": -9223372036854775808\n}");
    free(s);
    mesh_json_destroy(&v);
    // Doubles: Python's repr.
    static const struct {
        double d;
        const char *want;
    } dd[] = {{0.1, "0.1"},
              {1.0 / 3, "0.3333333333333333"},
              {1e16, "1e+16"},
              {1e15, "1000000000000000.0"},
              {123456.789, "123456.789"},
              {5e-324, "5e-324"},
              {1.7976931348623157e308, "1.7976931348623157e+308"},
              {0.0001, "0.0001"},
              {0.00001, "1e-05"},
              {1152921504606846976.0, "1.152921504606847e+18"},
              {-1.25, "-1.25"},
              {3.0, "3.0"}};
    for (size_t i = 0; i < sizeof dd / sizeof dd[0]; i++) {
        char buf[32];
        mesh_json_format_double(dd[i].d, buf);
        assert_string_equal(buf, dd[i].want);
    }
    // Non-finite doubles built by hand are written as Python does.
    mesh_json_t *a = mesh_json_new_array();
    assert_int_equal(mesh_json_append(a, mesh_json_new_double(1.0 / 0.0)), 0);
    assert_int_equal(mesh_json_append(a, mesh_json_new_double(-1.0 / 0.0)), 0);
    s = mesh_json_write(a, NULL, NULL);
    assert_string_equal(s, "[Infinity,-Infinity]");
    free(s);
    mesh_json_destroy(&a);
}

static void test_builders(void **state) {
    (void)state;
    mesh_json_t *o = mesh_json_new_object();
    assert_int_equal(mesh_json_set(o, "name", 4, mesh_json_new_cstr("x")), 0);
    assert_int_equal(mesh_json_set(o, "n", 1, mesh_json_new_int(-3)), 0);
    mesh_json_t *arr = mesh_json_new_array();
    assert_int_equal(mesh_json_append(arr, mesh_json_new_bool(true)), 0);
    assert_int_equal(mesh_json_append(arr, mesh_json_new_null()), 0);
    assert_int_equal(mesh_json_append(arr, mesh_json_new_string("a\0b", 3)), 0);
    assert_int_equal(mesh_json_set(o, "arr", 3, arr), 0);
    assert_int_equal(mesh_json_set(o, "name", 4, mesh_json_new_cstr("y")), 0); // replace in place
    char *s = mesh_json_write(o, NULL, NULL);
    assert_string_equal(s, "{\"name\":\"y\",\"n\":-3,\"arr\":[true,null,\"a\\u0000b\"]}");
    mesh_json_t *back = s_parse_ok(s);
    assert_true(mesh_json_equal(o, back));
    mesh_json_t *c = mesh_json_clone(o);
    assert_true(mesh_json_equal(c, o));
    assert_int_equal(mesh_json_set(c, "n", 1, mesh_json_new_double(-3.0)), 0);
    assert_true(mesh_json_equal(c, o)); // -3 == -3.0
    assert_int_equal(mesh_json_set(c, "n", 1, mesh_json_new_double(-3.5)), 0);
    assert_false(mesh_json_equal(c, o));
    // Ownership on failure: the item is freed (ASan would report a leak otherwise).
    assert_int_equal(mesh_json_append(o, mesh_json_new_int(1)), MESH_EINVAL);
    assert_int_equal(mesh_json_set(arr, "k", 1, mesh_json_new_int(1)), MESH_EINVAL);
    assert_int_equal(mesh_json_append(NULL, NULL), MESH_EINVAL);
    free(s);
    mesh_json_destroy(&back);
    mesh_json_destroy(&c);
    mesh_json_destroy(&o);
    assert_string_equal(mesh_json_type_name(MESH_JSON_OBJECT), "object");
}

static uint64_t s_rng = 0x2545F4914F6CDD1Dull;
static uint64_t s_rand(void) {
    s_rng ^= s_rng << 13;
    s_rng ^= s_rng >> 7;
    s_rng ^= s_rng << 17;
    return s_rng;
}

// A successful parse must survive write -> parse -> equal, in every writer mode.
static void s_roundtrip(const mesh_json_t *v) {
    for (int mode = 0; mode < 4; mode++) {
        mesh_json_write_opts_t o = {.ensure_ascii = mode & 1, .python_separators = mode & 2,
                                    .indent = mode == 3 ? 1 : -1};
        size_t n;
        char *s = mesh_json_write(v, &o, &n);
        assert_non_null(s);
        mesh_json_t *b = NULL;
        mesh_json_parse_opts_t po = {.max_depth = 1000};
        int rc = mesh_json_parse_opts(s, n, &po, &b, NULL, 0);
        if (rc)
            fprintf(stderr, "round trip failed on [%s]\n", s);
        assert_int_equal(rc, 0);
        assert_true(mesh_json_equal(v, b));
        mesh_json_destroy(&b);
        free(s);
    }
}

static void test_random_inputs(void **state) {
    (void)state;
    static const char *frags[] = {"{", "}", "[", "]", ",", ":", "\"", "\"k\"", "\"v\"", "1", "-",
                                  "0", ".5", "e7", "true", "false", "null", " ", "\\", "\\u",
                                  "d83d", "\\ude00", "\xc3\xa9", "\xff", "\n", "123456789", "\\n"};
    const char *base = "{\"messages\": [{\"role\": \"user\", \"content\": \"h\\u00e9llo \\ud83d\\ude00\"}, "
                       "{\"role\": \"assistant\", \"tool_calls\": [{\"function\": {\"name\": \"f\", "
                       "\"arguments\": {\"a\": [1, 2.5e-3, -0, null, true, false]}}}]}], \"n\": 12}";
    char buf[1024];
    int ok = 0;
    for (int iter = 0; iter < 30000; iter++) {
        size_t n = 0;
        if (iter % 2) {
            int parts = 1 + (int)(s_rand() % 30);
            for (int p = 0; p < parts; p++) {
                const char *f = frags[s_rand() % (sizeof frags / sizeof frags[0])];
                size_t fl = strlen(f);
                if (n + fl >= sizeof buf)
                    break;
                memcpy(buf + n, f, fl);
                n += fl;
            }
        } else {
            n = strlen(base);
            memcpy(buf, base, n);
            int edits = 1 + (int)(s_rand() % 3);
            for (int e = 0; e < edits; e++) {
                size_t at = (size_t)(s_rand() % n);
                int op = (int)(s_rand() % 3);
                if (op == 0)
                    buf[at] = (char)(s_rand() & 0xFF);
                else if (op == 1 && n + 1 < sizeof buf) {
                    memmove(buf + at + 1, buf + at, n - at);
                    buf[at] = "{}[],:\"\\0e-."[s_rand() % 12];
                    n++;
                } else if (n > 1) {
                    memmove(buf + at, buf + at + 1, n - at - 1);
                    n--;
                }
            }
        }
        // Parse from an exact-size heap copy so ASan catches any over-read.
        char *exact = malloc(n ? n : 1);
        memcpy(exact, buf, n);
        mesh_json_t *v = NULL;
        char err[128] = "";
        int rc = mesh_json_parse(exact, n, &v, err, sizeof err);
        if (rc == 0) {
            ok++;
            s_roundtrip(v);
            mesh_json_destroy(&v);
        } else {
            assert_null(v);
            assert_true(strncmp(err, "json: offset ", 13) == 0);
        }
        free(exact);
    }
    assert_true(ok > 100);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scalars),
        cmocka_unit_test(test_numbers_limits),
        cmocka_unit_test(test_strings),
        cmocka_unit_test(test_syntax_errors),
        cmocka_unit_test(test_depth_and_size_limits),
        cmocka_unit_test(test_objects_and_duplicates),
        cmocka_unit_test(test_writer_matches_python),
        cmocka_unit_test(test_builders),
        cmocka_unit_test(test_random_inputs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
