// SPDX-License-Identifier: MIT
// Three real meshnode processes with different memory budgets, context
// limits and quants of the test model, one real meshcoord, all on
// 127.0.0.1: requests land where the routing rules say, what nothing can
// serve gets an error naming what was missing, meshctl drives the admin
// API, and a restarted coordinator gets its nodes back without `node add`.
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
#include <sys/stat.h>
#include <unistd.h>

#define MiB (1024ll * 1024)

static mh_mesh_t s_m;

typedef struct {
    const char *name, *file, *quant;
    long long free_bytes; // budget left after the weights
    const char *ctx;      // --ctx-limit
    long long file_size;
    int port;
    char pub[64];
    pid_t pid;
} s_node_t;

// KV per token of tiny-glm in the engine's f32 cache: 4 layers x (64 + 16) x 4 B = 1280.
static s_node_t s_nodes[] = {
    {"n-q8", "tiny-glm.q8_0.gguf", "q8_0", 8 * MiB, "8192", 0, 0, "", 0},
    {"n-q4", "tiny-glm.q4_k_m.gguf", "q4_k_m", 4 * MiB, "8192", 0, 0, "", 0},
    {"n-bf16", "tiny-glm.bf16.gguf", "bf16", 16 * MiB, "512", 0, 0, "", 0},
};

static void s_start_node(s_node_t *n) {
    char model[1200], path[1024], mem[32], listen[64], key[400], log[400];
    mh_testdata(path, sizeof path, n->file);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    n->file_size = st.st_size;
    snprintf(model, sizeof model, "tiny=%s", path);
    snprintf(mem, sizeof mem, "%lld", n->file_size + n->free_bytes);
    if (!n->port)
        n->port = mh_free_port();
    snprintf(listen, sizeof listen, "tcp://127.0.0.1:%d", n->port);
    snprintf(key, sizeof key, "%s/%s.key", s_m.dir, n->name);
    snprintf(log, sizeof log, "%s/%s.log", s_m.dir, n->name);
    char *argv[] = {s_m.node_bin, "--listen", listen, "--key", key, "--trust", s_m.pub,
                    "--model", model, "--mem-limit", mem, "--ctx-limit", (char *)n->ctx,
                    "--heartbeat-ms", "100", "--name", (char *)n->name, NULL};
    n->pid = mh_spawn(log, argv);
}

static int s_setup(void **st) {
    (void)st;
    mh_mesh_init(&s_m);
    for (size_t i = 0; i < 3; i++) {
        mh_mesh_node_key(&s_m, s_nodes[i].name, s_nodes[i].pub, sizeof s_nodes[i].pub);
        s_start_node(&s_nodes[i]);
        assert_int_equal(mh_mesh_add(&s_m, s_nodes[i].name, s_nodes[i].port, s_nodes[i].pub),
                         200);
    }
    if (mh_wait_up(s_m.port, s_m.token, 3, 10000) != 3)
        fail_msg("three nodes did not come up (logs in %s)", s_m.dir);
    return 0;
}

static int s_teardown(void **st) {
    (void)st;
    mh_kill_all();
    mh_rmtree(s_m.dir);
    return 0;
}

// Dry-run route: returns the HTTP status; node/reason or the error message.
static int s_route(const char *model, long tokens, char *node, char *msg) {
    char body[256];
    snprintf(body, sizeof body, "{\"model\":\"%s\",\"tokens\":%ld}", model, tokens);
    cJSON *js = NULL;
    int status = mh_mesh_call(&s_m, "POST", "/admin/v1/route", body, &js);
    node[0] = msg[0] = 0;
    if (status == 200) {
        snprintf(node, 64, "%s", cJSON_GetStringValue(cJSON_GetObjectItem(js, "node")));
        snprintf(msg, 256, "%s", cJSON_GetStringValue(cJSON_GetObjectItem(js, "reason")));
    } else if (js) {
        cJSON *e = cJSON_GetObjectItem(js, "error");
        snprintf(msg, 256, "%s %s", cJSON_GetStringValue(cJSON_GetObjectItem(e, "code")),
                 cJSON_GetStringValue(cJSON_GetObjectItem(e, "message")));
    }
    cJSON_Delete(js);
    return status;
}

