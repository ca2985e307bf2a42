// SPDX-License-Identifier: MIT
// Stop-string matcher tests: matches across piece boundaries (down to 1-byte
// pieces), overlapping prefixes, several stop strings, UTF-8, flush, and a
// randomised comparison of random splits against a whole-text reference.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "mesh_err.h"
#include "stop.h"

typedef struct {
    char out[4096];
    size_t len;
    int stopped;
} s_run_t;

// Feeds `text` in pieces of the given sizes (cycled), flushes if no stop,
// and collects everything released.
static void s_run(const char *const *stops, int n, const char *text, const size_t *sizes,
                  int n_sizes, s_run_t *r) {
    mesh_stop_t *m = NULL;
    assert_int_equal(mesh_stop_new(stops, n, &m), 0);
    memset(r, 0, sizeof *r);
    size_t total = strlen(text), off = 0;
    for (int k = 0; off < total; k++) {
        size_t sz = sizes[k % n_sizes];
        if (sz > total - off)
            sz = total - off;
        const char *t;
        size_t len;
        int rc = mesh_stop_feed(m, text + off, sz, &t, &len);
        assert_true(rc == 0 || rc == 1);
        assert_true(r->len + len < sizeof r->out);
        memcpy(r->out + r->len, t, len);
        r->len += len;
        off += sz;
        if (rc == 1) {
            r->stopped = 1;
            // Further text releases nothing.
            assert_int_equal(mesh_stop_feed(m, "zz", 2, &t, &len), 1);
            assert_int_equal(len, 0);
            break;
        }
    }
    if (!r->stopped) {
        const char *t;
        size_t len;
        assert_int_equal(mesh_stop_flush(m, NULL, 0, &t, &len), 0);
        memcpy(r->out + r->len, t, len);
        r->len += len;
        assert_int_equal(mesh_stop_matched(m), -1);
    }
    r->out[r->len] = 0;
    mesh_stop_destroy(&m);
    assert_null(m);
}

static const size_t ONE[] = {1};
static const size_t WHOLE[] = {100000};

static void test_no_stops_passes_through(void **state) {
    (void)state;
    s_run_t r;
    s_run(NULL, 0, "hello world", ONE, 1, &r);
    assert_string_equal(r.out, "hello world");
    assert_false(r.stopped);
    // With no stop strings nothing is held back: each piece comes out at once.
    mesh_stop_t *m = NULL;
    assert_int_equal(mesh_stop_new(NULL, 0, &m), 0);
    const char *t;
    size_t len;
    assert_int_equal(mesh_stop_feed(m, "ab", 2, &t, &len), 0);
    assert_int_equal(len, 2);
    mesh_stop_destroy(&m);
}

static void test_split_over_single_bytes(void **state) {
    (void)state;
    const char *stops[] = {"</end>"};
    s_run_t r;
    s_run(stops, 1, "answer: 42</end> trailing", ONE, 1, &r);
    assert_string_equal(r.out, "answer: 42");
    assert_true(r.stopped);
    s_run(stops, 1, "answer: 42</end> trailing", WHOLE, 1, &r);
    assert_string_equal(r.out, "answer: 42");
    const size_t odd[] = {3, 1, 2};
    s_run(stops, 1, "a</en</end>", odd, 3, &r);
    assert_string_equal(r.out, "a</en");
    assert_true(r.stopped);
}

static void test_holds_back_then_releases(void **state) {
    (void)state;
    const char *stops[] = {"abc"};
    mesh_stop_t *m = NULL;
    assert_int_equal(mesh_stop_new(stops, 1, &m), 0);
    const char *t;
    size_t len;
    assert_int_equal(mesh_stop_feed(m, "xa", 2, &t, &len), 0);
    assert_int_equal(len, 1);
    assert_memory_equal(t, "x", 1);
    assert_int_equal(mesh_stop_feed(m, "b", 1, &t, &len), 0);
    assert_int_equal(len, 0); // "ab" could still become "abc"
    assert_int_equal(mesh_stop_feed(m, "x", 1, &t, &len), 0);
    assert_int_equal(len, 3);
    assert_memory_equal(t, "abx", 3);
    assert_int_equal(mesh_stop_feed(m, "ab", 2, &t, &len), 0);
    assert_int_equal(len, 0);
    assert_int_equal(mesh_stop_flush(m, NULL, 0, &t, &len), 0); // end of generation: held text comes out
    assert_int_equal(len, 2);
    assert_memory_equal(t, "ab", 2);
    // A last piece given to flush is checked and released after the held text.
    assert_int_equal(mesh_stop_feed(m, "xab", 3, &t, &len), 0);
    assert_int_equal(mesh_stop_flush(m, "d", 1, &t, &len), 0);
    assert_int_equal(len, 3);
    assert_memory_equal(t, "abd", 3);
    assert_int_equal(mesh_stop_feed(m, "xab", 3, &t, &len), 0);
    assert_int_equal(mesh_stop_flush(m, "cd", 2, &t, &len), 1);
    assert_int_equal(len, 0);
    mesh_stop_destroy(&m);
}

