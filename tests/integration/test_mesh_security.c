// SPDX-License-Identifier: MIT
// Security and bad input against real processes: a coordinator whose key a
// node does not trust is refused (and logged); a client with the wrong
// server key cannot connect; the admin API refuses calls without the right
// token; key and token files readable by others are refused; a real
// meshnode answers malformed, oversized, unknown-kind and newer-version
// messages with an error and keeps serving.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "mesh_keys.h"
#include "mesh_err.h"
#include "mesh_harness.h"
#include "mesh_wire.h"

#include <cjson/cJSON.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

typedef struct {
    char pub[MESH_KEY_Z85_LEN + 1], sec[MESH_KEY_Z85_LEN + 1];
} s_keypair_t;

static mh_mesh_t s_m;
static char s_model[1200];

static pid_t s_node(const char *name, int port, const char *trust) {
    char key[400], log[400], listen[64];
    snprintf(key, sizeof key, "%s/%s.key", s_m.dir, name);
    snprintf(log, sizeof log, "%s/%s.log", s_m.dir, name);
    snprintf(listen, sizeof listen, "tcp://127.0.0.1:%d", port);
    char *argv[] = {s_m.node_bin, "--listen", listen, "--key", key, "--trust", (char *)trust,
                    "--model", s_model, "--mem-limit", "64M", "--heartbeat-ms", "100",
                    "--name", (char *)name, NULL};
    return mh_spawn(log, argv);
}

static int s_setup(void **st) {
    (void)st;
    mh_mesh_init(&s_m);
    char path[1024];
    mh_testdata(path, sizeof path, "tiny-glm.q4_k_m.gguf");
    snprintf(s_model, sizeof s_model, "tiny=%s", path);
    return 0;
}

static int s_teardown(void **st) {
    (void)st;
    mh_kill_all();
    mh_rmtree(s_m.dir);
    return 0;
}

static void test_untrusted_coordinator_refused(void **st) {
    (void)st;
    char other_pub[64], pub[64], log[400], state[32];
    // The node trusts some other key, not this coordinator's.
    mh_mesh_node_key(&s_m, "stranger", other_pub, sizeof other_pub);
    mh_mesh_node_key(&s_m, "picky", pub, sizeof pub);
    int port = mh_free_port();
    s_node("picky", port, other_pub);
    assert_int_equal(mh_mesh_add(&s_m, "picky", port, pub), 200);
    snprintf(log, sizeof log, "%s/picky.log", s_m.dir);
    // The node loads its model first (seconds under sanitizers on a busy machine).
    for (int i = 0; i < 2000 && !mh_file_has(log, "refused a connection"); i++)
        usleep(10000);
    assert_true(mh_file_has(log, "refused a connection"));
    assert_true(mh_file_has(log, s_m.pub)); // names the refused key
    mh_node_state(s_m.port, s_m.token, "picky", state, sizeof state);
    assert_string_not_equal(state, "up");
    assert_int_equal(mh_wait_up(s_m.port, s_m.token, 1, 300), 0);
}

static void test_wrong_server_key(void **st) {
    (void)st;
    char pub[64], wrong[64], state[32];
    mh_mesh_node_key(&s_m, "honest", pub, sizeof pub);
    mh_mesh_node_key(&s_m, "impostor", wrong, sizeof wrong);
    int port = mh_free_port();
    s_node("honest", port, s_m.pub);
    // Registered with the wrong node key: the CURVE handshake fails.
    assert_int_equal(mh_mesh_add(&s_m, "honest", port, wrong), 200);
    usleep(800000);
    mh_node_state(s_m.port, s_m.token, "honest", state, sizeof state);
    assert_string_not_equal(state, "up");
    // With the right key it comes up.
    assert_int_equal(mh_mesh_call(&s_m, "DELETE", "/admin/v1/nodes/honest", NULL, NULL), 200);
    assert_int_equal(mh_mesh_add(&s_m, "honest", port, pub), 200);
    assert_int_equal(mh_wait_up(s_m.port, s_m.token, 1, 5000), 1);
}

