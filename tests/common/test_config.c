// SPDX-License-Identifier: MIT
// Config reader: the format (sections, quoting, comments, repeated keys),
// every typed getter with good and bad values, every parse error with the
// line number it must name, file loading, and unknown-key reporting.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "mesh_config.h"
#include "mesh_err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static mesh_config_t *s_parse_ok(const char *text) {
    mesh_config_t *cfg = NULL;
    char err[256] = "";
    int rc = mesh_config_parse(text, strlen(text), "t.conf", &cfg, err, sizeof err);
    if (rc != 0)
        fail_msg("parse failed: %s (%s)", err, mesh_strerror(rc));
    assert_non_null(cfg);
    return cfg;
}

static const char s_sample[] =
    "# node settings\n"
    "listen = tcp://0.0.0.0:5555   # trailing comment\n"
    "name=gpu-box-1\n"
    "url = http://host/a#fragment\n"
    "empty =\n"
    "\n"
    "[engine]\n"
    "threads = 8\n"
    "model = /models/a.gguf\n"
    "  model   =   \"/models/with # hash and spaces.gguf\"  # comment\n"
    "model = \"esc \\\"q\\\" \\\\ \\t\\n\"\n"
    "[ net.tls ]\n"
    "enabled = yes\r\n"
    "[]\n"
    "top = again\n";

static void test_basic_format(void **state) {
    (void)state;
    mesh_config_t *cfg = s_parse_ok(s_sample);
    const char *s = NULL;
    assert_string_equal(mesh_config_name(cfg), "t.conf");
    assert_int_equal(mesh_config_get_str(cfg, "listen", &s), 0);
    assert_string_equal(s, "tcp://0.0.0.0:5555");
    assert_int_equal(mesh_config_get_str(cfg, "name", &s), 0);
    assert_string_equal(s, "gpu-box-1");
    // '#' not after a blank belongs to the value.
    assert_int_equal(mesh_config_get_str(cfg, "url", &s), 0);
    assert_string_equal(s, "http://host/a#fragment");
    assert_int_equal(mesh_config_get_str(cfg, "empty", &s), 0);
    assert_string_equal(s, "");
    int64_t v = 0;
    assert_int_equal(mesh_config_get_int(cfg, "engine.threads", 1, 1024, &v), 0);
    assert_int_equal(v, 8);
    assert_int_equal(mesh_config_get_str(cfg, "threads", &s), MESH_ENOENT);
    bool b = false;
    assert_int_equal(mesh_config_get_bool(cfg, "net.tls.enabled", &b), 0);
    assert_true(b);
    assert_int_equal(mesh_config_get_str(cfg, "top", &s), 0);
    assert_string_equal(s, "again");
    assert_int_equal(mesh_config_size(cfg), 10);
    const char *k, *val;
    int line;
    assert_int_equal(mesh_config_entry(cfg, 1, &k, &val, &line), 0);
    assert_string_equal(k, "name");
    assert_int_equal(line, 3);
    assert_int_equal(mesh_config_entry(cfg, 10, &k, &val, &line), MESH_ERANGE);
    mesh_config_destroy(&cfg);
    assert_null(cfg);
    mesh_config_destroy(&cfg); // no-op on NULL
}

static void test_repeated_keys(void **state) {
    (void)state;
    mesh_config_t *cfg = s_parse_ok(s_sample);
    assert_int_equal(mesh_config_count(cfg, "engine.model"), 3);
    size_t it = 0;
    const char *m;
    const char *want[] = {"/models/a.gguf", "/models/with # hash and spaces.gguf",
                          "esc \"q\" \\ \t\n"};
    int n = 0;
    while ((m = mesh_config_next(cfg, "engine.model", &it)) != NULL) {
        assert_true(n < 3);
        assert_string_equal(m, want[n]);
        n++;
    }
    assert_int_equal(n, 3);
    assert_null(mesh_config_next(cfg, "engine.model", &it)); // stays at the end
    // The scalar getter gives the last occurrence.
    const char *s;
    assert_int_equal(mesh_config_get_str(cfg, "engine.model", &s), 0);
    assert_string_equal(s, want[2]);
    it = 0;
    assert_null(mesh_config_next(cfg, "nope", &it));
    mesh_config_destroy(&cfg);
}

