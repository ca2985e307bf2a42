// SPDX-License-Identifier: MIT
// mesh_fake_node: a test stand-in that speaks the node side of the mesh
// protocol, so coordinator failover and bad-input handling can be tested
// while meshnode cannot generate (no engine in this build). Test-only.
//
// Its "model" is deterministic: the next token is a hash of the whole
// context (prompt ids, then every token so far), like greedy decoding of a
// real model. A replay that hands over prompt + tokens already sent thus
// continues exactly where the dead node stopped, and any mistake in the
// replay changes every later token.
//
// --die-after K: SIGKILL itself after sending K tokens of a request (0:
// on receiving it, before any token). --garbage: before its capabilities,
// send the coordinator a malformed message, one of an unknown kind, one
// from a newer protocol version and an oversized one.
#include "mesh_keys.h"
#include "mesh_err.h"
#include "mesh_wire.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

typedef struct {
    char pub[MESH_KEY_Z85_LEN + 1], sec[MESH_KEY_Z85_LEN + 1];
} s_keypair_t;

static int64_t s_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

// FNV-1a over the context, folded into a vocabulary of 2000.
static int32_t s_next(const int32_t *ctx, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (uint32_t)ctx[i];
        h *= 1099511628211ull;
    }
    return (int32_t)(h % 2000) + 1;
}

