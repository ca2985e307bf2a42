// SPDX-License-Identifier: MIT
// The coordinator core API as the HTTP layers use it, in process, against a
// mesh_fake_node process: stream callbacks in order (route, chunks, one
// done), cancel ending a stream at once, several requests in flight, and
// malformed requests refused without any callback.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "coord_core.h"
#include "mesh_err.h"
#include "mesh_harness.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int routes, chunks, done, status;
    int32_t ids[128];
    int n;
    char node[64], finish[32];
} s_col_t;

static void s_init(s_col_t *c) {
    memset(c, 0, sizeof *c);
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
}

static void s_route(void *u, const char *node, const char *reason) {
    s_col_t *c = u;
    (void)reason;
    pthread_mutex_lock(&c->mu);
    c->routes++;
    snprintf(c->node, sizeof c->node, "%s", node);
    pthread_mutex_unlock(&c->mu);
}

static void s_chunk(void *u, const int32_t *ids, size_t n, const char *text) {
    s_col_t *c = u;
    (void)text;
    pthread_mutex_lock(&c->mu);
    assert_int_equal(c->done, 0);
    for (size_t i = 0; i < n && c->n < 128; i++)
        c->ids[c->n++] = ids[i];
    c->chunks++;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

static void s_done(void *u, int status, const char *detail, uint32_t pt, uint32_t ct) {
    s_col_t *c = u;
    (void)pt;
    pthread_mutex_lock(&c->mu);
    c->done++;
    c->status = status;
    snprintf(c->finish, sizeof c->finish, "%s", detail);
    assert_int_equal((int)ct, c->n);
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

static const mesh_coord_stream_t s_cb = {s_route, s_chunk, s_done};

// Waits until pred holds (under the lock) or ms pass.
#define WAIT_FOR(c, pred, ms)                                                          \
    do {                                                                               \
        struct timespec ts_;                                                           \
        clock_gettime(CLOCK_REALTIME, &ts_);                                           \
        ts_.tv_sec += (ms) / 1000;                                                     \
        ts_.tv_nsec += ((ms) % 1000) * 1000000L;                                       \
        if (ts_.tv_nsec >= 1000000000L) {                                              \
            ts_.tv_sec++;                                                              \
            ts_.tv_nsec -= 1000000000L;                                                \
        }                                                                              \
        pthread_mutex_lock(&(c)->mu);                                                  \
        while (!(pred) && pthread_cond_timedwait(&(c)->cv, &(c)->mu, &ts_) == 0) {     \
        }                                                                              \
        pthread_mutex_unlock(&(c)->mu);                                                \
    } while (0)

static char s_dir[256];
static mesh_coord_t *s_core;
static const int32_t s_prompt[] = {3, 1, 4, 1, 5};

static int s_setup(void **st) {
    (void)st;
    mh_tmpdir(s_dir, sizeof s_dir);
    char fake[512], key[400], log[400], listen[64], state[400], ckey[400], err[256];
    mh_bin(fake, sizeof fake, "mesh_fake_node", 1);
    int port = mh_free_port();
    snprintf(key, sizeof key, "%s/fake.key", s_dir);
    snprintf(log, sizeof log, "%s/fake.log", s_dir);
    snprintf(listen, sizeof listen, "tcp://127.0.0.1:%d", port);
    char *argv[] = {fake, "--listen", listen, "--key", key, "--name", "fake", "--token-ms",
                    "40", NULL};
    mh_spawn(log, argv);
    assert_int_equal(mh_wait_file(key, 5000), 0);
    char buf[256];
    mh_read_file(key, buf, sizeof buf);
    char pub[41];
    snprintf(pub, sizeof pub, "%s", strstr(buf, "public = ") + 9);
    snprintf(state, sizeof state, "%s/state.json", s_dir);
    snprintf(ckey, sizeof ckey, "%s/coord.key", s_dir);
    mesh_coord_opts_t o = {.state_path = state, .key_path = ckey, .heartbeat_ms = 100,
                           .dead_after = 20};
    assert_int_equal(mesh_coord_new(&o, &s_core, err, sizeof err), 0);
    assert_int_equal(mesh_coord_node_add(s_core, listen, pub, "fake", err, sizeof err), 0);
    assert_int_equal(mesh_coord_wait_up(s_core, 1, 5000), 1);
    return 0;
}

static int s_teardown(void **st) {
    (void)st;
    mesh_coord_destroy(&s_core);
    assert_null(s_core);
    mh_kill_all();
    mh_rmtree(s_dir);
    return 0;
}

static void test_stream(void **st) {
    (void)st;
    s_col_t c;
    s_init(&c);
    mesh_coord_request_t rq = {.model = "tiny:Q8_0", .prompt_ids = s_prompt,
                               .n_prompt_ids = 5, .max_tokens = 6};
    uint64_t id = 0;
    char err[256];
    assert_int_equal(mesh_coord_submit(s_core, &rq, &s_cb, &c, &id, err, sizeof err), 0);
    assert_true(id > 0);
    WAIT_FOR(&c, c.done, 5000);
    assert_int_equal(c.done, 1);
    assert_int_equal(c.status, 0);
    assert_string_equal(c.finish, "length");
    assert_int_equal(c.routes, 1);
    assert_string_equal(c.node, "fake");
    assert_int_equal(c.n, 6);
    assert_int_equal(mesh_coord_cancel(s_core, id), MESH_ENOTFOUND); // already over
}

static void test_cancel(void **st) {
    (void)st;
    s_col_t c;
    s_init(&c);
    mesh_coord_request_t rq = {.model = "tiny", .prompt_ids = s_prompt, .n_prompt_ids = 5,
                               .max_tokens = 100};
    uint64_t id;
    char err[256];
    assert_int_equal(mesh_coord_submit(s_core, &rq, &s_cb, &c, &id, err, sizeof err), 0);
    WAIT_FOR(&c, c.n >= 2, 5000);
    assert_true(c.n >= 2);
    assert_int_equal(mesh_coord_cancel(s_core, id), 0);
    WAIT_FOR(&c, c.done, 1000);
    assert_int_equal(c.done, 1);
    assert_int_equal(c.status, 0);
    assert_string_equal(c.finish, "cancel");
    int n_at_cancel = c.n;
    usleep(200000); // the node keeps sending for a while: nothing more arrives
    assert_int_equal(c.n, n_at_cancel);
    assert_true(c.n < 100);
    assert_int_equal(c.done, 1);
}

static void test_many_in_flight(void **st) {
    (void)st;
    s_col_t c[4];
    char err[256];
    for (int i = 0; i < 4; i++) {
        s_init(&c[i]);
        mesh_coord_request_t rq = {.model = "tiny", .prompt_ids = s_prompt,
                                   .n_prompt_ids = (size_t)(i + 1), .max_tokens = 3};
        assert_int_equal(mesh_coord_submit(s_core, &rq, &s_cb, &c[i], NULL, err, sizeof err),
                         0);
    }
    for (int i = 0; i < 4; i++) {
        WAIT_FOR(&c[i], c[i].done, 10000);
        assert_int_equal(c[i].done, 1);
        assert_int_equal(c[i].status, 0);
        assert_int_equal(c[i].n, 3);
    }
    // Different prompts, different streams.
    assert_memory_not_equal(c[0].ids, c[1].ids, 3 * sizeof(int32_t));
}

static void test_bad_requests(void **st) {
    (void)st;
    s_col_t c;
    s_init(&c);
    char err[256];
    mesh_coord_request_t none = {.model = "tiny", .max_tokens = 3};
    assert_int_equal(mesh_coord_submit(s_core, &none, &s_cb, &c, NULL, err, sizeof err),
                     MESH_EINVAL);
    assert_non_null(strstr(err, "exactly one"));
    mesh_coord_request_t two = {.model = "tiny", .prompt = "x", .prompt_ids = s_prompt,
                                .n_prompt_ids = 1, .max_tokens = 3};
    assert_int_equal(mesh_coord_submit(s_core, &two, &s_cb, &c, NULL, err, sizeof err),
                     MESH_EINVAL);
    mesh_coord_request_t zero = {.model = "tiny", .prompt = "x", .max_tokens = 0};
    assert_int_equal(mesh_coord_submit(s_core, &zero, &s_cb, &c, NULL, err, sizeof err),
                     MESH_EINVAL);
    mesh_coord_request_t nomodel = {.model = ":q8_0", .prompt = "x", .max_tokens = 1};
    assert_int_equal(mesh_coord_submit(s_core, &nomodel, &s_cb, &c, NULL, err, sizeof err),
                     MESH_EINVAL);
    usleep(50000);
    assert_int_equal(c.done + c.chunks + c.routes, 0);
    // A model nobody serves: accepted, then one on_done with the reason.
    mesh_coord_request_t ghost = {.model = "ghost", .prompt = "x", .max_tokens = 1};
    assert_int_equal(mesh_coord_submit(s_core, &ghost, &s_cb, &c, NULL, err, sizeof err), 0);
    WAIT_FOR(&c, c.done, 2000);
    assert_int_equal(c.status, MESH_ENOTFOUND);
    assert_int_equal(c.routes, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stream),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_many_in_flight),
        cmocka_unit_test(test_bad_requests),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