static void test_reports(void **st) {
    (void)st;
    cJSON *js = NULL;
    assert_int_equal(mh_mesh_call(&s_m, "GET", "/admin/v1/nodes", NULL, &js), 200);
    assert_int_equal(cJSON_GetArraySize(js), 3);
    cJSON *nd;
    cJSON_ArrayForEach(nd, js) {
        const char *name = cJSON_GetStringValue(cJSON_GetObjectItem(nd, "name"));
        s_node_t *n = NULL;
        for (size_t i = 0; i < 3; i++)
            if (strcmp(s_nodes[i].name, name) == 0)
                n = &s_nodes[i];
        assert_non_null(n);
        assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(nd, "state")), "up");
        assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(nd, "backend")), "cpu");
        assert_true(cJSON_GetObjectItem(nd, "mem_free")->valuedouble == (double)n->free_bytes);
        cJSON *dev = cJSON_GetArrayItem(cJSON_GetObjectItem(nd, "devices"), 0);
        assert_non_null(strstr(cJSON_GetStringValue(cJSON_GetObjectItem(dev, "arch")), "cpu"));
        cJSON *m = cJSON_GetArrayItem(cJSON_GetObjectItem(nd, "models"), 0);
        assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(m, "name")), "tiny");
        assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(m, "arch")), "deepseek2");
        assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(m, "quant")), n->quant);
        assert_true(cJSON_GetObjectItem(m, "file_size")->valuedouble == (double)n->file_size);
        assert_int_equal((int)cJSON_GetObjectItem(m, "kv_bytes_per_token")->valuedouble, 1280);
        assert_int_equal((int)cJSON_GetObjectItem(m, "ctx_limit")->valuedouble, atoi(n->ctx));
    }
    cJSON_Delete(js);
}

static void test_routing_rules(void **st) {
    (void)st;
    char node[64], msg[256];
    // Most headroom: n-bf16 has 16 MiB free.
    assert_int_equal(s_route("tiny", 100, node, msg), 200);
    assert_string_equal(node, "n-bf16");
    assert_string_equal(msg, "most headroom");
    // Named quant.
    assert_int_equal(s_route("tiny:q4_k_m", 100, node, msg), 200);
    assert_string_equal(node, "n-q4");
    assert_string_equal(msg, "only fit");
    assert_int_equal(s_route("tiny:q8_0", 100, node, msg), 200);
    assert_string_equal(node, "n-q8");
    // Context too long for n-bf16 (512): n-q8 has more room than n-q4.
    assert_int_equal(s_route("tiny", 1000, node, msg), 200);
    assert_string_equal(node, "n-q8");
    // 5000 tokens x 1280 B = 6.1 MiB: over n-q4's 4 MiB, within n-q8's 8 MiB.
    assert_int_equal(s_route("tiny:q4_k_m", 3000, node, msg), 200);
    assert_string_equal(node, "n-q4");
    assert_int_equal(s_route("tiny", 5000, node, msg), 200);
    assert_string_equal(node, "n-q8");
    // Nothing can serve these: the error says what was missing.
    assert_int_equal(s_route("tiny", 7000, node, msg), 503);
    assert_non_null(strstr(msg, "MESH_ENOSPACE"));
    assert_non_null(strstr(msg, "memory"));
    assert_int_equal(s_route("tiny:q4_k_m", 5000, node, msg), 503);
    assert_int_equal(s_route("tiny:bf16", 1000, node, msg), 400);
    assert_non_null(strstr(msg, "largest: 512"));
    assert_int_equal(s_route("tiny", 9000, node, msg), 400);
    assert_non_null(strstr(msg, "MESH_ERANGE"));
    assert_int_equal(s_route("nope", 10, node, msg), 404);
    assert_non_null(strstr(msg, "no node serves model 'nope'"));
    assert_int_equal(s_route("tiny:q2_k", 10, node, msg), 404);
    assert_non_null(strstr(msg, "q2_k"));
    assert_non_null(strstr(msg, "q8_0"));
}

// A blocking generate through the admin API: 200 and the serving node, or
// the HTTP status.
static int s_gen(const char *body, char *node, int *prompt_tokens, int *n_tokens) {
    cJSON *js = NULL;
    int status = mh_mesh_call(&s_m, "POST", "/admin/v1/generate", body, &js);
    node[0] = 0;
    if (status == 200) {
        snprintf(node, 64, "%s", cJSON_GetStringValue(cJSON_GetObjectItem(js, "node")));
        *prompt_tokens = (int)cJSON_GetObjectItem(js, "prompt_tokens")->valuedouble;
        *n_tokens = cJSON_GetArraySize(cJSON_GetObjectItem(js, "tokens"));
    }
    cJSON_Delete(js);
    return status;
}

