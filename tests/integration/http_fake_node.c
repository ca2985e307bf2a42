// SPDX-License-Identifier: MIT
// http_fake_node: a mesh node that speaks the real wire protocol (ZeroMQ
// ROUTER, CURVE server, protobuf envelopes, heartbeats) but "generates" a
// scripted GLM-style reply instead of running a model. It lets the HTTP
// tests drive exact GLM output conventions (<think>, <tool_call>, tags split
// across chunks) and observe cancellation, independent of model weights.
//
// Script, chosen from the request:
//   last message from role "tool"        -> reasoning, then a plain answer
//   tools given and "weather" in a user  -> reasoning, then a get_weather call
//   "SLOW" anywhere                      -> endless text, one piece per 50 ms
//   otherwise                            -> reasoning (if thinking), a greeting
// Text goes out in 3-byte pieces (never splitting a UTF-8 character), one
// piece per token id, so tags always straddle chunks.
#include "mesh_keys.h"
#include "mesh_err.h"
#include "mesh_wire.h"

#include <cjson/cJSON.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#define S_MAX_GENS 256

typedef struct {
    int used;
    uint8_t rid[256];
    size_t rid_len;
    uint64_t id;
    char *script;        // owned
    size_t pos, len;     // bytes
    uint32_t emitted, max_tokens, index, prompt_tokens;
    int endless, logprobs;
    uint32_t top_logprobs;  // alternatives asked per token
    int64_t next_ms, step_ms;
} s_gen_t;

static volatile sig_atomic_t s_stop;
static void s_sig(int s) {
    (void)s;
    s_stop = 1;
}

static int64_t s_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *s_default =
    "Hello from the fake node! Grüße, 你好. This reply is long enough to be cut by "
    "max_tokens when a client asks for few tokens; otherwise it ends here.";

static char *s_pick(const Mesh__GenerateRequest *g, int *endless) {
    const char *think = "Let me think about this.</think>";
    int thinking = 0, tool_last = 0, weather = 0, slow = 0;
    if (g->input_case == MESH__GENERATE_REQUEST__INPUT_CHAT && g->chat) {
        thinking = g->chat->enable_thinking;
        cJSON *msgs = cJSON_Parse(g->chat->messages_json);
        const cJSON *m;
        cJSON_ArrayForEach(m, msgs) {
            const char *role = cJSON_GetStringValue(cJSON_GetObjectItem(m, "role"));
            const char *c = cJSON_GetStringValue(cJSON_GetObjectItem(m, "content"));
            tool_last = role && strcmp(role, "tool") == 0;
            if (c && strstr(c, "weather"))
                weather = 1;
            if (c && strstr(c, "SLOW"))
                slow = 1;
        }
        cJSON_Delete(msgs);
        if (!g->chat->tools_json || !*g->chat->tools_json)
            weather = 0;
    } else if (g->input_case == MESH__GENERATE_REQUEST__INPUT_PROMPT && g->prompt) {
        slow = strstr(g->prompt, "SLOW") != NULL;
    }
    *endless = slow;
    const char *body;
    if (slow)
        body = "more text ";
    else if (tool_last)
        body = "The weather in Tokyo is 21 degrees.";
    else if (weather)
        body = "\n<tool_call>get_weather\n<arg_key>location</arg_key>\n<arg_value>Tokyo"
               "</arg_value>\n<arg_key>days</arg_key>\n<arg_value>2</arg_value>\n</tool_call>";
    else
        body = s_default;
    size_t n = strlen(think) + strlen(body) + 1;
    char *s = malloc(n);
    if (s)
        snprintf(s, n, "%s%s", thinking && !slow ? think : "", body);
    return s;
}

static void s_done(void *sock, s_gen_t *gn, const char *reason) {
    Mesh__Envelope env = MESH__ENVELOPE__INIT;
    Mesh__GenerateDone d = MESH__GENERATE_DONE__INIT;
    d.request_id = gn->id;
    d.finish_reason = (char *)reason;
    d.prompt_tokens = gn->prompt_tokens;
    d.completion_tokens = gn->emitted;
    env.kind_case = MESH__ENVELOPE__KIND_DONE;
    env.done = &d;
    mesh_wire_send(sock, gn->rid, gn->rid_len, &env, 0);
    free(gn->script);
    memset(gn, 0, sizeof *gn);
}

