// SPDX-License-Identifier: MIT
// Logging: sink replacement, level filter, level names/parsing, long-line
// truncation, and a few threads logging at once through a custom sink (every
// line arrives whole, none lost).
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "mesh_err.h"
#include "mesh_log.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int count;
    mesh_log_level_t last_level;
    char last[4096];
} s_capture_t;

static void s_sink(mesh_log_level_t level, const char *line, void *user) {
    s_capture_t *c = user;
    c->count++;
    c->last_level = level;
    snprintf(c->last, sizeof c->last, "%s", line);
}

static int s_teardown(void **state) {
    (void)state;
    mesh_log_set_sink(NULL, NULL);
    mesh_log_set_level(MESH_LOG_INFO);
    return 0;
}

static void test_sink_receives_formatted_line(void **state) {
    (void)state;
    s_capture_t c = {0};
    mesh_log_set_sink(s_sink, &c);
    mesh_log_set_level(MESH_LOG_DEBUG);
    mesh_log(MESH_LOG_WARN, "test: %d apples and %s", 3, "pears");
    assert_int_equal(c.count, 1);
    assert_int_equal(c.last_level, MESH_LOG_WARN);
    assert_string_equal(c.last, "test: 3 apples and pears");
    MESH_ERROR("x=%d", 7);
    assert_int_equal(c.count, 2);
    assert_int_equal(c.last_level, MESH_LOG_ERROR);
    assert_string_equal(c.last, "x=7");
}

static void test_level_filter(void **state) {
    (void)state;
    s_capture_t c = {0};
    mesh_log_set_sink(s_sink, &c);
    mesh_log_set_level(MESH_LOG_WARN);
    assert_int_equal(mesh_log_get_level(), MESH_LOG_WARN);
    MESH_DEBUG("dropped");
    MESH_INFO("dropped");
    assert_int_equal(c.count, 0);
    MESH_WARN("kept");
    MESH_ERROR("kept too");
    assert_int_equal(c.count, 2);
    mesh_log_set_level(MESH_LOG_DEBUG);
    MESH_DEBUG("now kept");
    assert_int_equal(c.count, 3);
    assert_string_equal(c.last, "now kept");
    // Out-of-range levels never reach the sink.
    mesh_log((mesh_log_level_t)99, "bogus");
    assert_int_equal(c.count, 3);
}

static void test_parse_and_names(void **state) {
    (void)state;
    mesh_log_level_t lv;
    assert_int_equal(mesh_log_parse_level("debug", &lv), 0);
    assert_int_equal(lv, MESH_LOG_DEBUG);
    assert_int_equal(mesh_log_parse_level("error", &lv), 0);
    assert_int_equal(lv, MESH_LOG_ERROR);
    assert_int_equal(mesh_log_parse_level("warning", &lv), 0);
    assert_int_equal(lv, MESH_LOG_WARN);
    assert_int_equal(mesh_log_parse_level("loud", &lv), MESH_EINVAL);
    assert_int_equal(mesh_log_parse_level(NULL, &lv), MESH_EINVAL);
    assert_string_equal(mesh_log_level_name(MESH_LOG_INFO), "info");
    assert_string_equal(mesh_log_level_name((mesh_log_level_t)42), "?");
}

static void test_long_line_is_marked(void **state) {
    (void)state;
    s_capture_t c = {0};
    mesh_log_set_sink(s_sink, &c);
    mesh_log_set_level(MESH_LOG_DEBUG);
    char *big = malloc(10000);
    assert_non_null(big);
    memset(big, 'a', 9999);
    big[9999] = '\0';
    MESH_INFO("%s", big);
    free(big);
    size_t n = strlen(c.last);
    assert_true(n > 1000 && n < 9999);
    assert_string_equal(c.last + n - 3, "...");
}

static void test_default_sink_restored(void **state) {
    (void)state;
    s_capture_t c = {0};
    mesh_log_set_sink(s_sink, &c);
    mesh_log_set_sink(NULL, NULL);
    mesh_log_set_level(MESH_LOG_ERROR);
    MESH_ERROR("log test: this line goes to stderr on purpose");
    assert_int_equal(c.count, 0);
}

// --- threads ---------------------------------------------------------------
#define N_THREADS 4
#define N_LINES 2000

typedef struct {
    pthread_mutex_t lock; // the sink must be thread-safe itself (mesh_log.h)
    int per_thread[N_THREADS];
    int bad;
} s_mt_t;

static void s_mt_sink(mesh_log_level_t level, const char *line, void *user) {
    (void)level;
    s_mt_t *m = user;
    int t = -1, i = -1;
    char tail[8] = "";
    int ok = sscanf(line, "thread %d line %d %7s", &t, &i, tail) == 3 &&
             strcmp(tail, "end") == 0 && t >= 0 && t < N_THREADS;
    pthread_mutex_lock(&m->lock);
    if (ok)
        m->per_thread[t]++;
    else
        m->bad++;
    pthread_mutex_unlock(&m->lock);
}

static void *s_worker(void *arg) {
    int t = (int)(intptr_t)arg;
    for (int i = 0; i < N_LINES; i++) {
        MESH_INFO("thread %d line %d end", t, i);
        MESH_DEBUG("thread %d filtered", t); // below the level: dropped
    }
    return NULL;
}

static void test_threads(void **state) {
    (void)state;
    s_mt_t m = {.lock = PTHREAD_MUTEX_INITIALIZER};
    mesh_log_set_sink(s_mt_sink, &m);
    mesh_log_set_level(MESH_LOG_INFO);
    pthread_t th[N_THREADS];
    for (int t = 0; t < N_THREADS; t++)
        assert_int_equal(pthread_create(&th[t], NULL, s_worker, (void *)(intptr_t)t), 0);
    for (int t = 0; t < N_THREADS; t++)
        pthread_join(th[t], NULL);
    assert_int_equal(m.bad, 0);
    for (int t = 0; t < N_THREADS; t++)
        assert_int_equal(m.per_thread[t], N_LINES);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_sink_receives_formatted_line, s_teardown),
        cmocka_unit_test_teardown(test_level_filter, s_teardown),
        cmocka_unit_test_teardown(test_parse_and_names, s_teardown),
        cmocka_unit_test_teardown(test_long_line_is_marked, s_teardown),
        cmocka_unit_test_teardown(test_default_sink_restored, s_teardown),
        cmocka_unit_test_teardown(test_threads, s_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