static void test_admin_token(void **st) {
    (void)st;
    char *r = NULL;
    assert_int_equal(mh_http(s_m.port, "GET", "/admin/v1/status", NULL, NULL, &r), 401);
    assert_non_null(strstr(r, "MESH_EAUTH"));
    free(r);
    assert_int_equal(mh_http(s_m.port, "GET", "/admin/v1/nodes", "0123456789abcdef0123", NULL,
                             &r),
                     401);
    free(r);
    assert_int_equal(mh_http(s_m.port, "DELETE", "/admin/v1/nodes/honest", "", NULL, &r), 401);
    free(r);
    assert_int_equal(mh_wait_up(s_m.port, s_m.token, 1, 1000), 1); // nothing removed
    assert_int_equal(mh_http(s_m.port, "GET", "/admin/v1/status", s_m.token, NULL, &r), 200);
    free(r);
    // meshctl with a wrong token: one line, non-zero exit.
    char bad[400], url[64], out[4096];
    snprintf(bad, sizeof bad, "%s/wrong.token", s_m.dir);
    FILE *f = fopen(bad, "w");
    fputs("not-the-right-token-at-all\n", f);
    fclose(f);
    chmod(bad, 0600);
    snprintf(url, sizeof url, "http://127.0.0.1:%d", s_m.port);
    char *argv[] = {s_m.ctl_bin, "--url", url, "--token-file", bad, "status", NULL};
    assert_int_not_equal(mh_run(argv, out, sizeof out, 10000), 0);
    assert_non_null(strstr(out, "token"));
    // A token file others can read is refused by meshctl.
    chmod(bad, 0644);
    assert_int_not_equal(mh_run(argv, out, sizeof out, 10000), 0);
    assert_non_null(strstr(out, "readable by group or others"));
}

static void test_readable_key_files_refused(void **st) {
    (void)st;
    char key[400], out[4096], tok[400], state[400];
    // A node key file others can read.
    snprintf(key, sizeof key, "%s/loose.key", s_m.dir);
    char pub[64];
    mh_mesh_node_key(&s_m, "loose", pub, sizeof pub);
    chmod(key, 0644);
    char *nargv[] = {s_m.node_bin, "--key", key, "--trust", s_m.pub, "--listen",
                     "tcp://127.0.0.1:1", NULL};
    assert_int_equal(mh_run(nargv, out, sizeof out, 10000), 1);
    assert_non_null(strstr(out, "chmod 600"));
    // The coordinator's key file.
    snprintf(key, sizeof key, "%s/coord2.key", s_m.dir);
    snprintf(state, sizeof state, "%s/state2.json", s_m.dir);
    char *pk[] = {s_m.coord_bin, "--key", key, "--state", state, "--print-key", NULL};
    assert_int_equal(mh_run(pk, out, sizeof out, 10000), 0);
    chmod(key, 0640);
    assert_int_equal(mh_run(pk, out, sizeof out, 10000), 1);
    assert_non_null(strstr(out, "chmod 600"));
    // The admin token file.
    chmod(key, 0600);
    snprintf(tok, sizeof tok, "%s/loose.token", s_m.dir);
    FILE *f = fopen(tok, "w");
    fputs("0123456789abcdef0123456789\n", f);
    fclose(f);
    chmod(tok, 0644);
    char *cargv[] = {s_m.coord_bin, "--key", key, "--state", state, "--admin", "127.0.0.1:0",
                     "--admin-token-file", tok, NULL};
    assert_int_equal(mh_run(cargv, out, sizeof out, 10000), 1);
    assert_non_null(strstr(out, "readable by group or others"));
    // Bad flags: one line, non-zero.
    char *b1[] = {s_m.node_bin, "--mem-limit", "lots", NULL};
    assert_int_equal(mh_run(b1, out, sizeof out, 10000), 2);
    assert_non_null(strstr(out, "mem-limit"));
    char *b2[] = {s_m.node_bin, "--key", key, "--trust", "short", NULL};
    assert_int_equal(mh_run(b2, out, sizeof out, 10000), 2);
    char *b3[] = {s_m.node_bin, "--help", NULL};
    assert_int_equal(mh_run(b3, out, sizeof out, 10000), 0);
    assert_non_null(strstr(out, "--mem-limit"));
}