static void s_step(void *sock, s_gen_t *gn) {
    if (!gn->endless && gn->pos >= gn->len) {
        s_done(sock, gn, "stop");
        return;
    }
    if (gn->emitted >= gn->max_tokens) {
        s_done(sock, gn, "length");
        return;
    }
    if (gn->endless && gn->pos >= gn->len)
        gn->pos = 0;
    size_t n = 3;
    if (gn->pos + n > gn->len)
        n = gn->len - gn->pos;
    while (gn->pos + n < gn->len && ((unsigned char)gn->script[gn->pos + n] & 0xC0) == 0x80)
        n++;
    char piece[16];
    memcpy(piece, gn->script + gn->pos, n);
    piece[n] = 0;
    gn->pos += n;
    Mesh__Envelope env = MESH__ENVELOPE__INIT;
    Mesh__TokenChunk k = MESH__TOKEN_CHUNK__INIT;
    int32_t id = (int32_t)(gn->emitted % 2000);
    float lp = -0.25f * (float)(1 + gn->emitted % 3);
    k.request_id = gn->id;
    k.n_ids = 1;
    k.ids = &id;
    k.text = piece;
    k.index = gn->index++;
    // Logprobs: the piece is the token's own bytes; alternatives are the
    // token itself (greedy: it is the most likely), then made-up ones 0.5
    // apart, the first of them half a UTF-8 character (bytes-safe output).
    Mesh__TokenInfo info = MESH__TOKEN_INFO__INIT, *infop = &info;
    Mesh__TokenLogprob alt[20], *altp[20];
    char alt_text[20][8];
    if (gn->logprobs) {
        k.n_logprobs = 1;
        k.logprobs = &lp;
        info.piece = (ProtobufCBinaryData){n, (uint8_t *)piece};
        uint32_t na = gn->top_logprobs < 20 ? gn->top_logprobs : 20;
        for (uint32_t j = 0; j < na; j++) {
            mesh__token_logprob__init(&alt[j]);
            alt[j].id = j == 0 ? id : 3000 + (int32_t)j;
            alt[j].logprob = lp - 0.5f * (float)j;
            if (j == 0)
                alt[j].piece = info.piece;
            else if (j == 1)
                alt[j].piece = (ProtobufCBinaryData){2, (uint8_t *)"\xe4\xbd"};
            else
                alt[j].piece = (ProtobufCBinaryData){
                    (size_t)snprintf(alt_text[j], sizeof alt_text[j], " alt%u", j),
                    (uint8_t *)alt_text[j]};
            altp[j] = &alt[j];
        }
        info.n_top = na;
        info.top = altp;
        k.n_info = 1;
        k.info = &infop;
    }
    env.kind_case = MESH__ENVELOPE__KIND_CHUNK;
    env.chunk = &k;
    mesh_wire_send(sock, gn->rid, gn->rid_len, &env, 0);
    gn->emitted++;
}