static void test_overlapping_prefixes(void **state) {
    (void)state;
    s_run_t r;
    const char *s1[] = {"abc", "ab"};
    s_run(s1, 2, "zabcd", ONE, 1, &r);
    assert_string_equal(r.out, "z"); // "ab" completes first
    assert_true(r.stopped);
    const char *s2[] = {"abc"};
    s_run(s2, 1, "zababc!", ONE, 1, &r);
    assert_string_equal(r.out, "zab");
    const char *s3[] = {"aab"};
    s_run(s3, 1, "aaab", ONE, 1, &r);
    assert_string_equal(r.out, "a");
    // Earliest completion wins however the text is split.
    const char *s4[] = {"abcde", "bcd"};
    s_run(s4, 2, "xabcdef", WHOLE, 1, &r);
    assert_string_equal(r.out, "xa");
    s_run(s4, 2, "xabcdef", ONE, 1, &r);
    assert_string_equal(r.out, "xa");
    mesh_stop_t *m = NULL;
    assert_int_equal(mesh_stop_new(s4, 2, &m), 0);
    const char *t;
    size_t len;
    assert_int_equal(mesh_stop_feed(m, "abcd", 4, &t, &len), 1);
    assert_int_equal(mesh_stop_matched(m), 1);
    mesh_stop_reset(m);
    assert_int_equal(mesh_stop_matched(m), -1);
    assert_int_equal(mesh_stop_feed(m, "ok", 2, &t, &len), 0);
    assert_int_equal(len, 2);
    mesh_stop_destroy(&m);
}

static void test_utf8(void **state) {
    (void)state;
    s_run_t r;
    const char *stops[] = {"\xc3\xa9!"}; // "é!"
    s_run(stops, 1, "caf\xc3\xa9\xc3\xa9!x", ONE, 1, &r);
    assert_string_equal(r.out, "caf\xc3\xa9");
    // A stop string that starts inside a character must not split the
    // character between released and held text.
    const char *odd[] = {"\xa9z"};
    mesh_stop_t *m = NULL;
    assert_int_equal(mesh_stop_new(odd, 1, &m), 0);
    const char *t;
    size_t len;
    assert_int_equal(mesh_stop_feed(m, "\xc3\xa9", 2, &t, &len), 0);
    assert_int_equal(len, 0);
    assert_int_equal(mesh_stop_feed(m, "y", 1, &t, &len), 0);
    assert_int_equal(len, 3);
    assert_memory_equal(t, "\xc3\xa9y", 3);
    mesh_stop_destroy(&m);
    // Multi-byte pieces (whole characters) with a CJK stop string.
    const char *cjk[] = {"\xe5\x81\x9c\xe6\xad\xa2"}; // "停止"
    const size_t three[] = {3};
    s_run(cjk, 1, "\xe4\xbd\xa0\xe5\xa5\xbd\xe5\x81\x9c\xe6\xad\xa2\xe5\x90\x97", three, 1,
          &r);
    assert_string_equal(r.out, "\xe4\xbd\xa0\xe5\xa5\xbd");
}

static void test_long_stop_string(void **state) {
    (void)state;
    // Over 256 bytes: the rotation takes its other path.
    static char stop[400], text[1200];
    memset(stop, 'q', 399);
    stop[398] = 'r';
    stop[399] = 0;
    memset(text, 'q', 700);
    memcpy(text + 700, stop, 399);
    strcpy(text + 1099, "tail");
    const char *stops[] = {stop};
    s_run_t r;
    const size_t sizes[] = {7, 300, 1};
    s_run(stops, 1, text, sizes, 3, &r);
    assert_true(r.stopped);
    assert_int_equal(r.len, 700);
    for (size_t i = 0; i < r.len; i++)
        assert_int_equal(r.out[i], 'q');
}

static void test_bad_args(void **state) {
    (void)state;
    mesh_stop_t *m = NULL;
    const char *empty[] = {""};
    assert_int_equal(mesh_stop_new(empty, 1, &m), MESH_EINVAL);
    const char *null[] = {NULL};
    assert_int_equal(mesh_stop_new(null, 1, &m), MESH_EINVAL);
    assert_null(m);
    mesh_stop_destroy(NULL);
    mesh_stop_destroy(&m);
}

// Reference on the whole text: earliest end, then earliest start.
static size_t s_reference(const char *const *stops, int n, const char *text, int *stopped) {
    size_t tl = strlen(text), best_end = (size_t)-1, best_pos = tl;
    for (int i = 0; i < n; i++) {
        const char *h = strstr(text, stops[i]);
        if (!h)
            continue;
        size_t pos = (size_t)(h - text), end = pos + strlen(stops[i]);
        if (end < best_end || (end == best_end && pos < best_pos)) {
            best_end = end;
            best_pos = pos;
        }
    }
    *stopped = best_end != (size_t)-1;
    return best_pos;
}

static void test_random_splits(void **state) {
    (void)state;
    const char *stops[] = {"abc", "bca", "cc", "abab"};
    uint64_t x = 12345;
    for (int trial = 0; trial < 3000; trial++) {
        char text[64];
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        int len = 1 + (int)((x >> 33) % 40);
        for (int i = 0; i < len; i++) {
            x = x * 6364136223846793005ULL + 1442695040888963407ULL;
            text[i] = "abcd"[(x >> 33) % 4];
        }
        text[len] = 0;
        size_t sizes[5];
        for (int i = 0; i < 5; i++) {
            x = x * 6364136223846793005ULL + 1442695040888963407ULL;
            sizes[i] = 1 + (x >> 33) % 5;
        }
        int n = 1 + trial % 4, want_stop;
        size_t want = s_reference(stops, n, text, &want_stop);
        s_run_t r;
        s_run(stops, n, text, sizes, 5, &r);
        assert_int_equal(r.stopped, want_stop);
        assert_int_equal(r.len, want);
        assert_memory_equal(r.out, text, want);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_stops_passes_through),
        cmocka_unit_test(test_split_over_single_bytes),
        cmocka_unit_test(test_holds_back_then_releases),
        cmocka_unit_test(test_overlapping_prefixes),
        cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_long_stop_string),
        cmocka_unit_test(test_bad_args),
        cmocka_unit_test(test_random_splits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