static void test_generate_lands_by_rules(void **st) {
    (void)st;
    // 600 bytes of text: as bytes (the old estimate) it would not fit n-bf16's
    // 512-token context with 100 new tokens; tokenized by a node it is far
    // shorter, so the exact count routes it to the most headroom: n-bf16.
    char prompt[700] = "";
    for (int i = 0; i < 100; i++)
        strcat(prompt, "hello ");
    char body[1200], node[64];
    int pt = 0, nt = 0;
    snprintf(body, sizeof body,
             "{\"model\":\"tiny\",\"prompt\":\"%s\",\"max_tokens\":100}", prompt);
    assert_int_equal(s_gen(body, node, &pt, &nt), 200);
    assert_string_equal(node, "n-bf16");
    assert_true(pt > 0 && pt + 100 <= 512);
    assert_true(nt >= 1 && nt <= 100);
    // Same prompt, 450 new tokens: exactly over 512, so n-q8 (more room than n-q4).
    int pt2 = 0;
    snprintf(body, sizeof body,
             "{\"model\":\"tiny\",\"prompt\":\"%s\",\"max_tokens\":%d}", prompt,
             513 - pt);
    assert_int_equal(s_gen(body, node, &pt2, &nt), 200);
    assert_string_equal(node, "n-q8");
    assert_int_equal(pt2, pt);
    // A chat on a named quant, rendered by the node's chat template.
    const char *chat = "{\"model\":\"tiny:q4_k_m\",\"max_tokens\":8,\"messages\":"
                       "[{\"role\":\"user\",\"content\":\"Route me to a node.\"}]}";
    assert_int_equal(s_gen(chat, node, &pt, &nt), 200);
    assert_string_equal(node, "n-q4");
    assert_true(pt > 5);
    // Drained by the admin (meshctl node drain): n-bf16 takes nothing new.
    const char *drain[] = {"node", "drain", "n-bf16", NULL};
    static char out[8192];
    assert_int_equal(mh_mesh_ctl(&s_m, out, sizeof out, drain), 0);
    assert_int_equal(s_gen("{\"model\":\"tiny\",\"tokens\":[1,2,3],\"max_tokens\":4}", node,
                           &pt, &nt),
                     200);
    assert_string_equal(node, "n-q8");
    assert_int_equal(pt, 3);
    char nlog[400];
    snprintf(nlog, sizeof nlog, "%s/n-bf16.log", s_m.dir);
    for (int i = 0; i < 200 && !mh_file_has(nlog, "draining by the coordinator"); i++)
        usleep(5000);
    assert_true(mh_file_has(nlog, "draining by the coordinator")); // the node was told
    assert_int_equal(mh_mesh_call(&s_m, "POST", "/admin/v1/nodes/n-bf16/drain", "{\"on\":false}",
                                  NULL),
                     200);
    char state[32] = "";
    for (int i = 0; i < 1000 && strcmp(state, "up") != 0; i++) { // the node lifts it too
        mh_node_state(s_m.port, s_m.token, "n-bf16", state, sizeof state);
        usleep(5000);
    }
    assert_string_equal(state, "up");
    assert_int_equal(s_gen("{\"model\":\"tiny\",\"tokens\":[1,2,3],\"max_tokens\":4}", node,
                           &pt, &nt),
                     200);
    assert_string_equal(node, "n-bf16");
    // Bad requests get 400 and change nothing; chat the template cannot take too.
    assert_int_equal(mh_mesh_call(&s_m, "POST", "/admin/v1/generate", "{\"model\":\"tiny\"}",
                                  NULL),
                     400);
    assert_int_equal(mh_mesh_call(&s_m, "POST", "/admin/v1/route", "{not json", NULL), 400);
    assert_int_equal(mh_wait_up(s_m.port, s_m.token, 3, 1000), 3);
}