static void test_empty_and_comments_only(void **state) {
    (void)state;
    mesh_config_t *cfg = s_parse_ok("");
    assert_int_equal(mesh_config_size(cfg), 0);
    mesh_config_destroy(&cfg);
    cfg = s_parse_ok("# only\n   # comments\n\n\t\n");
    assert_int_equal(mesh_config_size(cfg), 0);
    mesh_config_destroy(&cfg);
    cfg = s_parse_ok("k = v"); // no final newline
    const char *s;
    assert_int_equal(mesh_config_get_str(cfg, "k", &s), 0);
    assert_string_equal(s, "v");
    mesh_config_destroy(&cfg);
}

typedef struct {
    const char *text;
    int code;
    const char *msg; // substring the error must contain (incl. the line)
} s_bad_case_t;

static void test_parse_errors(void **state) {
    (void)state;
    static const s_bad_case_t cases[] = {
        {"a = 1\n[sect\n", MESH_EFORMAT, "t.conf:2: section header lacks ']'"},
        {"\n\n[s] x\n", MESH_EFORMAT, "t.conf:3: unexpected text after the section header"},
        {"[s p]\n", MESH_EFORMAT, "t.conf:1: bad character in section name"},
        {"a = 1\nb = 2\njust words\n", MESH_EFORMAT, "t.conf:3: expected 'key = value'"},
        {"= 5\n", MESH_EFORMAT, "t.conf:1: missing key before '='"},
        {"x = 1\nmy key = 5\n", MESH_EFORMAT, "t.conf:2: bad character in key"},
        {"k = \"abc\n", MESH_EFORMAT, "t.conf:1: unterminated quoted value"},
        {"k = \"abc\\", MESH_EFORMAT, "t.conf:1: unterminated quoted value"},
        {"\n\n\n\nk = \"a\\qb\"\n", MESH_EFORMAT, "t.conf:5: unknown escape '\\q'"},
        {"k = \"a\" b\n", MESH_EFORMAT, "t.conf:1: unexpected text after the closing quote"},
        {"k.é = 1\n", MESH_EFORMAT, "t.conf:1: bad character in key"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        mesh_config_t *cfg = (mesh_config_t *)0x1;
        char err[256] = "";
        int rc = mesh_config_parse(cases[i].text, strlen(cases[i].text), "t.conf", &cfg, err,
                                   sizeof err);
        if (rc != cases[i].code || !strstr(err, cases[i].msg))
            fail_msg("case %zu: rc %d err '%s', want %d '%s'", i, rc, err, cases[i].code,
                     cases[i].msg);
        assert_null(cfg);
    }
    // Section name too long.
    char longsec[300];
    memset(longsec, 'a', sizeof longsec);
    longsec[0] = '[';
    memcpy(longsec + 290, "]\n", 3);
    mesh_config_t *cfg = NULL;
    char err[256];
    assert_int_equal(mesh_config_parse(longsec, strlen(longsec), "t.conf", &cfg, err, sizeof err),
                     MESH_EFORMAT);
    assert_non_null(strstr(err, "t.conf:1: section name too long"));
    // A NUL byte inside the text (binary file).
    const char nul[] = "a = 1\nb = \0x\n";
    assert_int_equal(mesh_config_parse(nul, sizeof nul - 1, "t.conf", &cfg, err, sizeof err),
                     MESH_EFORMAT);
    assert_non_null(strstr(err, "t.conf:2: NUL byte"));
    // Too large.
    size_t big = MESH_CONFIG_MAX_BYTES + 1;
    char *text = malloc(big);
    assert_non_null(text);
    memset(text, '#', big);
    assert_int_equal(mesh_config_parse(text, big, "t.conf", &cfg, err, sizeof err), MESH_ERANGE);
    free(text);
    assert_null(cfg);
    // NULL err buffer is allowed.
    assert_int_equal(mesh_config_parse("oops\n", 5, "t.conf", &cfg, NULL, 0), MESH_EFORMAT);
    assert_int_equal(mesh_config_parse(NULL, 0, "t.conf", NULL, NULL, 0), MESH_EINVAL);
}

static void test_int(void **state) {
    (void)state;
    mesh_config_t *cfg = s_parse_ok("a = 42\nb = -7\nc = 0x10\nd = 012\ne = 12abc\nf = \n"
                                    "g = 99999999999999999999999\nh = 5000\ni = \" 5\"\n");
    int64_t v = 1234;
    assert_int_equal(mesh_config_get_int(cfg, "a", 0, 100, &v), 0);
    assert_int_equal(v, 42);
    assert_int_equal(mesh_config_get_int(cfg, "b", -10, 10, &v), 0);
    assert_int_equal(v, -7);
    assert_int_equal(mesh_config_get_int(cfg, "c", 0, 100, &v), 0);
    assert_int_equal(v, 16);
    assert_int_equal(mesh_config_get_int(cfg, "d", 0, 100, &v), 0);
    assert_int_equal(v, 12); // decimal, not octal
    v = 1234;
    assert_int_equal(mesh_config_get_int(cfg, "e", 0, 100, &v), MESH_EFORMAT);
    assert_int_equal(v, 1234);
    assert_non_null(strstr(mesh_config_error(cfg), "t.conf:5: e: '12abc' is not an integer"));
    assert_int_equal(mesh_config_get_int(cfg, "f", 0, 100, &v), MESH_EFORMAT);
    assert_non_null(strstr(mesh_config_error(cfg), "t.conf:6:"));
    assert_int_equal(mesh_config_get_int(cfg, "g", INT64_MIN, INT64_MAX, &v), MESH_ERANGE);
    assert_int_equal(mesh_config_get_int(cfg, "h", 0, 4096, &v), MESH_ERANGE);
    assert_non_null(strstr(mesh_config_error(cfg), "t.conf:8: h: '5000' is out of range [0, 4096]"));
    assert_int_equal(mesh_config_get_int(cfg, "i", 0, 100, &v), MESH_EFORMAT);
    assert_int_equal(v, 1234);
    assert_int_equal(mesh_config_get_int(cfg, "missing", 0, 100, &v), MESH_ENOENT);
    assert_string_equal(mesh_config_error(cfg), ""); // ENOENT is not an error message
    mesh_config_destroy(&cfg);
}

static void test_bool(void **state) {
    (void)state;
    mesh_config_t *cfg = s_parse_ok("a = TRUE\nb = off\nc = 1\nd = No\ne = maybe\n");
    bool b = false;
    assert_int_equal(mesh_config_get_bool(cfg, "a", &b), 0);
    assert_true(b);
    assert_int_equal(mesh_config_get_bool(cfg, "b", &b), 0);
    assert_false(b);
    assert_int_equal(mesh_config_get_bool(cfg, "c", &b), 0);
    assert_true(b);
    assert_int_equal(mesh_config_get_bool(cfg, "d", &b), 0);
    assert_false(b);
    assert_int_equal(mesh_config_get_bool(cfg, "e", &b), MESH_EFORMAT);
    assert_non_null(strstr(mesh_config_error(cfg), "t.conf:5: e: 'maybe' is not a boolean"));
    mesh_config_destroy(&cfg);
}

static void test_size(void **state) {
    (void)state;
    mesh_config_t *cfg = s_parse_ok("a = 65536\nb = 512M\nc = 4GiB\nd = 2 KiB\ne = 3kb\n"
                                    "f = 1T\ng = 12X\nh = M\ni = 99999999999T\nj = 2G\nk = 7B\n"
                                    "l = 1.5G\n");
    uint64_t v = 0;
    assert_int_equal(mesh_config_get_size(cfg, "a", UINT64_MAX, &v), 0);
    assert_int_equal(v, 65536);
    assert_int_equal(mesh_config_get_size(cfg, "b", UINT64_MAX, &v), 0);
    assert_int_equal(v, 512ull << 20);
    assert_int_equal(mesh_config_get_size(cfg, "c", UINT64_MAX, &v), 0);
    assert_int_equal(v, 4ull << 30);
    assert_int_equal(mesh_config_get_size(cfg, "d", UINT64_MAX, &v), 0);
    assert_int_equal(v, 2048);
    assert_int_equal(mesh_config_get_size(cfg, "e", UINT64_MAX, &v), 0);
    assert_int_equal(v, 3072);
    assert_int_equal(mesh_config_get_size(cfg, "f", UINT64_MAX, &v), 0);
    assert_int_equal(v, 1ull << 40);
    assert_int_equal(mesh_config_get_size(cfg, "k", UINT64_MAX, &v), 0);
    assert_int_equal(v, 7);
    v = 5;
    assert_int_equal(mesh_config_get_size(cfg, "g", UINT64_MAX, &v), MESH_EFORMAT);
    assert_non_null(strstr(mesh_config_error(cfg), "t.conf:7: g: '12X' has an unknown size unit"));
    assert_int_equal(mesh_config_get_size(cfg, "h", UINT64_MAX, &v), MESH_EFORMAT);
    assert_non_null(strstr(mesh_config_error(cfg), "t.conf:8:"));
    assert_int_equal(mesh_config_get_size(cfg, "i", UINT64_MAX, &v), MESH_ERANGE);
    assert_int_equal(mesh_config_get_size(cfg, "j", 1ull << 30, &v), MESH_ERANGE);
    assert_non_null(strstr(mesh_config_error(cfg), "t.conf:10: j: '2G' is larger than"));
    assert_int_equal(mesh_config_get_size(cfg, "l", UINT64_MAX, &v), MESH_EFORMAT);
    assert_int_equal(v, 5);
    mesh_config_destroy(&cfg);
}

static void test_duration(void **state) {
    (void)state;
    mesh_config_t *cfg = s_parse_ok("a = 250ms\nb = 1.5s\nc = 2m\nd = 1h\ne = 30\nf = 3 days\n"
                                    "g = 0.0001s\nh = 10s\ni = s\nj = 1.2345s\nk = 0s\n");
    int64_t v = 0;
    assert_int_equal(mesh_config_get_duration_ms(cfg, "a", INT64_MAX, &v), 0);
    assert_int_equal(v, 250);
    assert_int_equal(mesh_config_get_duration_ms(cfg, "b", INT64_MAX, &v), 0);
    assert_int_equal(v, 1500);
    assert_int_equal(mesh_config_get_duration_ms(cfg, "c", INT64_MAX, &v), 0);
    assert_int_equal(v, 120000);
    assert_int_equal(mesh_config_get_duration_ms(cfg, "d", INT64_MAX, &v), 0);
    assert_int_equal(v, 3600000);
    assert_int_equal(mesh_config_get_duration_ms(cfg, "k", INT64_MAX, &v), 0);
    assert_int_equal(v, 0);
    v = 77;
    assert_int_equal(mesh_config_get_duration_ms(cfg, "e", INT64_MAX, &v), MESH_EFORMAT);
    assert_non_null(strstr(mesh_config_error(cfg), "t.conf:5: e: '30' needs a unit"));
    assert_int_equal(mesh_config_get_duration_ms(cfg, "f", INT64_MAX, &v), MESH_EFORMAT);
    assert_non_null(strstr(mesh_config_error(cfg), "unknown duration unit"));
    assert_int_equal(mesh_config_get_duration_ms(cfg, "g", INT64_MAX, &v), MESH_EFORMAT);
    assert_int_equal(mesh_config_get_duration_ms(cfg, "h", 5000, &v), MESH_ERANGE);
    assert_non_null(strstr(mesh_config_error(cfg), "t.conf:8: h: '10s' is longer than 5000 ms"));
    assert_int_equal(mesh_config_get_duration_ms(cfg, "i", INT64_MAX, &v), MESH_EFORMAT);
    assert_int_equal(mesh_config_get_duration_ms(cfg, "j", INT64_MAX, &v), MESH_EFORMAT);
    assert_int_equal(v, 77);
    mesh_config_destroy(&cfg);
}

static void s_collect(const char *file, int line, const char *key, void *user) {
    char *buf = user;
    char one[128];
    snprintf(one, sizeof one, "%s:%d:%s;", file, line, key);
    strcat(buf, one);
}

static void test_unknown_keys(void **state) {
    (void)state;
    mesh_config_t *cfg = s_parse_ok("listen = x\nlsiten = y\n[engine]\nthreads = 2\n"
                                    "thread = 3\n[extra]\nanything = 1\n");
    char got[1024] = "";
    const char *known[] = {"listen", "engine.threads", "extra.*", NULL};
    assert_int_equal(mesh_config_unknown(cfg, known, s_collect, got), 2);
    assert_string_equal(got, "t.conf:2:lsiten;t.conf:5:engine.thread;");
    // known == NULL: keys no getter has read.
    const char *s;
    int64_t v;
    assert_int_equal(mesh_config_get_str(cfg, "listen", &s), 0);
    assert_int_equal(mesh_config_get_int(cfg, "engine.threads", 1, 8, &v), 0);
    size_t it = 0;
    assert_non_null(mesh_config_next(cfg, "extra.anything", &it));
    got[0] = '\0';
    assert_int_equal(mesh_config_unknown(cfg, NULL, s_collect, got), 2);
    assert_string_equal(got, "t.conf:2:lsiten;t.conf:5:engine.thread;");
    assert_int_equal(mesh_config_unknown(cfg, NULL, NULL, NULL), 2);
    mesh_config_destroy(&cfg);
}

static void test_load_file(void **state) {
    (void)state;
    char dir[] = "/tmp/mesh_test_config_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/node.conf", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("[engine]\nthreads = 3\n\nbroken line\n", f);
    fclose(f);
    mesh_config_t *cfg = NULL;
    char err[512] = "";
    assert_int_equal(mesh_config_load(path, &cfg, err, sizeof err), MESH_EFORMAT);
    assert_null(cfg);
    char want[300];
    snprintf(want, sizeof want, "%s:4: expected 'key = value'", path);
    assert_string_equal(err, want);
    f = fopen(path, "w");
    assert_non_null(f);
    fputs("[engine]\nthreads = 3\n", f);
    fclose(f);
    assert_int_equal(mesh_config_load(path, &cfg, err, sizeof err), 0);
    int64_t v = 0;
    assert_int_equal(mesh_config_get_int(cfg, "engine.threads", 1, 8, &v), 0);
    assert_int_equal(v, 3);
    assert_string_equal(mesh_config_name(cfg), path);
    mesh_config_destroy(&cfg);
    // A missing file and a directory.
    char missing[300];
    snprintf(missing, sizeof missing, "%s/nope.conf", dir);
    assert_int_equal(mesh_config_load(missing, &cfg, err, sizeof err), MESH_ENOENT);
    assert_non_null(strstr(err, "nope.conf: cannot open"));
    assert_int_equal(mesh_config_load(dir, &cfg, err, sizeof err), MESH_EINVAL);
    assert_non_null(strstr(err, "not a regular file"));
    unlink(path);
    rmdir(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basic_format),
        cmocka_unit_test(test_repeated_keys),
        cmocka_unit_test(test_empty_and_comments_only),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_int),
        cmocka_unit_test(test_bool),
        cmocka_unit_test(test_size),
        cmocka_unit_test(test_duration),
        cmocka_unit_test(test_unknown_keys),
        cmocka_unit_test(test_load_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