// Talks to a real meshnode as a trusted CURVE client.
static void test_node_protocol_faults(void **st) {
    (void)st;
    char kpath[400], err[256];
    snprintf(kpath, sizeof kpath, "%s/client.key", s_m.dir);
    s_keypair_t kp;
    assert_int_equal(mesh_keys_load_or_create(kpath, kp.pub, kp.sec), 0);
    char npub[64];
    mh_mesh_node_key(&s_m, "target", npub, sizeof npub);
    int port = mh_free_port();
    pid_t node = s_node("target", port, kp.pub);
    void *ctx = zmq_ctx_new(), *s = zmq_socket(ctx, ZMQ_DEALER);
    int zero = 0, tmo = 3000;
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(s, ZMQ_RCVTIMEO, &tmo, sizeof tmo);
    zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, npub, 40);
    zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, kp.pub, 40);
    zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, kp.sec, 40);
    char addr[64];
    snprintf(addr, sizeof addr, "tcp://127.0.0.1:%d", port);
    usleep(200000);
    assert_int_equal(zmq_connect(s, addr), 0);
    static uint8_t buf[1 << 20];
    // Expects an Error envelope with the given code (skipping heartbeats).
#define EXPECT_ERROR(code_)                                                              \
    do {                                                                                 \
        Mesh__Envelope *e_ = NULL;                                                       \
        for (;;) {                                                                       \
            int n_ = zmq_recv(s, buf, sizeof buf, 0);                                    \
            assert_true(n_ > 0);                                                         \
            assert_int_equal(mesh_wire_unpack(buf, (size_t)n_, &e_, err, sizeof err), 0); \
            if (e_->kind_case != MESH__ENVELOPE__KIND_HEARTBEAT)                         \
                break;                                                                   \
            mesh_wire_free(&e_);                                                         \
        }                                                                                \
        assert_int_equal(e_->kind_case, MESH__ENVELOPE__KIND_ERROR);                     \
        assert_int_equal(e_->error->code, (code_));                                      \
        mesh_wire_free(&e_);                                                             \
    } while (0)
    // Before Hello: a generate is refused with a state error.
    Mesh__Envelope env = MESH__ENVELOPE__INIT;
    Mesh__Ping ping = MESH__PING__INIT;
    ping.nonce = 42;
    env.kind_case = MESH__ENVELOPE__KIND_PING;
    env.ping = &ping;
    assert_int_equal(mesh_wire_send(s, NULL, 0, &env, 0), 0);
    EXPECT_ERROR(MESH_ESTATE);
    Mesh__Envelope hello = MESH__ENVELOPE__INIT;
    Mesh__Hello h = MESH__HELLO__INIT;
    h.coord_name = "test";
    hello.kind_case = MESH__ENVELOPE__KIND_HELLO;
    hello.hello = &h;
    assert_int_equal(mesh_wire_send(s, NULL, 0, &hello, 0), 0);
    Mesh__Envelope *in = NULL;
    int n = zmq_recv(s, buf, sizeof buf, 0);
    assert_true(n > 0);
    assert_int_equal(mesh_wire_unpack(buf, (size_t)n, &in, err, sizeof err), 0);
    assert_int_equal(in->kind_case, MESH__ENVELOPE__KIND_CAPABILITIES);
    assert_string_equal(in->capabilities->node_name, "target");
    assert_int_equal(in->capabilities->n_models, 1);
    mesh_wire_free(&in);
    // Malformed.
    const uint8_t bad[] = {0x08};
    zmq_send(s, bad, sizeof bad, 0);
    EXPECT_ERROR(MESH_EFORMAT);
    // Unknown kind.
    const uint8_t unknown[] = {0x08, 0x01, 0x9a, 0x06, 0x00};
    zmq_send(s, unknown, sizeof unknown, 0);
    EXPECT_ERROR(MESH_EPROTO);
    // Newer protocol version.
    env.protocol_version = MESH_PROTO_VERSION + 1;
    assert_int_equal(mesh_wire_send(s, NULL, 0, &env, 0), 0);
    EXPECT_ERROR(MESH_EUNSUPPORTED);
    env.protocol_version = 0;
    // Oversized (over the envelope limit, under the transport limit).
    size_t big = MESH_WIRE_MAX_BYTES + 1000;
    uint8_t *huge = calloc(1, big);
    zmq_send(s, huge, big, 0);
    free(huge);
    EXPECT_ERROR(MESH_ERANGE);
    // A message kind a node does not take.
    Mesh__Envelope hb = MESH__ENVELOPE__INIT;
    Mesh__Heartbeat hbm = MESH__HEARTBEAT__INIT;
    hb.kind_case = MESH__ENVELOPE__KIND_HEARTBEAT;
    hb.heartbeat = &hbm;
    mesh_wire_send(s, NULL, 0, &hb, 0);
    EXPECT_ERROR(MESH_EPROTO);
    // A model it does not serve, then a real generation: tokens, then done.
    Mesh__Envelope ge = MESH__ENVELOPE__INIT;
    Mesh__GenerateRequest g = MESH__GENERATE_REQUEST__INIT;
    Mesh__Sampling sp = MESH__SAMPLING__INIT;
    sp.max_tokens = 4;
    g.request_id = 5;
    g.model = "other";
    g.input_case = MESH__GENERATE_REQUEST__INPUT_PROMPT;
    g.prompt = "hi";
    g.sampling = &sp;
    ge.kind_case = MESH__ENVELOPE__KIND_GENERATE;
    ge.generate = &g;
    mesh_wire_send(s, NULL, 0, &ge, 0);
    EXPECT_ERROR(MESH_ENOTFOUND);
    g.model = "tiny";
    mesh_wire_send(s, NULL, 0, &ge, 0);
    {
        size_t got = 0;
        for (;;) {
            Mesh__Envelope *e_ = NULL;
            int n_ = zmq_recv(s, buf, sizeof buf, 0);
            assert_true(n_ > 0);
            assert_int_equal(mesh_wire_unpack(buf, (size_t)n_, &e_, err, sizeof err), 0);
            int kind = e_->kind_case;
            if (kind == MESH__ENVELOPE__KIND_CHUNK) {
                assert_int_equal(e_->chunk->request_id, 5);
                assert_int_equal(e_->chunk->index, got);
                got += e_->chunk->n_ids;
            } else if (kind == MESH__ENVELOPE__KIND_DONE) {
                assert_int_equal(e_->done->request_id, 5);
                assert_true(e_->done->prompt_tokens >= 1);
                assert_int_equal(e_->done->completion_tokens, got);
            } else {
                assert_int_equal(kind, MESH__ENVELOPE__KIND_HEARTBEAT);
            }
            mesh_wire_free(&e_);
            if (kind == MESH__ENVELOPE__KIND_DONE)
                break;
        }
        assert_true(got >= 1 && got <= 4);
    }
    // Still serving: a ping gets its pong.
    assert_int_equal(mesh_wire_send(s, NULL, 0, &env, 0), 0);
    for (;;) {
        n = zmq_recv(s, buf, sizeof buf, 0);
        assert_true(n > 0);
        assert_int_equal(mesh_wire_unpack(buf, (size_t)n, &in, err, sizeof err), 0);
        if (in->kind_case != MESH__ENVELOPE__KIND_HEARTBEAT)
            break;
        mesh_wire_free(&in);
    }
    assert_int_equal(in->kind_case, MESH__ENVELOPE__KIND_PONG);
    assert_int_equal(in->pong->nonce, 42);
    mesh_wire_free(&in);
    // SIGTERM with nothing running: the node says it drains, then asks us
    // for a Pong (proof that its last replies arrived) before it exits.
    kill(node, SIGTERM);
    uint64_t nonce = 0;
    for (;;) {
        n = zmq_recv(s, buf, sizeof buf, 0);
        assert_true(n > 0);
        assert_int_equal(mesh_wire_unpack(buf, (size_t)n, &in, err, sizeof err), 0);
        int kind = in->kind_case;
        if (kind == MESH__ENVELOPE__KIND_CAPABILITIES)
            assert_true(in->capabilities->draining);
        else if (kind == MESH__ENVELOPE__KIND_PING)
            nonce = in->ping->nonce;
        else
            assert_int_equal(kind, MESH__ENVELOPE__KIND_HEARTBEAT);
        mesh_wire_free(&in);
        if (kind == MESH__ENVELOPE__KIND_PING)
            break;
    }
    assert_int_equal(mesh_wire_send_ping(s, NULL, 0, 1, nonce), 0);
    int status = mh_stop(node, SIGTERM);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    zmq_close(s);
    zmq_ctx_term(ctx);
    char log[400];
    snprintf(log, sizeof log, "%s/target.log", s_m.dir);
    assert_true(mh_file_has(log, "malformed envelope"));
    assert_true(mh_file_has(log, "newer than ours"));
    assert_true(mh_file_has(log, "drained, exiting"));
    assert_false(mh_file_has(log, "did not confirm")); // it left on our Pong
}