int main(int argc, char **argv) {
    const char *listen = NULL, *key = NULL, *name = "fake", *model = "tiny", *quant = "q8_0";
    long long mem = 1 << 30;
    int die_after = -1, hb_ms = 100, token_ms = 5, garbage = 0, ctx = 8192;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--garbage")) {
            garbage = 1;
            continue;
        }
        if (!v) {
            fprintf(stderr, "fake_node: %s needs a value\n", a);
            return 2;
        }
        i++;
        if (!strcmp(a, "--listen")) listen = v;
        else if (!strcmp(a, "--key")) key = v;
        else if (!strcmp(a, "--name")) name = v;
        else if (!strcmp(a, "--model")) model = v;
        else if (!strcmp(a, "--quant")) quant = v;
        else if (!strcmp(a, "--mem")) mem = atoll(v);
        else if (!strcmp(a, "--ctx")) ctx = atoi(v);
        else if (!strcmp(a, "--die-after")) die_after = atoi(v);
        else if (!strcmp(a, "--heartbeat-ms")) hb_ms = atoi(v);
        else if (!strcmp(a, "--token-ms")) token_ms = atoi(v);
        else {
            fprintf(stderr, "fake_node: unknown option %s\n", a);
            return 2;
        }
    }
    if (!listen || !key) {
        fprintf(stderr, "usage: mesh_fake_node --listen ADDR --key FILE [options]\n");
        return 2;
    }
    s_keypair_t kp;
    char err[256];
    if (mesh_keys_load_or_create(key, kp.pub, kp.sec)) {
        fprintf(stderr, "fake_node: %s\n", mesh_keys_last_error());
        return 1;
    }
    void *zctx = zmq_ctx_new(), *s = zmq_socket(zctx, ZMQ_ROUTER);
    int one = 1, zero = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(s, ZMQ_CURVE_SERVER, &one, sizeof one);
    zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, kp.sec, 40);
    if (zmq_bind(s, listen) != 0) {
        fprintf(stderr, "fake_node: cannot bind %s\n", listen);
        return 1;
    }
    uint8_t peer[256];
    size_t peer_len = 0;
    static uint8_t buf[1 << 20];
    int64_t next_hb = s_now_ms();
    for (;;) {
        zmq_pollitem_t it = {s, 0, ZMQ_POLLIN, 0};
        int64_t wait = next_hb - s_now_ms();
        zmq_poll(&it, 1, wait < 0 ? 0 : (long)wait);
        if (peer_len && s_now_ms() >= next_hb) {
            Mesh__Envelope env = MESH__ENVELOPE__INIT;
            Mesh__Heartbeat h = MESH__HEARTBEAT__INIT;
            h.mem_free = (uint64_t)mem;
            h.interval_ms = (uint32_t)hb_ms;
            env.kind_case = MESH__ENVELOPE__KIND_HEARTBEAT;
            env.heartbeat = &h;
            mesh_wire_send(s, peer, peer_len, &env, 1);
        }
        if (s_now_ms() >= next_hb)
            next_hb = s_now_ms() + hb_ms;
        if (!(it.revents & ZMQ_POLLIN))
            continue;
        uint8_t rid[256];
        int rl = zmq_recv(s, rid, sizeof rid, 0);
        int len = zmq_recv(s, buf, sizeof buf, 0);
        if (rl <= 0 || len < 0 || len > (int)sizeof buf)
            continue;
        Mesh__Envelope *in = NULL;
        if (mesh_wire_unpack(buf, (size_t)len, &in, err, sizeof err)) {
            mesh_wire_free(&in);
            continue;
        }
        if (in->kind_case == MESH__ENVELOPE__KIND_HELLO) {
            memcpy(peer, rid, (size_t)rl);
            peer_len = (size_t)rl;
            if (garbage) {
                const uint8_t bad[] = {0x08};
                const uint8_t unknown[] = {0x08, 0x01, 0x9a, 0x06, 0x00};
                zmq_send(s, peer, peer_len, ZMQ_SNDMORE);
                zmq_send(s, bad, sizeof bad, 0);
                zmq_send(s, peer, peer_len, ZMQ_SNDMORE);
                zmq_send(s, unknown, sizeof unknown, 0);
                Mesh__Envelope nv = MESH__ENVELOPE__INIT;
                Mesh__Pong pong = MESH__PONG__INIT;
                nv.protocol_version = MESH_PROTO_VERSION + 1;
                nv.kind_case = MESH__ENVELOPE__KIND_PONG;
                nv.pong = &pong;
                mesh_wire_send(s, peer, peer_len, &nv, 0);
                size_t big = MESH_WIRE_MAX_BYTES + 100;
                uint8_t *huge = calloc(1, big);
                zmq_send(s, peer, peer_len, ZMQ_SNDMORE);
                zmq_send(s, huge, big, 0);
                free(huge);
                // A chunk for a request that does not exist.
                Mesh__Envelope ch = MESH__ENVELOPE__INIT;
                Mesh__TokenChunk k = MESH__TOKEN_CHUNK__INIT;
                int32_t id = 7;
                k.request_id = 987654;
                k.n_ids = 1;
                k.ids = &id;
                ch.kind_case = MESH__ENVELOPE__KIND_CHUNK;
                ch.chunk = &k;
                mesh_wire_send(s, peer, peer_len, &ch, 0);
            }
            Mesh__Envelope env = MESH__ENVELOPE__INIT;
            Mesh__Capabilities c = MESH__CAPABILITIES__INIT;
            Mesh__Device d = MESH__DEVICE__INIT, *dp = &d;
            Mesh__ModelInfo m = MESH__MODEL_INFO__INIT, *mp = &m;
            d.name = "fake";
            d.arch = "cpu";
            d.mem_total = d.mem_free = (uint64_t)mem;
            m.name = (char *)model;
            m.arch = "deepseek2";
            m.quant = (char *)quant;
            m.ctx_limit = (uint32_t)ctx;
            m.kv_bytes_per_token = 640;
            m.decode_tps = 100;
            m.can_generate = 1;
            c.node_name = (char *)name;
            c.sw_version = "fake";
            c.proto_version = MESH_PROTO_VERSION;
            c.backend = "cpu";
            c.n_devices = 1;
            c.devices = &dp;
            c.n_models = 1;
            c.models = &mp;
            env.kind_case = MESH__ENVELOPE__KIND_CAPABILITIES;
            env.capabilities = &c;
            mesh_wire_send(s, peer, peer_len, &env, 0);
        } else if (in->kind_case == MESH__ENVELOPE__KIND_GENERATE) {
            const Mesh__GenerateRequest *g = in->generate;
            if (die_after == 0)
                raise(SIGKILL);
            if (g->input_case != MESH__GENERATE_REQUEST__INPUT_TOKENS || !g->sampling) {
                mesh_wire_send_error(s, rid, (size_t)rl, MESH_EUNSUPPORTED, g->request_id,
                                     "fake node takes token ids only");
                mesh_wire_free(&in);
                continue;
            }
            size_t n = g->tokens->n_ids + g->n_continue_ids, max = g->sampling->max_tokens;
            int32_t *ctxv = malloc((n + max + 1) * sizeof *ctxv);
            if (g->tokens->n_ids)
                memcpy(ctxv, g->tokens->ids, g->tokens->n_ids * sizeof *ctxv);
            if (g->n_continue_ids)
                memcpy(ctxv + g->tokens->n_ids, g->continue_ids,
                       g->n_continue_ids * sizeof *ctxv);
            for (size_t t = 0; t < max; t++) {
                int32_t tok = s_next(ctxv, n);
                ctxv[n++] = tok;
                Mesh__Envelope env = MESH__ENVELOPE__INIT;
                Mesh__TokenChunk k = MESH__TOKEN_CHUNK__INIT;
                char text[16];
                snprintf(text, sizeof text, "<%d>", tok);
                k.request_id = g->request_id;
                k.n_ids = 1;
                k.ids = &tok;
                k.text = text;
                k.index = g->index_base + (uint32_t)t;
                env.kind_case = MESH__ENVELOPE__KIND_CHUNK;
                env.chunk = &k;
                mesh_wire_send(s, rid, (size_t)rl, &env, 0);
                if (die_after > 0 && (int)t + 1 == die_after) {
                    usleep(20000); // let the chunks leave before dying
                    raise(SIGKILL);
                }
                if (token_ms)
                    usleep((useconds_t)token_ms * 1000);
            }
            free(ctxv);
            Mesh__Envelope env = MESH__ENVELOPE__INIT;
            Mesh__GenerateDone d = MESH__GENERATE_DONE__INIT;
            d.request_id = g->request_id;
            d.finish_reason = "length";
            d.prompt_tokens = (uint32_t)g->tokens->n_ids;
            d.completion_tokens = (uint32_t)max;
            env.kind_case = MESH__ENVELOPE__KIND_DONE;
            env.done = &d;
            mesh_wire_send(s, rid, (size_t)rl, &env, 0);
        } else if (in->kind_case == MESH__ENVELOPE__KIND_PING) {
            Mesh__Envelope env = MESH__ENVELOPE__INIT;
            Mesh__Pong p = MESH__PONG__INIT;
            p.nonce = in->ping->nonce;
            env.kind_case = MESH__ENVELOPE__KIND_PONG;
            env.pong = &p;
            mesh_wire_send(s, rid, (size_t)rl, &env, 0);
        }
        mesh_wire_free(&in);
    }
}
