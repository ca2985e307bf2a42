// SPDX-License-Identifier: MIT
// Routing overhead: the time the coordinator adds to a one-token request.
//
// A minimal node (a thread here, speaking the real protocol over CURVE on
// 127.0.0.1) answers each GenerateRequest with one TokenChunk and a
// GenerateDone at once. Baseline: a client talking to that node directly.
// Measured: the same request through the coordinator core (submit ->
// routing -> node -> stream callback -> on_done), as the HTTP layers use it.
// Overhead = coordinator latency - direct latency, at p50 and p99, over
// 1000 requests each (after 100 warm-up requests).
//
// usage: bench_routing [N]
#include "coord_core.h"
#include "mesh_keys.h"
#include "mesh_err.h"
#include "mesh_log.h"
#include "mesh_wire.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

typedef struct {
    char pub[MESH_KEY_Z85_LEN + 1], sec[MESH_KEY_Z85_LEN + 1];
} s_keypair_t;

static s_keypair_t s_node_kp;
static char s_addr[64];
static atomic_int s_stop;
static void *s_zctx;

static double s_now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static void *s_node(void *arg) {
    void *s = arg;
    static uint8_t buf[1 << 16];
    while (!atomic_load(&s_stop)) {
        zmq_pollitem_t it = {s, 0, ZMQ_POLLIN, 0};
        zmq_poll(&it, 1, 20);
        uint8_t rid[256];
        int rl;
        while ((rl = zmq_recv(s, rid, sizeof rid, ZMQ_DONTWAIT)) > 0) {
            int n = zmq_recv(s, buf, sizeof buf, 0);
            Mesh__Envelope *in = NULL;
            char err[128];
            if (n < 0 || mesh_wire_unpack(buf, (size_t)n, &in, err, sizeof err)) {
                mesh_wire_free(&in);
                continue;
            }
            if (in->kind_case == MESH__ENVELOPE__KIND_HELLO) {
                Mesh__Envelope e = MESH__ENVELOPE__INIT;
                Mesh__Capabilities c = MESH__CAPABILITIES__INIT;
                Mesh__Device d = MESH__DEVICE__INIT, *dp = &d;
                Mesh__ModelInfo m = MESH__MODEL_INFO__INIT, *mp = &m;
                d.name = "bench";
                d.arch = "cpu";
                d.mem_total = d.mem_free = 1ull << 30;
                m.name = "tiny";
                m.arch = "deepseek2";
                m.quant = "q8_0";
                m.ctx_limit = 8192;
                m.kv_bytes_per_token = 640;
                c.node_name = "bench";
                c.backend = "cpu";
                c.n_devices = 1;
                c.devices = &dp;
                c.n_models = 1;
                c.models = &mp;
                e.kind_case = MESH__ENVELOPE__KIND_CAPABILITIES;
                e.capabilities = &c;
                mesh_wire_send(s, rid, (size_t)rl, &e, 0);
            } else if (in->kind_case == MESH__ENVELOPE__KIND_GENERATE) {
                int32_t tok = 7;
                Mesh__Envelope e = MESH__ENVELOPE__INIT;
                Mesh__TokenChunk k = MESH__TOKEN_CHUNK__INIT;
                k.request_id = in->generate->request_id;
                k.n_ids = 1;
                k.ids = &tok;
                k.text = "x";
                e.kind_case = MESH__ENVELOPE__KIND_CHUNK;
                e.chunk = &k;
                mesh_wire_send(s, rid, (size_t)rl, &e, 0);
                Mesh__Envelope e2 = MESH__ENVELOPE__INIT;
                Mesh__GenerateDone dn = MESH__GENERATE_DONE__INIT;
                dn.request_id = in->generate->request_id;
                dn.finish_reason = "length";
                e2.kind_case = MESH__ENVELOPE__KIND_DONE;
                e2.done = &dn;
                mesh_wire_send(s, rid, (size_t)rl, &e2, 0);
            }
            mesh_wire_free(&in);
        }
    }
    return NULL;
}

static int s_cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double s_pct(double *v, int n, double p) {
    int i = (int)(p * (n - 1) + 0.5);
    return v[i];
}

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done, status;
} s_wait_t;

