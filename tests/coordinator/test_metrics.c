// SPDX-License-Identifier: MIT
// Prometheus registry: exposition text of counters, gauges and histograms
// (cumulative buckets, +Inf, _sum, _count), label escaping, reset, and
// updates from many threads adding up exactly.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "metrics.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static void s_has(const char *text, const char *line) {
    if (!strstr(text, line)) {
        print_error("missing '%s' in:\n%s\n", line, text);
        fail();
    }
}

static void test_render(void **state) {
    (void)state;
    mesh_metrics_t *m = mesh_metrics_new();
    static const double b[] = {0.1, 1};
    assert_int_equal(mesh_metrics_declare(m, "x_total", "Things", MESH_METRIC_COUNTER, NULL, 0), 0);
    assert_int_equal(mesh_metrics_declare(m, "g", "A gauge", MESH_METRIC_GAUGE, NULL, 0), 0);
    assert_int_equal(mesh_metrics_declare(m, "h_seconds", "Times", MESH_METRIC_HISTOGRAM, b, 2), 0);
    const char *l1[] = {"model", "a\"b\\c\nd", NULL};
    mesh_metrics_add(m, "x_total", l1, 2);
    mesh_metrics_add(m, "x_total", l1, 3);
    mesh_metrics_set(m, "g", NULL, 7.5);
    const char *l2[] = {"model", "m", NULL};
    mesh_metrics_observe(m, "h_seconds", l2, 0.05);
    mesh_metrics_observe(m, "h_seconds", l2, 0.5);
    mesh_metrics_observe(m, "h_seconds", l2, 5);
    mesh_metrics_add(m, "unknown", NULL, 1); // ignored, no crash
    char *t = mesh_metrics_render(m);
    s_has(t, "# HELP x_total Things\n# TYPE x_total counter\n");
    s_has(t, "x_total{model=\"a\\\"b\\\\c\\nd\"} 5\n");
    s_has(t, "# TYPE g gauge\ng 7.5\n");
    s_has(t, "h_seconds_bucket{model=\"m\",le=\"0.1\"} 1\n");
    s_has(t, "h_seconds_bucket{model=\"m\",le=\"1\"} 2\n");
    s_has(t, "h_seconds_bucket{model=\"m\",le=\"+Inf\"} 3\n");
    s_has(t, "h_seconds_sum{model=\"m\"} 5.55\n");
    s_has(t, "h_seconds_count{model=\"m\"} 3\n");
    free(t);
    mesh_metrics_reset(m, "x_total");
    t = mesh_metrics_render(m);
    assert_null(strstr(t, "x_total{"));
    s_has(t, "# TYPE x_total counter\n");
    free(t);
    mesh_metrics_destroy(&m);
    assert_null(m);
}

static void *s_worker(void *arg) {
    mesh_metrics_t *m = arg;
    const char *l[] = {"k", "v", NULL};
    for (int i = 0; i < 10000; i++) {
        mesh_metrics_add(m, "c_total", l, 1);
        mesh_metrics_observe(m, "h", l, 0.5);
    }
    return NULL;
}

static void test_threads(void **state) {
    (void)state;
    mesh_metrics_t *m = mesh_metrics_new();
    static const double b[] = {1};
    mesh_metrics_declare(m, "c_total", "C", MESH_METRIC_COUNTER, NULL, 0);
    mesh_metrics_declare(m, "h", "H", MESH_METRIC_HISTOGRAM, b, 1);
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, s_worker, m);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    char *t = mesh_metrics_render(m);
    s_has(t, "c_total{k=\"v\"} 40000\n");
    s_has(t, "h_count{k=\"v\"} 40000\n");
    s_has(t, "h_sum{k=\"v\"} 20000\n");
    free(t);
    mesh_metrics_destroy(&m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_render),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
