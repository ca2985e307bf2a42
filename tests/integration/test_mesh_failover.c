// SPDX-License-Identifier: MIT
// Failover through a real meshcoord: a node killed with SIGKILL before its
// first token, and one killed mid-stream. The client's answer must be
// complete and equal to what one node gives alone (greedy). The nodes are
// mesh_fake_node processes (deterministic tokens from a hash of the
// context) because this build's meshnode has no engine; the coordinator
// cannot tell them from real nodes. Also: a node that sends malformed,
// unknown, newer-version and oversized messages disturbs nothing.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "mesh_harness.h"

#include <cjson/cJSON.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

static mh_mesh_t s_m;
static char s_fake[512];

typedef struct {
    const char *name;
    int port;
    char pub[64];
    pid_t pid;
} s_fake_t;

static void s_fake_start(s_fake_t *f, const char *mem, const char *die_after, int garbage) {
    char key[400], log[400], listen[64];
    snprintf(key, sizeof key, "%s/%s.key", s_m.dir, f->name);
    snprintf(log, sizeof log, "%s/%s.log", s_m.dir, f->name);
    if (!f->port)
        f->port = mh_free_port();
    snprintf(listen, sizeof listen, "tcp://127.0.0.1:%d", f->port);
    char *argv[] = {s_fake, "--listen", listen, "--key", key, "--name", (char *)f->name,
                    "--mem", (char *)mem, "--die-after", (char *)die_after,
                    garbage ? "--garbage" : NULL, NULL};
    f->pid = mh_spawn(log, argv);
    // The key file appears once the fake node has started.
    assert_int_equal(mh_wait_file(key, 5000), 0);
    char buf[256];
    mh_read_file(key, buf, sizeof buf);
    char *p = strstr(buf, "public = ");
    assert_non_null(p);
    snprintf(f->pub, 41, "%s", p + 9);
}

typedef struct {
    int status;
    int tokens[64];
    int n;
    char node[64], reason[64], finish[32], error[512];
} s_gen_t;

static void s_generate(int max_tokens, s_gen_t *g) {
    char body[256];
    snprintf(body, sizeof body,
             "{\"model\":\"tiny\",\"tokens\":[11,22,33,44],\"max_tokens\":%d}", max_tokens);
    cJSON *js = NULL;
    memset(g, 0, sizeof *g);
    g->status = mh_mesh_call(&s_m, "POST", "/admin/v1/generate", body, &js);
    assert_non_null(js);
    if (g->status == 200) {
        cJSON *t;
        cJSON_ArrayForEach(t, cJSON_GetObjectItem(js, "tokens")) {
            if (g->n < 64)
                g->tokens[g->n++] = (int)t->valuedouble;
        }
        snprintf(g->node, sizeof g->node, "%s",
                 cJSON_GetStringValue(cJSON_GetObjectItem(js, "node")));
        snprintf(g->reason, sizeof g->reason, "%s",
                 cJSON_GetStringValue(cJSON_GetObjectItem(js, "route_reason")));
        snprintf(g->finish, sizeof g->finish, "%s",
                 cJSON_GetStringValue(cJSON_GetObjectItem(js, "finish_reason")));
    } else {
        cJSON *e = cJSON_GetObjectItem(js, "error");
        snprintf(g->error, sizeof g->error, "%s",
                 cJSON_GetStringValue(cJSON_GetObjectItem(e, "message")));
    }
    cJSON_Delete(js);
}

static int s_setup(void **st) {
    (void)st;
    mh_mesh_init(&s_m);
    mh_bin(s_fake, sizeof s_fake, "mesh_fake_node", 1);
    return 0;
}

static int s_teardown(void **st) {
    (void)st;
    mh_kill_all();
    mh_rmtree(s_m.dir);
    return 0;
}