static void test_meshctl(void **st) {
    (void)st;
    static char out[65536];
    const char *list[] = {"node", "list", NULL};
    assert_int_equal(mh_mesh_ctl(&s_m, out, sizeof out, list), 0);
    assert_non_null(strstr(out, "n-q8"));
    assert_non_null(strstr(out, "tiny:bf16"));
    assert_non_null(strstr(out, "cpu-"));
    assert_non_null(strstr(out, "[")); // memory bar
    const char *listj[] = {"node", "list", "--json", NULL};
    assert_int_equal(mh_mesh_ctl(&s_m, out, sizeof out, listj), 0);
    cJSON *js = cJSON_Parse(out);
    assert_int_equal(cJSON_GetArraySize(js), 3);
    cJSON_Delete(js);
    const char *models[] = {"models", "--json", NULL};
    assert_int_equal(mh_mesh_ctl(&s_m, out, sizeof out, models), 0);
    js = cJSON_Parse(out);
    assert_int_equal(cJSON_GetArraySize(js), 1);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(cJSON_GetArrayItem(js, 0),
                                                            "served_by")),
                     3);
    cJSON_Delete(js);
    const char *status[] = {"status", NULL};
    assert_int_equal(mh_mesh_ctl(&s_m, out, sizeof out, status), 0);
    assert_non_null(strstr(out, "3 up"));
    const char *keys[] = {"keys", NULL};
    assert_int_equal(mh_mesh_ctl(&s_m, out, sizeof out, keys), 0);
    assert_non_null(strstr(out, s_m.pub));
    assert_non_null(strstr(out, "--trust"));
    const char *route[] = {"route", "tiny:q8_0", "--tokens", "10", NULL};
    assert_int_equal(mh_mesh_ctl(&s_m, out, sizeof out, route), 0);
    assert_non_null(strstr(out, "n-q8"));
    // Errors: one line, non-zero exit.
    const char *bad[] = {"node", "remove", "ghost", NULL};
    assert_int_not_equal(mh_mesh_ctl(&s_m, out, sizeof out, bad), 0);
    assert_non_null(strstr(out, "no node named 'ghost'"));
    assert_int_equal(strchr(out, '\n') - out, (long)strlen(out) - 1);
    const char *dup[] = {"node", "add", "tcp://127.0.0.1:1", "--key", s_nodes[0].pub,
                         "--name", "n-q8", NULL};
    assert_int_not_equal(mh_mesh_ctl(&s_m, out, sizeof out, dup), 0);
    assert_non_null(strstr(out, "already known"));
    const char *nokey[] = {"node", "add", "tcp://127.0.0.1:1", NULL};
    assert_int_not_equal(mh_mesh_ctl(&s_m, out, sizeof out, nokey), 0);
    const char *unk[] = {"frobnicate", NULL};
    assert_int_not_equal(mh_mesh_ctl(&s_m, out, sizeof out, unk), 0);
    assert_non_null(strstr(out, "unknown command"));
    // Drain steers traffic away; remove forgets the node.
    const char *drain[] = {"node", "drain", "n-bf16", NULL};
    assert_int_equal(mh_mesh_ctl(&s_m, out, sizeof out, drain), 0);
    char node[64], msg[256];
    assert_int_equal(s_route("tiny", 100, node, msg), 200);
    assert_string_equal(node, "n-q8");
    const char *rm[] = {"node", "remove", "n-q4", NULL};
    assert_int_equal(mh_mesh_ctl(&s_m, out, sizeof out, rm), 0);
    assert_int_equal(s_route("tiny:q4_k_m", 100, node, msg), 404);
}

static void test_coordinator_restart(void **st) {
    (void)st;
    // Depends on test_meshctl: n-q4 removed, n-bf16 draining.
    int status = mh_stop(s_m.pid, SIGTERM);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    mh_mesh_coord_start(&s_m);
    assert_int_equal(mh_wait_up(s_m.port, s_m.token, 2, 10000), 2);
    cJSON *js = NULL;
    assert_int_equal(mh_mesh_call(&s_m, "GET", "/admin/v1/nodes", NULL, &js), 200);
    assert_int_equal(cJSON_GetArraySize(js), 2);
    cJSON_Delete(js);
    char node[64], msg[256];
    assert_int_equal(s_route("tiny", 100, node, msg), 200);
    assert_string_equal(node, "n-q8"); // the drain survived the restart too
    // A node that dies is marked dead, and comes back when it restarts.
    int st2 = mh_stop(s_nodes[0].pid, SIGKILL);
    assert_true(WIFSIGNALED(st2));
    assert_int_equal(mh_wait_up(s_m.port, s_m.token, 1, 5000), 1);
    mh_node_state(s_m.port, s_m.token, "n-q8", node, sizeof node);
    assert_string_equal(node, "dead");
    assert_int_equal(s_route("tiny", 100, node, msg), 503);
    s_start_node(&s_nodes[0]);
    assert_int_equal(mh_wait_up(s_m.port, s_m.token, 2, 10000), 2);
    assert_int_equal(s_route("tiny", 100, node, msg), 200);
    assert_string_equal(node, "n-q8");
    // SIGTERM drains and exits cleanly.
    int st3 = mh_stop(s_nodes[2].pid, SIGTERM);
    assert_true(WIFEXITED(st3) && WEXITSTATUS(st3) == 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reports),
        cmocka_unit_test(test_routing_rules),
        cmocka_unit_test(test_generate_lands_by_rules),
        cmocka_unit_test(test_meshctl),
        cmocka_unit_test(test_coordinator_restart),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