static void s_on_done(void *u, int status, const char *d, uint32_t a, uint32_t b) {
    (void)d, (void)a, (void)b;
    s_wait_t *w = u;
    pthread_mutex_lock(&w->mu);
    w->done = 1;
    w->status = status;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 1000;
    if (n < 10 || n > 1000000) {
        fprintf(stderr, "bench_routing: N must be 10..1000000\n");
        return 2;
    }
    mesh_log_set_level(MESH_LOG_WARN); // one INFO line per request would dominate
    char dir[] = "/tmp/mesh_bench_XXXXXX";
    if (!mkdtemp(dir))
        return 1;
    char path[256], err[256];
    snprintf(path, sizeof path, "%s/node.key", dir);
    if (mesh_keys_load_or_create(path, s_node_kp.pub, s_node_kp.sec)) {
        fprintf(stderr, "bench_routing: %s\n", mesh_keys_last_error());
        return 1;
    }
    s_zctx = zmq_ctx_new();
    void *srv = zmq_socket(s_zctx, ZMQ_ROUTER);
    int one = 1, zero = 0;
    zmq_setsockopt(srv, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(srv, ZMQ_CURVE_SERVER, &one, sizeof one);
    zmq_setsockopt(srv, ZMQ_CURVE_SECRETKEY, s_node_kp.sec, 40);
    if (zmq_bind(srv, "tcp://127.0.0.1:*") != 0) {
        fprintf(stderr, "bench_routing: cannot bind\n");
        return 1;
    }
    size_t al = sizeof s_addr;
    zmq_getsockopt(srv, ZMQ_LAST_ENDPOINT, s_addr, &al);
    pthread_t th;
    pthread_create(&th, NULL, s_node, srv);

    // Direct baseline.
    s_keypair_t ckp;
    snprintf(path, sizeof path, "%s/client.key", dir);
    mesh_keys_load_or_create(path, ckp.pub, ckp.sec);
    void *cli = zmq_socket(s_zctx, ZMQ_DEALER);
    zmq_setsockopt(cli, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(cli, ZMQ_CURVE_SERVERKEY, s_node_kp.pub, 40);
    zmq_setsockopt(cli, ZMQ_CURVE_PUBLICKEY, ckp.pub, 40);
    zmq_setsockopt(cli, ZMQ_CURVE_SECRETKEY, ckp.sec, 40);
    zmq_connect(cli, s_addr);
    double *direct = calloc((size_t)n, sizeof *direct), *via = calloc((size_t)n, sizeof *via);
    int32_t prompt[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    static uint8_t buf[1 << 16];
    for (int i = -100; i < n; i++) {
        Mesh__Envelope e = MESH__ENVELOPE__INIT;
        Mesh__GenerateRequest g = MESH__GENERATE_REQUEST__INIT;
        Mesh__Sampling sp = MESH__SAMPLING__INIT;
        Mesh__TokenIds ids = MESH__TOKEN_IDS__INIT;
        ids.n_ids = 8;
        ids.ids = prompt;
        sp.max_tokens = 1;
        g.request_id = (uint64_t)(i + 1000);
        g.model = "tiny";
        g.input_case = MESH__GENERATE_REQUEST__INPUT_TOKENS;
        g.tokens = &ids;
        g.sampling = &sp;
        e.kind_case = MESH__ENVELOPE__KIND_GENERATE;
        e.generate = &g;
        double t0 = s_now_us();
        mesh_wire_send(cli, NULL, 0, &e, 0);
        for (;;) {
            int len = zmq_recv(cli, buf, sizeof buf, 0);
            Mesh__Envelope *in = NULL;
            if (len > 0 && mesh_wire_unpack(buf, (size_t)len, &in, err, sizeof err) == 0 &&
                in->kind_case == MESH__ENVELOPE__KIND_DONE) {
                mesh_wire_free(&in);
                break;
            }
            mesh_wire_free(&in);
        }
        if (i >= 0)
            direct[i] = s_now_us() - t0;
    }
    zmq_close(cli);

    // Through the coordinator core.
    char state[256], ckey[256];
    snprintf(state, sizeof state, "%s/state.json", dir);
    snprintf(ckey, sizeof ckey, "%s/coord.key", dir);
    // This node sends no heartbeats: a long interval keeps it alive here.
    mesh_coord_opts_t co = {.state_path = state, .key_path = ckey, .heartbeat_ms = 60000};
    mesh_coord_t *c = NULL;
    if (mesh_coord_new(&co, &c, err, sizeof err) ||
        mesh_coord_node_add(c, s_addr, s_node_kp.pub, "bench", err, sizeof err) ||
        mesh_coord_wait_up(c, 1, 5000) != 1) {
        fprintf(stderr, "bench_routing: coordinator did not reach the node: %s\n", err);
        return 1;
    }
    mesh_coord_request_t rq = {.model = "tiny", .prompt_ids = prompt, .n_prompt_ids = 8,
                               .max_tokens = 1};
    mesh_coord_stream_t cb = {NULL, NULL, s_on_done};
    int failures = 0;
    for (int i = -100; i < n; i++) {
        s_wait_t w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};
        double t0 = s_now_us();
        if (mesh_coord_submit(c, &rq, &cb, &w, NULL, err, sizeof err)) {
            fprintf(stderr, "bench_routing: submit: %s\n", err);
            return 1;
        }
        pthread_mutex_lock(&w.mu);
        while (!w.done)
            pthread_cond_wait(&w.cv, &w.mu);
        pthread_mutex_unlock(&w.mu);
        if (i >= 0)
            via[i] = s_now_us() - t0;
        failures += w.status != 0;
    }
    mesh_coord_destroy(&c);
    atomic_store(&s_stop, 1);
    pthread_join(th, NULL);
    zmq_close(srv);
    zmq_ctx_term(s_zctx);

    qsort(direct, (size_t)n, sizeof *direct, s_cmp);
    qsort(via, (size_t)n, sizeof *via, s_cmp);
    double d50 = s_pct(direct, n, 0.5), d99 = s_pct(direct, n, 0.99);
    double v50 = s_pct(via, n, 0.5), v99 = s_pct(via, n, 0.99);
    printf("one-token request, %d requests each, CURVE over 127.0.0.1\n", n);
    printf("  direct to node     p50 %8.1f us   p99 %8.1f us\n", d50, d99);
    printf("  via coordinator    p50 %8.1f us   p99 %8.1f us\n", v50, v99);
    printf("  routing overhead   p50 %8.1f us   p99 %8.1f us   (ratio via/direct p50 %.2fx)\n",
           v50 - d50, v99 - d99, v50 / d50);
    printf("  target: overhead p99 < 1000 us: %s; failed requests: %d\n",
           v99 - d99 < 1000.0 ? "met" : "MISSED", failures);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "bench_routing: could not remove %s\n", dir);
    free(direct);
    free(via);
    return failures ? 1 : 0;
}