static void test_failover(void **st) {
    (void)st;
    // Reference: one node alone.
    s_fake_t solo = {"solo", 0, "", 0};
    s_fake_start(&solo, "1000000000", "-1", 0);
    assert_int_equal(mh_mesh_add(&s_m, solo.name, solo.port, solo.pub), 200);
    assert_int_equal(mh_wait_up(s_m.port, s_m.token, 1, 5000), 1);
    s_gen_t ref;
    s_generate(24, &ref);
    assert_int_equal(ref.status, 200);
    assert_int_equal(ref.n, 24);
    assert_string_equal(ref.node, "solo");
    assert_string_equal(ref.finish, "length");
    // The stream depends on the context: not a constant.
    assert_int_not_equal(ref.tokens[0], ref.tokens[1]);
    cJSON *js = NULL;
    assert_int_equal(mh_mesh_call(&s_m, "DELETE", "/admin/v1/nodes/solo", NULL, NULL), 200);
    mh_stop(solo.pid, SIGTERM);

    // A backup, and a node with more headroom that dies before its first
    // token: routing picks the doomed one first.
    s_fake_t backup = {"backup", 0, "", 0}, die0 = {"die0", 0, "", 0};
    s_fake_start(&backup, "1000000000", "-1", 0);
    s_fake_start(&die0, "4000000000", "0", 0);
    assert_int_equal(mh_mesh_add(&s_m, backup.name, backup.port, backup.pub), 200);
    assert_int_equal(mh_mesh_add(&s_m, die0.name, die0.port, die0.pub), 200);
    assert_int_equal(mh_wait_up(s_m.port, s_m.token, 2, 5000), 2);
    s_gen_t g;
    s_generate(24, &g);
    assert_int_equal(g.status, 200);
    assert_string_equal(g.node, "backup");
    assert_string_equal(g.reason, "failover");
    assert_int_equal(g.n, 24);
    assert_memory_equal(g.tokens, ref.tokens, sizeof(int) * 24);
    int ws = mh_stop(die0.pid, 0); // it killed itself with SIGKILL
    assert_true(WIFSIGNALED(ws) && WTERMSIG(ws) == SIGKILL);
    char state[32];
    mh_node_state(s_m.port, s_m.token, "die0", state, sizeof state);
    assert_string_equal(state, "dead");

    // Mid-stream: dies after sending 7 tokens; the coordinator replays the
    // prompt plus those 7 on the backup and the client sees one stream.
    s_fake_t die7 = {"die7", 0, "", 0};
    s_fake_start(&die7, "4000000000", "7", 0);
    assert_int_equal(mh_mesh_add(&s_m, die7.name, die7.port, die7.pub), 200);
    assert_int_equal(mh_mesh_call(&s_m, "DELETE", "/admin/v1/nodes/die0", NULL, NULL), 200);
    assert_int_equal(mh_wait_up(s_m.port, s_m.token, 2, 5000), 2);
    s_generate(24, &g);
    assert_int_equal(g.status, 200);
    assert_string_equal(g.node, "backup");
    assert_string_equal(g.reason, "failover");
    assert_int_equal(g.n, 24);
    assert_memory_equal(g.tokens, ref.tokens, sizeof(int) * 24);
    ws = mh_stop(die7.pid, 0);
    assert_true(WIFSIGNALED(ws) && WTERMSIG(ws) == SIGKILL);
    assert_true(mh_file_has(s_m.log, "failover after 7 tokens"));

    // The dead node comes back (same address and key) without a new add.
    s_fake_start(&die7, "4000000000", "-1", 0);
    assert_int_equal(mh_wait_up(s_m.port, s_m.token, 2, 5000), 2);
    s_generate(24, &g);
    assert_int_equal(g.status, 200);
    assert_string_equal(g.node, "die7");
    assert_memory_equal(g.tokens, ref.tokens, sizeof(int) * 24);

    // Every node gone: a clear error, not a hang.
    mh_stop(die7.pid, SIGKILL);
    mh_stop(backup.pid, SIGKILL);
    assert_int_equal(mh_wait_up(s_m.port, s_m.token, 0, 5000), 0);
    s_generate(4, &g);
    assert_int_equal(g.status, 503);
    assert_non_null(strstr(g.error, "down or draining"));
    assert_int_equal(mh_mesh_call(&s_m, "GET", "/admin/v1/status", NULL, &js), 200);
    assert_true(cJSON_GetObjectItem(js, "failovers")->valuedouble >= 2);
    cJSON_Delete(js);
}

static void test_node_sending_garbage(void **st) {
    (void)st;
    s_fake_t bad = {"garbage", 0, "", 0};
    s_fake_start(&bad, "1000000000", "-1", 1);
    assert_int_equal(mh_mesh_add(&s_m, bad.name, bad.port, bad.pub), 200);
    assert_int_equal(mh_wait_up(s_m.port, s_m.token, 1, 5000), 1);
    s_gen_t g;
    s_generate(5, &g);
    assert_int_equal(g.status, 200);
    assert_int_equal(g.n, 5);
    assert_true(mh_file_has(s_m.log, "malformed envelope"));
    assert_true(mh_file_has(s_m.log, "unknown message kind"));
    assert_true(mh_file_has(s_m.log, "newer than ours"));
    assert_true(mh_file_has(s_m.log, "over the"));
    // The coordinator is still fine.
    char state[32];
    mh_node_state(s_m.port, s_m.token, "garbage", state, sizeof state);
    assert_string_equal(state, "up");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_failover),
        cmocka_unit_test(test_node_sending_garbage),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