int main(int argc, char **argv) {
    const char *key = "fake-node.key", *bind = "tcp://127.0.0.1:*", *info = NULL;
    const char *name = "fake", *model = "glm-tiny", *cancel_log = NULL;
    uint32_t ctx = 4096;
    static const struct option lo[] = {{"key", 1, 0, 'k'},   {"bind", 1, 0, 'b'},
                                       {"info-file", 1, 0, 'i'}, {"name", 1, 0, 'n'},
                                       {"model", 1, 0, 'm'}, {"ctx", 1, 0, 'c'},
                                       {"cancel-log", 1, 0, 'C'}, {"help", 0, 0, 'h'},
                                       {0, 0, 0, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        switch (ch) {
        case 'k': key = optarg; break;
        case 'b': bind = optarg; break;
        case 'i': info = optarg; break;
        case 'n': name = optarg; break;
        case 'm': model = optarg; break;
        case 'c': ctx = (uint32_t)strtoul(optarg, NULL, 10); break;
        case 'C': cancel_log = optarg; break;
        case 'h':
            printf("usage: http_fake_node [--key F] [--bind EP] [--info-file F] [--name N]\n"
                   "                      [--model M] [--ctx N] [--cancel-log F]\n"
                   "A scripted mesh node for the HTTP endpoint tests. --info-file gets the\n"
                   "bound endpoint and the public key, one per line.\n");
            return 0;
        default: fprintf(stderr, "http_fake_node: bad option (see --help)\n"); return 2;
        }
    }
    char err[256];
    struct {
        char pub[MESH_KEY_Z85_LEN + 1], sec[MESH_KEY_Z85_LEN + 1];
    } kp;
    if (mesh_keys_load_or_create(key, kp.pub, kp.sec)) {
        fprintf(stderr, "http_fake_node: %s\n", mesh_keys_last_error());
        return 1;
    }
    void *ctxz = zmq_ctx_new(), *sock = zmq_socket(ctxz, ZMQ_ROUTER);
    int one = 1, zero = 0;
    zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(sock, ZMQ_CURVE_SERVER, &one, sizeof one);
    // A ROUTER drops messages to a peer over its high-water mark; 64 streams
    // against a slow (sanitized) coordinator can get there, and a dropped
    // chunk is a gap in a stream. No limit: the test's volume is bounded.
    zmq_setsockopt(sock, ZMQ_SNDHWM, &zero, sizeof zero);
    zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, kp.sec, MESH_KEY_Z85_LEN);
    if (zmq_bind(sock, bind) != 0) {
        fprintf(stderr, "http_fake_node: cannot bind %s: %s\n", bind, zmq_strerror(zmq_errno()));
        return 1;
    }
    char ep[256];
    size_t epl = sizeof ep;
    zmq_getsockopt(sock, ZMQ_LAST_ENDPOINT, ep, &epl);
    if (info) {
        char tmp[4096];
        snprintf(tmp, sizeof tmp, "%s.tmp", info);
        FILE *f = fopen(tmp, "w");
        if (!f || fprintf(f, "%s\n%s\n", ep, kp.pub) < 0 || fclose(f) || rename(tmp, info)) {
            fprintf(stderr, "http_fake_node: cannot write %s\n", info);
            return 1;
        }
    }
    signal(SIGTERM, s_sig);
    signal(SIGINT, s_sig);
    static s_gen_t gens[S_MAX_GENS];
    uint8_t peer[256];
    size_t peer_len = 0;
    int64_t next_hb = 0;
    uint64_t hb_seq = 0;
    while (!s_stop) {
        int64_t now = s_ms();
        if (peer_len && now >= next_hb) {
            Mesh__Envelope env = MESH__ENVELOPE__INIT;
            Mesh__Heartbeat hb = MESH__HEARTBEAT__INIT;
            uint32_t active = 0;
            for (int i = 0; i < S_MAX_GENS; i++)
                active += gens[i].used;
            hb.mem_free = 8ull << 30;
            hb.active = active;
            hb.seq = ++hb_seq;
            hb.interval_ms = 200;
            env.kind_case = MESH__ENVELOPE__KIND_HEARTBEAT;
            env.heartbeat = &hb;
            mesh_wire_send(sock, peer, peer_len, &env, 1);
            next_hb = now + 200;
        }
        for (int i = 0; i < S_MAX_GENS; i++)
            if (gens[i].used && now >= gens[i].next_ms) {
                gens[i].next_ms = now + gens[i].step_ms;
                s_step(sock, &gens[i]);
            }
        zmq_pollitem_t it = {sock, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, 2) <= 0)
            continue;
        uint8_t rid[256];
        int rl = zmq_recv(sock, rid, sizeof rid, ZMQ_DONTWAIT);
        if (rl <= 0 || rl > (int)sizeof rid)
            continue;
        static uint8_t buf[MESH_WIRE_MAX_BYTES];
        int len = zmq_recv(sock, buf, sizeof buf, 0);
        if (len < 0 || len > (int)sizeof buf)
            continue;
        Mesh__Envelope *env = NULL;
        if (mesh_wire_unpack(buf, (size_t)len, &env, err, sizeof err)) {
            mesh_wire_free(&env);
            continue;
        }
        if (env->kind_case == MESH__ENVELOPE__KIND_HELLO) {
            memcpy(peer, rid, (size_t)rl);
            peer_len = (size_t)rl;
            Mesh__Envelope out = MESH__ENVELOPE__INIT;
            Mesh__Capabilities caps = MESH__CAPABILITIES__INIT;
            Mesh__Device dev = MESH__DEVICE__INIT, *devp = &dev;
            Mesh__ModelInfo mi = MESH__MODEL_INFO__INIT, *mip = &mi;
            dev.name = (char *)"cpu";
            dev.arch = (char *)"cpu";
            dev.mem_total = 16ull << 30;
            dev.mem_free = 8ull << 30;
            mi.name = (char *)model;
            mi.arch = (char *)"deepseek2";
            mi.quant = (char *)"bf16";
            mi.file_size = 1 << 20;
            mi.ctx_limit = ctx;
            mi.kv_bytes_per_token = 1024;
            mi.decode_tps = 100;
            mi.can_generate = 1;
            caps.node_name = (char *)name;
            caps.sw_version = (char *)"fake";
            caps.proto_version = MESH_PROTO_VERSION;
            caps.backend = (char *)"cpu";
            caps.n_devices = 1;
            caps.devices = &devp;
            caps.n_models = 1;
            caps.models = &mip;
            out.kind_case = MESH__ENVELOPE__KIND_CAPABILITIES;
            out.capabilities = &caps;
            mesh_wire_send(sock, rid, (size_t)rl, &out, 1);
            next_hb = 0;
        } else if (env->kind_case == MESH__ENVELOPE__KIND_TOKENIZE) {
            // Scripts are picked from the request's text, so this stand-in
            // does not tokenize: the coordinator then routes on its estimate
            // and sends the text itself.
            mesh_wire_send_error(sock, rid, (size_t)rl, MESH_EUNSUPPORTED,
                                 env->tokenize->request_id, "fake node: no tokenizer");
        } else if (env->kind_case == MESH__ENVELOPE__KIND_GENERATE) {
            const Mesh__GenerateRequest *g = env->generate;
            int slot = -1;
            for (int i = 0; i < S_MAX_GENS && slot < 0; i++)
                if (!gens[i].used)
                    slot = i;
            if (slot < 0) {
                mesh_wire_send_error(sock, rid, (size_t)rl, MESH_EBUSY, g->request_id, "full");
            } else {
                s_gen_t *gn = &gens[slot];
                gn->script = s_pick(g, &gn->endless);
                gn->used = gn->script != NULL;
                memcpy(gn->rid, rid, (size_t)rl);
                gn->rid_len = (size_t)rl;
                gn->id = g->request_id;
                gn->len = gn->script ? strlen(gn->script) : 0;
                gn->max_tokens = g->sampling ? g->sampling->max_tokens : 16;
                gn->logprobs = g->sampling && g->sampling->logprobs;
                gn->top_logprobs = g->sampling ? g->sampling->top_logprobs : 0;
                gn->index = g->index_base;
                gn->prompt_tokens = 7;
                if (g->input_case == MESH__GENERATE_REQUEST__INPUT_CHAT && g->chat)
                    gn->prompt_tokens = (uint32_t)strlen(g->chat->messages_json) / 4 + 1;
                gn->step_ms = gn->endless ? 50 : 1;
                gn->next_ms = now;
            }
        } else if (env->kind_case == MESH__ENVELOPE__KIND_CANCEL) {
            for (int i = 0; i < S_MAX_GENS; i++)
                if (gens[i].used && gens[i].id == env->cancel->request_id) {
                    if (cancel_log) {
                        FILE *f = fopen(cancel_log, "a");
                        if (f) {
                            fprintf(f, "cancel %llu after %u tokens\n",
                                    (unsigned long long)gens[i].id, gens[i].emitted);
                            fclose(f);
                        }
                    }
                    s_done(sock, &gens[i], "cancel");
                }
        } else if (env->kind_case == MESH__ENVELOPE__KIND_PING) {
            Mesh__Envelope out = MESH__ENVELOPE__INIT;
            Mesh__Pong pg = MESH__PONG__INIT;
            pg.nonce = env->ping->nonce;
            out.kind_case = MESH__ENVELOPE__KIND_PONG;
            out.pong = &pg;
            mesh_wire_send(sock, rid, (size_t)rl, &out, 1);
        }
        mesh_wire_free(&env);
    }
    for (int i = 0; i < S_MAX_GENS; i++)
        free(gens[i].script);
    zmq_close(sock);
    zmq_ctx_term(ctxz);
    return 0;
}