static void test_node_config_file(void **st) {
    (void)st;
    char pub[64], conf[400], key[400], log[400];
    mh_mesh_node_key(&s_m, "fromconf", pub, sizeof pub);
    int port = mh_free_port();
    snprintf(conf, sizeof conf, "%s/node.conf", s_m.dir);
    snprintf(key, sizeof key, "%s/fromconf.key", s_m.dir);
    snprintf(log, sizeof log, "%s/fromconf.log", s_m.dir);
    FILE *f = fopen(conf, "w");
    fprintf(f,
            "# node config\n[node]\nlisten = tcp://127.0.0.1:%d\nkey = %s\n"
            "trust = %s\nmodel = %s\nmem-limit = 256M\nctx-limit = 1024\n"
            "heartbeat-ms = 100\nname = fromconf\n",
            port, key, s_m.pub, s_model);
    fclose(f);
    char *argv[] = {s_m.node_bin, "--config", conf, NULL};
    mh_spawn(log, argv);
    assert_int_equal(mh_mesh_add(&s_m, "fromconf", port, pub), 200);
    char node[64];
    for (int i = 0; i < 500; i++) {
        mh_node_state(s_m.port, s_m.token, "fromconf", node, sizeof node);
        if (strcmp(node, "up") == 0)
            break;
        usleep(10000);
    }
    assert_string_equal(node, "up");
    cJSON *js = NULL;
    assert_int_equal(mh_mesh_call(&s_m, "POST", "/admin/v1/route",
                                  "{\"model\":\"tiny\",\"tokens\":1000}", &js),
                     200);
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(js, "node")), "fromconf");
    cJSON_Delete(js);
    // Its ctx-limit of 1024 came from the file too.
    assert_int_equal(mh_mesh_call(&s_m, "POST", "/admin/v1/route",
                                  "{\"model\":\"tiny\",\"tokens\":2000}", &js),
                     200);
    assert_string_not_equal(cJSON_GetStringValue(cJSON_GetObjectItem(js, "node")), "fromconf");
    cJSON_Delete(js);
    // A bad line in a config file: one clear line naming file and line.
    f = fopen(conf, "w");
    fprintf(f, "listen = tcp://127.0.0.1:1\nbogus-option = 3\n");
    fclose(f);
    char out[2048];
    assert_int_equal(mh_run(argv, out, sizeof out, 10000), 2);
    assert_non_null(strstr(out, "node.conf:2"));
    assert_non_null(strstr(out, "bogus-option"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_untrusted_coordinator_refused),
        cmocka_unit_test(test_wrong_server_key),
        cmocka_unit_test(test_admin_token),
        cmocka_unit_test(test_readable_key_files_refused),
        cmocka_unit_test(test_node_protocol_faults),
        cmocka_unit_test(test_node_config_file),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
