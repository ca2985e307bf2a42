// SPDX-License-Identifier: MIT
// Coordinator core: registry, node links, routing, streaming and failover.
//
// Threading: one core thread owns the ZeroMQ context's sockets and does all
// network work; everything shared sits under one recursive mutex (recursive
// so a stream callback, which runs under it, may cancel). Callers wake the
// core thread through a pipe. Nodes live in fixed slots so requests can name
// them by index; a removed node frees its slot.
#include "coord_core.h"

#include "coord_route.h"
#include "coord_state.h"
#include "mesh_keys.h"
#include "mesh_err.h"
#include "mesh_log.h"
#include "mesh_wire.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#define S_MAX_NODES MESH_COORD_STATE_MAX_NODES
#define S_MAX_MODELS 16
#define S_MAX_DEVICES 8

enum { S_NODE_CONNECTING = 0, S_NODE_UP, S_NODE_DEAD };
// Text and chat requests are tokenized by a node before routing, so routing
// (context, KV memory) uses the exact prompt length and the chosen node, and
// any replay, get token ids. NONE: ids given or tokenizing done/given up
// (then the byte-length estimate stands).
enum { S_TOK_NONE = 0, S_TOK_NEEDED, S_TOK_ASKED };
#define S_TOK_TIMEOUT_MS 3000
static const char *const s_state_names[] = {"connecting", "up", "dead"};

typedef struct {
    char name[64], arch[32], quant[24];
    uint64_t file_size, kv_per_token; // bytes
    uint32_t ctx_limit;               // tokens
    float prefill_tps, decode_tps;
    int can_generate;
} s_model_t;

typedef struct {
    int used;
    int removing;                     // removed by the admin; core thread closes it
    mesh_coord_state_node_t reg;      // name, address, key, draining (persisted)
    int state;
    void *sock;                       // DEALER; core thread only
    int64_t last_seen_ms, last_hello_ms, up_since_ms;
    uint32_t interval_ms;             // node's heartbeat interval
    char backend[32], sw_version[32], node_name[64];
    uint32_t proto;
    int n_devices;
    struct { char name[64], arch[32]; uint64_t total, free; } dev[S_MAX_DEVICES];
    int n_models;
    s_model_t models[S_MAX_MODELS];
    uint64_t mem_free, mem_total, reserved; // bytes
    uint32_t active, queued;
    float recent_tps;
    int node_draining;                // the node says it drains
    int drain_told;                   // reg.draining as last sent to the node (Drain)
    uint64_t served, failures;
} s_node_t;

typedef struct s_req {
    struct s_req *next;
    uint64_t id;
    uint8_t *packed;                  // the GenerateRequest as submitted (owned)
    size_t packed_len;
    char model[64], quant[24];
    uint64_t est_prompt_tokens;       // exact once tokenized (or token ids given)
    int tok_state;                    // S_TOK_*: asking a node for the exact prompt ids
    int tok_node;                     // node asked, -1 none
    int64_t tok_deadline_ms;
    uint8_t tok_tried[S_MAX_NODES];
    uint32_t max_tokens;
    mesh_coord_stream_t cb;
    void (*on_logprobs)(void *user, const mesh_coord_logprob_t *lp, size_t n); // optional
    uint32_t top_logprobs;            // alternatives per token passed on (node may send more)
    void *user;
    int node;                         // slot serving it, -1: waiting to be routed
    uint64_t kv_reserved;             // bytes reserved on that node until first token
    int32_t *gen;                     // tokens delivered to the client
    size_t n_gen, cap_gen;
    uint8_t exclude[S_MAX_NODES];
    uint32_t attempts;
    int canceled;
    int last_code;
    char last_err[256];
} s_req_t;

struct mesh_coord {
    mesh_coord_opts_t opts;
    char *state_path, *key_path, *name;
    struct {
        char pub[MESH_KEY_Z85_LEN + 1], sec[MESH_KEY_Z85_LEN + 1];
    } kp;
    void *zctx;
    pthread_t thread;
    pthread_mutex_t lock;
    int wake[2];
    atomic_int stop;
    s_node_t nodes[S_MAX_NODES];
    s_req_t *reqs;
    uint64_t next_id;
    uint64_t n_requests, n_failovers, n_errors;
    int64_t started_ms;
};

static int64_t s_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void s_wake(mesh_coord_t *c) {
    char b = 1;
    ssize_t n = write(c->wake[1], &b, 1);
    (void)n; // a full pipe already means "wake up"
}

// ---- node links (core thread) ----

static void s_send_hello(mesh_coord_t *c, s_node_t *nd) {
    Mesh__Envelope env = MESH__ENVELOPE__INIT;
    Mesh__Hello h = MESH__HELLO__INIT;
    h.coord_name = c->name;
    h.sw_version = (char *)"0.1.0";
    env.kind_case = MESH__ENVELOPE__KIND_HELLO;
    env.hello = &h;
    mesh_wire_send(nd->sock, NULL, 0, &env, 1);
    nd->last_hello_ms = s_now_ms();
}

static int s_connect(mesh_coord_t *c, s_node_t *nd) {
    void *s = zmq_socket(c->zctx, ZMQ_DEALER);
    if (!s)
        return MESH_EIO;
    int zero = 0, one = 1, hwm = 10000;
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(s, ZMQ_IMMEDIATE, &one, sizeof one);
    zmq_setsockopt(s, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(s, ZMQ_RCVHWM, &hwm, sizeof hwm);
    int ivl = 200;
    zmq_setsockopt(s, ZMQ_RECONNECT_IVL, &ivl, sizeof ivl);
    if (zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, nd->reg.key, MESH_KEY_Z85_LEN) ||
        zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, c->kp.pub, MESH_KEY_Z85_LEN) ||
        zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, c->kp.sec, MESH_KEY_Z85_LEN) ||
        zmq_connect(s, nd->reg.address) != 0) {
        MESH_WARN("coord: node %s: cannot dial %s: %s", nd->reg.name, nd->reg.address,
                  zmq_strerror(errno));
        zmq_close(s);
        return MESH_EIO;
    }
    nd->sock = s;
    nd->state = S_NODE_CONNECTING;
    nd->last_hello_ms = 0;
    return 0;
}

static void s_req_free(s_req_t *r) {
    free(r->packed);
    free(r->gen);
    free(r);
}

static void s_req_unlink(mesh_coord_t *c, s_req_t *r) {
    for (s_req_t **p = &c->reqs; *p; p = &(*p)->next)
        if (*p == r) {
            *p = r->next;
            return;
        }
}

static void s_release(mesh_coord_t *c, s_req_t *r) {
    if (r->node >= 0 && r->kv_reserved) {
        s_node_t *nd = &c->nodes[r->node];
        nd->reserved = nd->reserved > r->kv_reserved ? nd->reserved - r->kv_reserved : 0;
    }
    r->kv_reserved = 0;
}

// Ends a request: one on_done, then it is gone.
static void s_finish(mesh_coord_t *c, s_req_t *r, int status, const char *detail,
                     uint32_t prompt_tokens) {
    s_release(c, r);
    s_req_unlink(c, r);
    if (status)
        c->n_errors++;
    if (r->cb.on_done)
        r->cb.on_done(r->user, status, detail, prompt_tokens, (uint32_t)r->n_gen);
    s_req_free(r);
}

static void s_fill_route_nodes(mesh_coord_t *c, mesh_route_node_t *rn,
                               mesh_route_model_t rm[][S_MAX_MODELS]) {
    for (int i = 0; i < S_MAX_NODES; i++) {
        s_node_t *nd = &c->nodes[i];
        memset(&rn[i], 0, sizeof rn[i]);
        if (!nd->used || nd->removing)
            continue;
        rn[i].name = nd->reg.name;
        rn[i].up = nd->state == S_NODE_UP;
        rn[i].draining = nd->reg.draining || nd->node_draining;
        rn[i].mem_free = nd->mem_free;
        rn[i].reserved = nd->reserved;
        rn[i].active = nd->active;
        rn[i].queued = nd->queued;
        for (int m = 0; m < nd->n_models; m++) {
            rm[i][m].name = nd->models[m].name;
            rm[i][m].quant = nd->models[m].quant;
            rm[i][m].ctx_limit = nd->models[m].ctx_limit;
            rm[i][m].kv_bytes_per_token = nd->models[m].kv_per_token;
            rm[i][m].decode_tps = nd->models[m].decode_tps;
        }
        rn[i].models = rm[i];
        rn[i].n_models = (size_t)nd->n_models;
    }
}

static void s_dispatch(mesh_coord_t *c, s_req_t *r);

// Asks one live node that serves r's model for the exact prompt ids. Returns
// 1 when asked (r waits for the reply), 0 when no node can be asked (r then
// routes on its byte-length estimate).
static int s_ask_tokenize(mesh_coord_t *c, s_req_t *r) {
    int pick = -1;
    for (int i = 0; i < S_MAX_NODES && pick < 0; i++) {
        s_node_t *nd = &c->nodes[i];
        if (!nd->used || nd->removing || nd->state != S_NODE_UP || r->tok_tried[i])
            continue;
        for (int m = 0; m < nd->n_models; m++)
            if (nd->models[m].can_generate && strcasecmp(nd->models[m].name, r->model) == 0)
                pick = i;
    }
    if (pick < 0) {
        r->tok_state = S_TOK_NONE;
        MESH_INFO("coord: request %llu: no node can tokenize for model %s; routing on the "
                  "byte-length estimate (%llu tokens)", (unsigned long long)r->id, r->model,
                  (unsigned long long)r->est_prompt_tokens);
        return 0;
    }
    Mesh__GenerateRequest *g = mesh__generate_request__unpack(NULL, r->packed_len, r->packed);
    if (!g) {
        r->tok_state = S_TOK_NONE;
        return 0;
    }
    Mesh__TokenizeRequest t = MESH__TOKENIZE_REQUEST__INIT;
    t.request_id = r->id;
    t.model = r->model;
    if (g->input_case == MESH__GENERATE_REQUEST__INPUT_CHAT) {
        t.input_case = MESH__TOKENIZE_REQUEST__INPUT_CHAT;
        t.chat = g->chat;
    } else {
        t.input_case = MESH__TOKENIZE_REQUEST__INPUT_PROMPT;
        t.prompt = g->prompt;
    }
    Mesh__Envelope env = MESH__ENVELOPE__INIT;
    env.kind_case = MESH__ENVELOPE__KIND_TOKENIZE;
    env.tokenize = &t;
    int rc = mesh_wire_send(c->nodes[pick].sock, NULL, 0, &env, 1);
    mesh__generate_request__free_unpacked(g, NULL);
    r->tok_tried[pick] = 1;
    if (rc)
        return s_ask_tokenize(c, r); // next node (tok_tried bounds the recursion)
    r->tok_state = S_TOK_ASKED;
    r->tok_node = pick;
    r->tok_deadline_ms = s_now_ms() + S_TOK_TIMEOUT_MS;
    return 1;
}

// The exact ids came back: the request becomes a token-id request (so the
// chosen node, and any replay, get exactly these ids), then is routed.
static void s_on_tokenized(mesh_coord_t *c, s_req_t *r, const int32_t *ids, size_t n) {
    r->tok_state = S_TOK_NONE;
    r->tok_node = -1;
    Mesh__GenerateRequest *g = mesh__generate_request__unpack(NULL, r->packed_len, r->packed);
    if (g && n > 0) {
        Mesh__TokenIds tk = MESH__TOKEN_IDS__INIT;
        tk.n_ids = n;
        tk.ids = (int32_t *)ids;
        Mesh__GenerateRequest__InputCase oc = g->input_case;
        void *op = oc == MESH__GENERATE_REQUEST__INPUT_CHAT ? (void *)g->chat : (void *)g->prompt;
        g->input_case = MESH__GENERATE_REQUEST__INPUT_TOKENS;
        g->tokens = &tk;
        size_t len = mesh__generate_request__get_packed_size(g);
        uint8_t *p = len <= MESH_WIRE_MAX_BYTES - 4096 ? malloc(len ? len : 1) : NULL;
        if (p) {
            mesh__generate_request__pack(g, p);
            free(r->packed);
            r->packed = p;
            r->packed_len = len;
            MESH_DEBUG("coord: request %llu: prompt is %zu tokens (estimate was %llu)",
                       (unsigned long long)r->id, n, (unsigned long long)r->est_prompt_tokens);
            r->est_prompt_tokens = n;
        }
        g->input_case = oc; // put the union back so free_unpacked frees what it made
        if (oc == MESH__GENERATE_REQUEST__INPUT_CHAT)
            g->chat = op;
        else
            g->prompt = op;
    }
    if (g)
        mesh__generate_request__free_unpacked(g, NULL);
    s_dispatch(c, r);
}

// The node asked to tokenize failed (error, timeout, death): ask another.
static void s_tokenize_failed(mesh_coord_t *c, s_req_t *r, const char *why) {
    MESH_INFO("coord: request %llu: tokenize on node %s failed: %s", (unsigned long long)r->id,
              r->tok_node >= 0 ? c->nodes[r->tok_node].reg.name : "?", why);
    r->tok_state = S_TOK_NEEDED;
    r->tok_node = -1;
    s_dispatch(c, r);
}

// Routes r and sends it (replaying what was already delivered). On no
// candidate, finishes r with the routing error.
static void s_dispatch(mesh_coord_t *c, s_req_t *r) {
    if (r->tok_state == S_TOK_NEEDED && s_ask_tokenize(c, r))
        return; // the reply (or its failure) dispatches again
    for (;;) {
        if (r->n_gen >= r->max_tokens) {
            s_finish(c, r, 0, "length", 0);
            return;
        }
        if (r->attempts >= c->opts.max_attempts) {
            char msg[400];
            snprintf(msg, sizeof msg, "gave up after %u nodes: %s", r->attempts,
                     r->last_err[0] ? r->last_err : "no node answered");
            s_finish(c, r, r->last_code ? r->last_code : MESH_EBUSY, msg, 0);
            return;
        }
        static mesh_route_node_t rn[S_MAX_NODES];
        static mesh_route_model_t rm[S_MAX_NODES][S_MAX_MODELS];
        s_fill_route_nodes(c, rn, rm);
        mesh_route_req_t q = {r->model, r->quant, r->est_prompt_tokens + r->max_tokens,
                              r->exclude};
        mesh_route_result_t res;
        int rc = mesh_route_pick(&q, rn, S_MAX_NODES, &res);
        if (rc) {
            MESH_INFO("coord: request %llu: no route: %s", (unsigned long long)r->id,
                      res.missing);
            char msg[800];
            if (r->last_err[0])
                snprintf(msg, sizeof msg, "%s (earlier: %s)", res.missing, r->last_err);
            else
                snprintf(msg, sizeof msg, "%s", res.missing);
            s_finish(c, r, r->last_err[0] && r->last_code ? r->last_code : rc, msg, 0);
            return;
        }
        s_node_t *nd = &c->nodes[res.node];
        Mesh__GenerateRequest *g =
            mesh__generate_request__unpack(NULL, r->packed_len, r->packed);
        if (!g) {
            s_finish(c, r, MESH_ENOMEM, "cannot unpack own request copy", 0);
            return;
        }
        g->request_id = r->id;
        char *orig_quant = g->quant; // protobuf-c owns it (maybe a static ""): put back
        g->quant = nd->models[res.model].quant;
        if (g->sampling)
            g->sampling->max_tokens = r->max_tokens - (uint32_t)r->n_gen;
        g->n_continue_ids = r->n_gen;
        g->continue_ids = r->n_gen ? r->gen : NULL;
        g->index_base = (uint32_t)r->n_gen;
        Mesh__Envelope env = MESH__ENVELOPE__INIT;
        env.kind_case = MESH__ENVELOPE__KIND_GENERATE;
        env.generate = g;
        rc = mesh_wire_send(nd->sock, NULL, 0, &env, 1);
        g->quant = orig_quant;
        g->n_continue_ids = 0;
        g->continue_ids = NULL; // borrowed from r
        mesh__generate_request__free_unpacked(g, NULL);
        r->attempts++;
        if (rc) {
            snprintf(r->last_err, sizeof r->last_err, "node %s: send failed: %s",
                     nd->reg.name, mesh_strerror(rc));
            r->last_code = rc;
            r->exclude[res.node] = 1;
            continue;
        }
        r->node = res.node;
        r->kv_reserved = res.kv_bytes;
        nd->reserved += res.kv_bytes;
        MESH_INFO("coord: request %llu -> node %s (%s): model %s:%s, %llu tokens%s",
                  (unsigned long long)r->id, nd->reg.name, res.reason, r->model,
                  nd->models[res.model].quant,
                  (unsigned long long)(r->est_prompt_tokens + r->max_tokens),
                  r->n_gen ? ", replaying after failover" : "");
        if (r->cb.on_route)
            r->cb.on_route(r->user, nd->reg.name, r->n_gen || r->attempts > 1 ? "failover"
                                                                               : res.reason);
        return;
    }
}

// A node is gone or refused: move its request elsewhere.
static void s_failover(mesh_coord_t *c, s_req_t *r, int code, const char *why) {
    int from = r->node;
    s_release(c, r);
    if (from >= 0) {
        r->exclude[from] = 1;
        snprintf(r->last_err, sizeof r->last_err, "node %s: %s", c->nodes[from].reg.name, why);
        c->nodes[from].failures++;
    }
    r->last_code = code;
    r->node = -1;
    c->n_failovers++;
    MESH_WARN("coord: request %llu: failover after %zu tokens: %s", (unsigned long long)r->id,
              r->n_gen, r->last_err);
    s_dispatch(c, r);
}

static void s_node_dead(mesh_coord_t *c, int idx, const char *why) {
    s_node_t *nd = &c->nodes[idx];
    if (nd->state == S_NODE_UP)
        MESH_WARN("coord: node %s is dead (%s)", nd->reg.name, why);
    nd->state = S_NODE_DEAD;
    nd->reserved = 0;
    for (s_req_t *r = c->reqs, *next; r; r = next) {
        next = r->next;
        if (r->node == idx)
            s_failover(c, r, MESH_ETIMEOUT, why);
        else if (r->tok_state == S_TOK_ASKED && r->tok_node == idx)
            s_tokenize_failed(c, r, why);
    }
}

static s_req_t *s_find_req(mesh_coord_t *c, uint64_t id) {
    for (s_req_t *r = c->reqs; r; r = r->next)
        if (r->id == id)
            return r;
    return NULL;
}

static void s_copy(char *dst, size_t cap, const char *src) {
    snprintf(dst, cap, "%s", src ? src : "");
}

static void s_on_caps(s_node_t *nd, const Mesh__Capabilities *k) {
    s_copy(nd->backend, sizeof nd->backend, k->backend);
    s_copy(nd->sw_version, sizeof nd->sw_version, k->sw_version);
    s_copy(nd->node_name, sizeof nd->node_name, k->node_name);
    nd->proto = k->proto_version;
    nd->node_draining = k->draining;
    nd->n_devices = 0;
    nd->mem_total = nd->mem_free = 0;
    for (size_t i = 0; i < k->n_devices && i < S_MAX_DEVICES; i++) {
        const Mesh__Device *d = k->devices[i];
        s_copy(nd->dev[i].name, sizeof nd->dev[i].name, d->name);
        s_copy(nd->dev[i].arch, sizeof nd->dev[i].arch, d->arch);
        nd->dev[i].total = d->mem_total;
        nd->dev[i].free = d->mem_free;
        nd->mem_total += d->mem_total;
        nd->mem_free += d->mem_free;
        nd->n_devices++;
    }
    nd->n_models = 0;
    for (size_t i = 0; i < k->n_models && i < S_MAX_MODELS; i++) {
        const Mesh__ModelInfo *m = k->models[i];
        s_model_t *o = &nd->models[nd->n_models++];
        s_copy(o->name, sizeof o->name, m->name);
        s_copy(o->arch, sizeof o->arch, m->arch);
        s_copy(o->quant, sizeof o->quant, m->quant);
        for (char *p = o->quant; *p; p++)
            if (*p >= 'A' && *p <= 'Z')
                *p = (char)(*p - 'A' + 'a');
        o->file_size = m->file_size;
        o->kv_per_token = m->kv_bytes_per_token;
        o->ctx_limit = m->ctx_limit;
        o->prefill_tps = m->prefill_tps;
        o->decode_tps = m->decode_tps;
        o->can_generate = m->can_generate;
    }
    if (nd->state != S_NODE_UP) {
        MESH_INFO("coord: node %s is up (%s, %d device(s), %d model(s))", nd->reg.name,
                  nd->backend, nd->n_devices, nd->n_models);
        nd->up_since_ms = s_now_ms();
        nd->drain_told = 0; // a (re)connected node drains only if told again
        // The last heartbeat's load was the old process's (a restarted node
        // runs nothing yet): its own first heartbeat says what it runs.
        nd->active = nd->queued = 0;
        nd->recent_tps = 0;
    }
    nd->state = S_NODE_UP;
}

// Hands the logprob report of ids [first, first + n) of chunk k to the
// request's on_logprobs: per id its logprob and, from nodes that send them
// (TokenChunk.info), its bytes and alternatives. One allocation per chunk
// (n is 1 from a streaming node).
static void s_deliver_logprobs(s_req_t *r, const Mesh__TokenChunk *k, size_t first, size_t n) {
    int info = k->n_info == k->n_ids;
    size_t n_alt = 0;
    for (size_t i = 0; info && i < n; i++) {
        const Mesh__TokenInfo *t = k->info[first + i];
        n_alt += t->n_top < r->top_logprobs ? t->n_top : r->top_logprobs;
    }
    mesh_coord_logprob_t *lp = calloc(n, sizeof *lp);
    mesh_coord_alt_t *alt = calloc(n_alt ? n_alt : 1, sizeof *alt);
    if (!lp || !alt) {
        free(lp);
        free(alt);
        return; // no report: the HTTP layer shows a null logprob
    }
    size_t a = 0;
    for (size_t i = 0; i < n; i++) {
        lp[i].logprob = k->logprobs[first + i];
        if (!info)
            continue;
        const Mesh__TokenInfo *t = k->info[first + i];
        lp[i].has_piece = 1;
        lp[i].piece = (const char *)t->piece.data;
        lp[i].piece_len = t->piece.len;
        lp[i].top = alt + a;
        for (size_t j = 0; j < t->n_top && lp[i].n_top < r->top_logprobs; j++) {
            alt[a].id = t->top[j]->id;
            alt[a].logprob = t->top[j]->logprob;
            alt[a].piece = (const char *)t->top[j]->piece.data;
            alt[a].piece_len = t->top[j]->piece.len;
            a++;
            lp[i].n_top++;
        }
    }
    r->on_logprobs(r->user, lp, n);
    free(alt);
    free(lp);
}

static void s_on_message(mesh_coord_t *c, int idx, const uint8_t *buf, size_t len) {
    s_node_t *nd = &c->nodes[idx];
    Mesh__Envelope *env = NULL;
    char err[200];
    int rc = mesh_wire_unpack(buf, len, &env, err, sizeof err);
    nd->last_seen_ms = s_now_ms();
    if (rc) {
        MESH_WARN("coord: node %s: bad message: %s", nd->reg.name, err);
        mesh_wire_send_error(nd->sock, NULL, 0, rc, 0, err);
        mesh_wire_free(&env);
        return;
    }
    switch (env->kind_case) {
    case MESH__ENVELOPE__KIND_CAPABILITIES:
        s_on_caps(nd, env->capabilities);
        break;
    case MESH__ENVELOPE__KIND_HEARTBEAT: {
        const Mesh__Heartbeat *h = env->heartbeat;
        if (nd->state != S_NODE_UP) {
            s_send_hello(c, nd); // it knows us but we lost its report
            break;
        }
        uint64_t total_free = h->mem_free;
        nd->mem_free = total_free;
        if (nd->n_devices == 1)
            nd->dev[0].free = total_free;
        nd->active = h->active;
        nd->queued = h->queued;
        nd->recent_tps = h->recent_tps;
        nd->node_draining = h->draining;
        if (h->interval_ms)
            nd->interval_ms = h->interval_ms;
        break;
    }
    case MESH__ENVELOPE__KIND_CHUNK: {
        const Mesh__TokenChunk *k = env->chunk;
        s_req_t *r = s_find_req(c, k->request_id);
        if (!r || r->node != idx)
            break; // stale: from an attempt we already moved away from
        s_release(c, r);
        size_t first_new = r->n_gen > k->index ? r->n_gen - k->index : 0;
        if (k->n_ids == 0 && k->index == r->n_gen && k->text && k->text[0]) {
            // Text the node's stream held back until the end (an unfinished
            // stop-string match, a partial UTF-8 tail): no new tokens.
            if (r->cb.on_chunk)
                r->cb.on_chunk(r->user, NULL, 0, k->text);
            break;
        }
        if (k->index > r->n_gen || first_new >= k->n_ids) {
            if (k->index > r->n_gen)
                MESH_WARN("coord: request %llu: gap in stream from node %s",
                          (unsigned long long)r->id, nd->reg.name);
            break;
        }
        size_t add = k->n_ids - first_new;
        if (r->n_gen + add > r->cap_gen) {
            size_t cap = (r->cap_gen ? r->cap_gen * 2 : 64);
            while (cap < r->n_gen + add)
                cap *= 2;
            int32_t *g = realloc(r->gen, cap * sizeof *g);
            if (!g)
                break;
            r->gen = g;
            r->cap_gen = cap;
        }
        memcpy(r->gen + r->n_gen, k->ids + first_new, add * sizeof(int32_t));
        r->n_gen += add;
        if (r->on_logprobs && k->n_logprobs == k->n_ids)
            s_deliver_logprobs(r, k, first_new, add);
        if (r->cb.on_chunk)
            r->cb.on_chunk(r->user, k->ids + first_new, add, first_new ? "" : k->text);
        break;
    }
    case MESH__ENVELOPE__KIND_DONE: {
        s_req_t *r = s_find_req(c, env->done->request_id);
        if (!r || r->node != idx)
            break;
        nd->served++;
        s_finish(c, r, 0, env->done->finish_reason, env->done->prompt_tokens);
        break;
    }
    case MESH__ENVELOPE__KIND_TOKENIZE_REPLY: {
        const Mesh__TokenizeReply *t = env->tokenize_reply;
        s_req_t *r = s_find_req(c, t->request_id);
        if (r && r->tok_state == S_TOK_ASKED && r->tok_node == idx) {
            if (t->n_ids == 0)
                s_tokenize_failed(c, r, "empty reply");
            else
                s_on_tokenized(c, r, t->ids, t->n_ids);
        }
        break;
    }
    case MESH__ENVELOPE__KIND_ERROR: {
        const Mesh__Error *e = env->error;
        s_req_t *r = e->request_id ? s_find_req(c, e->request_id) : NULL;
        if (r && r->tok_state == S_TOK_ASKED && r->tok_node == idx) {
            if (e->code == MESH_EINVAL || e->code == MESH_EFORMAT) {
                // The input itself is bad (messages the template refuses).
                char msg[400];
                snprintf(msg, sizeof msg, "node %s: %s", nd->reg.name,
                         e->message ? e->message : "");
                s_finish(c, r, e->code, msg, 0);
            } else {
                s_tokenize_failed(c, r, e->message ? e->message : "error");
            }
            break;
        }
        if (!r || r->node != idx) {
            MESH_WARN("coord: node %s reports error %d: %s", nd->reg.name, e->code,
                      e->message ? e->message : "");
            break;
        }
        if (r->canceled) {
            s_finish(c, r, 0, "cancel", 0);
        } else if (e->code == MESH_EINVAL || e->code == MESH_EFORMAT) {
            char msg[400];
            snprintf(msg, sizeof msg, "node %s: %s", nd->reg.name, e->message);
            s_finish(c, r, e->code, msg, 0);
        } else {
            s_failover(c, r, e->code < 0 ? e->code : MESH_EBACKEND, e->message);
        }
        break;
    }
    case MESH__ENVELOPE__KIND_PONG:
        break;
    case MESH__ENVELOPE__KIND_PING:
        // A draining node's goodbye: we handle a link's messages in order,
        // so this PONG tells it everything it sent before has arrived.
        mesh_wire_send_ping(nd->sock, NULL, 0, 1, env->ping->nonce);
        break;
    default:
        MESH_WARN("coord: node %s sent unexpected '%s'", nd->reg.name,
                  mesh_wire_kind_name(env));
        mesh_wire_send_error(nd->sock, NULL, 0, MESH_EPROTO, 0, "unexpected message kind");
        break;
    }
    mesh_wire_free(&env);
}

static void s_timers(mesh_coord_t *c) {
    int64_t now = s_now_ms();
    for (s_req_t *r = c->reqs, *next; r; r = next) {
        next = r->next;
        if (r->tok_state == S_TOK_ASKED && now > r->tok_deadline_ms && !r->canceled)
            s_tokenize_failed(c, r, "no reply in time");
    }
    for (int i = 0; i < S_MAX_NODES; i++) {
        s_node_t *nd = &c->nodes[i];
        if (!nd->used || !nd->sock)
            continue;
        uint32_t ivl = nd->interval_ms ? nd->interval_ms : c->opts.heartbeat_ms;
        if (nd->state == S_NODE_UP &&
            now - nd->last_seen_ms > (int64_t)ivl * c->opts.dead_after + ivl / 2)
            s_node_dead(c, i, "missed heartbeats");
        // Not up: say Hello often. With ZMQ_IMMEDIATE a send before the
        // CURVE handshake completes just fails, so this costs nothing while
        // the node is away and gets a returning node back within 100 ms.
        if (nd->state != S_NODE_UP && now - nd->last_hello_ms >= 100)
            s_send_hello(c, nd);
    }
}

static void *s_thread(void *arg) {
    mesh_coord_t *c = arg;
    zmq_pollitem_t items[S_MAX_NODES + 1];
    int map[S_MAX_NODES + 1];
    uint8_t *buf = malloc(MESH_WIRE_MAX_BYTES + 1);
    if (!buf)
        return NULL;
    while (!atomic_load(&c->stop)) {
        int n = 0;
        pthread_mutex_lock(&c->lock);
        items[n] = (zmq_pollitem_t){NULL, c->wake[0], ZMQ_POLLIN, 0};
        map[n++] = -1;
        for (int i = 0; i < S_MAX_NODES; i++)
            if (c->nodes[i].used && c->nodes[i].sock) {
                items[n] = (zmq_pollitem_t){c->nodes[i].sock, 0, ZMQ_POLLIN, 0};
                map[n++] = i;
            }
        pthread_mutex_unlock(&c->lock);
        int rc = zmq_poll(items, n, 50);
        pthread_mutex_lock(&c->lock);
        if (rc > 0 && (items[0].revents & ZMQ_POLLIN)) {
            char tmp[256];
            while (read(c->wake[0], tmp, sizeof tmp) > 0) {
            }
        }
        // Sockets of removed nodes are closed below before the next poll,
        // so a slot index here is still the socket polled.
        for (int k = 1; rc > 0 && k < n; k++) {
            if (!(items[k].revents & ZMQ_POLLIN))
                continue;
            s_node_t *nd = &c->nodes[map[k]];
            for (int burst = 0; burst < 256 && nd->sock == items[k].socket; burst++) {
                int len = zmq_recv(nd->sock, buf, MESH_WIRE_MAX_BYTES + 1, ZMQ_DONTWAIT);
                if (len < 0)
                    break;
                s_on_message(c, map[k], buf, (size_t)len);
            }
        }
        // Registry changes made by other threads.
        for (int i = 0; i < S_MAX_NODES; i++) {
            s_node_t *nd = &c->nodes[i];
            if (nd->used && nd->removing) {
                nd->state = S_NODE_DEAD;
                for (s_req_t *r = c->reqs, *next; r; r = next) {
                    next = r->next;
                    if (r->node == i)
                        s_failover(c, r, MESH_ECANCELED, "node removed");
                }
                if (nd->sock)
                    zmq_close(nd->sock);
                memset(nd, 0, sizeof *nd);
            } else if (nd->used && !nd->sock) {
                s_connect(c, nd);
            } else if (nd->used && nd->state == S_NODE_UP && nd->drain_told != nd->reg.draining) {
                // Tell the node itself (it refuses new work and says so in
                // its reports), not only the router.
                Mesh__Envelope env = MESH__ENVELOPE__INIT;
                Mesh__Drain d = MESH__DRAIN__INIT;
                d.on = nd->reg.draining;
                env.kind_case = MESH__ENVELOPE__KIND_DRAIN;
                env.drain = &d;
                if (mesh_wire_send(nd->sock, NULL, 0, &env, 1) == 0)
                    nd->drain_told = nd->reg.draining;
            }
        }
        // Requests waiting to be routed, and cancels to pass on.
        for (s_req_t *r = c->reqs, *next; r; r = next) {
            next = r->next;
            if (r->canceled) {
                if (r->node >= 0) {
                    Mesh__Envelope env = MESH__ENVELOPE__INIT;
                    Mesh__Cancel k = MESH__CANCEL__INIT;
                    k.request_id = r->id;
                    env.kind_case = MESH__ENVELOPE__KIND_CANCEL;
                    env.cancel = &k;
                    mesh_wire_send(c->nodes[r->node].sock, NULL, 0, &env, 1);
                }
                s_finish(c, r, 0, "cancel", 0);
            } else if (r->node < 0 && r->tok_state != S_TOK_ASKED) {
                s_dispatch(c, r);
            }
        }
        s_timers(c);
        pthread_mutex_unlock(&c->lock);
    }
    free(buf);
    return NULL;
}

// ---- public API ----

static int s_find_node(mesh_coord_t *c, const char *name) {
    for (int i = 0; i < S_MAX_NODES; i++)
        if (c->nodes[i].used && !c->nodes[i].removing && strcmp(c->nodes[i].reg.name, name) == 0)
            return i;
    return -1;
}

static int s_save(mesh_coord_t *c) {
    mesh_coord_state_t st = {0};
    for (int i = 0; i < S_MAX_NODES; i++)
        if (c->nodes[i].used && !c->nodes[i].removing)
            st.nodes[st.n++] = c->nodes[i].reg;
    char err[256];
    int rc = mesh_coord_state_save(c->state_path, &st, err, sizeof err);
    if (rc)
        MESH_ERROR("coord: %s", err);
    return rc;
}

static int s_add_slot(mesh_coord_t *c, const mesh_coord_state_node_t *reg) {
    for (int i = 0; i < S_MAX_NODES; i++)
        if (!c->nodes[i].used) {
            memset(&c->nodes[i], 0, sizeof c->nodes[i]);
            c->nodes[i].used = 1;
            c->nodes[i].reg = *reg;
            return i;
        }
    return MESH_ENOSPACE;
}

int mesh_coord_new(const mesh_coord_opts_t *opts, mesh_coord_t **out, char *err,
                   size_t err_len) {
    *out = NULL;
    if (!opts || !opts->state_path || !opts->key_path) {
        snprintf(err, err_len, "coordinator needs a state file and a key file");
        return MESH_EINVAL;
    }
    mesh_coord_t *c = calloc(1, sizeof *c);
    if (!c)
        return MESH_ENOMEM;
    c->opts = *opts;
    if (!c->opts.heartbeat_ms)
        c->opts.heartbeat_ms = 1000;
    if (!c->opts.dead_after)
        c->opts.dead_after = 3;
    if (!c->opts.max_attempts)
        c->opts.max_attempts = 3;
    c->state_path = strdup(opts->state_path);
    c->key_path = strdup(opts->key_path);
    c->name = strdup(opts->name ? opts->name : "meshcoord");
    c->wake[0] = c->wake[1] = -1;
    c->next_id = 1;
    c->started_ms = s_now_ms();
    pthread_mutexattr_t ma;
    pthread_mutexattr_init(&ma);
    pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_init(&c->lock, &ma);
    pthread_mutexattr_destroy(&ma);
    int rc = 0;
    if (!c->state_path || !c->key_path || !c->name) {
        rc = MESH_ENOMEM;
        goto fail;
    }
    rc = mesh_keys_load_or_create(opts->key_path, c->kp.pub, c->kp.sec);
    if (rc)
        snprintf(err, err_len, "%s", mesh_keys_last_error());
    if (rc)
        goto fail;
    mesh_coord_state_t st;
    rc = mesh_coord_state_load(opts->state_path, &st, err, err_len);
    if (rc == MESH_ENOENT)
        st.n = 0, rc = 0;
    if (rc)
        goto fail;
    for (size_t i = 0; i < st.n; i++)
        s_add_slot(c, &st.nodes[i]);
    if (st.n)
        MESH_INFO("coord: %zu node(s) from %s", st.n, opts->state_path);
    if (pipe2(c->wake, O_NONBLOCK | O_CLOEXEC) != 0) {
        snprintf(err, err_len, "pipe: %s", strerror(errno));
        rc = MESH_EIO;
        goto fail;
    }
    c->zctx = zmq_ctx_new();
    if (!c->zctx || !zmq_has("curve")) {
        snprintf(err, err_len, "libzmq has no CURVE support");
        rc = MESH_EUNSUPPORTED;
        goto fail;
    }
    if (pthread_create(&c->thread, NULL, s_thread, c) != 0) {
        snprintf(err, err_len, "cannot start the core thread");
        rc = MESH_ENOMEM;
        goto fail;
    }
    *out = c;
    return 0;
fail:
    if (c->zctx)
        zmq_ctx_term(c->zctx);
    if (c->wake[0] >= 0)
        close(c->wake[0]), close(c->wake[1]);
    pthread_mutex_destroy(&c->lock);
    free(c->state_path);
    free(c->key_path);
    free(c->name);
    free(c);
    return rc;
}

void mesh_coord_destroy(mesh_coord_t **cp) {
    if (!cp || !*cp)
        return;
    mesh_coord_t *c = *cp;
    atomic_store(&c->stop, 1);
    s_wake(c);
    pthread_join(c->thread, NULL);
    pthread_mutex_lock(&c->lock);
    while (c->reqs)
        s_finish(c, c->reqs, MESH_ECANCELED, "coordinator shutting down", 0);
    for (int i = 0; i < S_MAX_NODES; i++)
        if (c->nodes[i].sock)
            zmq_close(c->nodes[i].sock);
    pthread_mutex_unlock(&c->lock);
    zmq_ctx_term(c->zctx);
    close(c->wake[0]);
    close(c->wake[1]);
    pthread_mutex_destroy(&c->lock);
    free(c->state_path);
    free(c->key_path);
    free(c->name);
    free(c);
    *cp = NULL;
}

const char *mesh_coord_public_key(const mesh_coord_t *c) {
    return c->kp.pub;
}

int mesh_coord_node_add(mesh_coord_t *c, const char *addr, const char *key, const char *name,
                        char *err, size_t err_len) {
    mesh_coord_state_node_t reg = {0};
    if (!addr || strncmp(addr, "tcp://", 6) != 0 || !strchr(addr + 6, ':') ||
        strlen(addr) >= sizeof reg.address) {
        snprintf(err, err_len, "address must look like tcp://HOST:PORT");
        return MESH_EINVAL;
    }
    if (!mesh_keys_z85_valid(key)) {
        snprintf(err, err_len, "node key must be a 40-character Z85 public key");
        return MESH_EINVAL;
    }
    const char *nm = (name && *name) ? name : addr + 6;
    if (strlen(nm) >= sizeof reg.name || strpbrk(nm, " /\t\n\"")) {
        snprintf(err, err_len, "node name must be under %zu characters, without spaces or '/'",
                 sizeof reg.name);
        return MESH_EINVAL;
    }
    s_copy(reg.name, sizeof reg.name, nm);
    s_copy(reg.address, sizeof reg.address, addr);
    s_copy(reg.key, sizeof reg.key, key);
    pthread_mutex_lock(&c->lock);
    int rc = 0;
    for (int i = 0; i < S_MAX_NODES; i++)
        if (c->nodes[i].used && !c->nodes[i].removing &&
            (strcmp(c->nodes[i].reg.name, reg.name) == 0 ||
                                 strcmp(c->nodes[i].reg.address, reg.address) == 0)) {
            snprintf(err, err_len, "a node named '%s' at %s is already known",
                     c->nodes[i].reg.name, c->nodes[i].reg.address);
            rc = MESH_EEXISTS;
        }
    if (!rc) {
        int slot = s_add_slot(c, &reg);
        if (slot < 0) {
            snprintf(err, err_len, "registry is full (%d nodes)", S_MAX_NODES);
            rc = slot;
        } else {
            rc = s_save(c);
            if (rc) {
                c->nodes[slot].used = 0;
                snprintf(err, err_len, "cannot write the state file");
            } else {
                MESH_INFO("coord: node %s added at %s", reg.name, reg.address);
            }
        }
    }
    pthread_mutex_unlock(&c->lock);
    s_wake(c);
    return rc;
}

int mesh_coord_node_remove(mesh_coord_t *c, const char *name) {
    pthread_mutex_lock(&c->lock);
    int i = s_find_node(c, name), rc = MESH_ENOTFOUND;
    if (i >= 0) {
        // Out of routing and of the state file now; the core thread closes
        // its socket and moves its requests (sockets are that thread's).
        c->nodes[i].removing = 1;
        rc = s_save(c);
        MESH_INFO("coord: node %s removed", name);
    }
    pthread_mutex_unlock(&c->lock);
    s_wake(c);
    return rc;
}

int mesh_coord_node_drain(mesh_coord_t *c, const char *name, int on) {
    pthread_mutex_lock(&c->lock);
    int i = s_find_node(c, name), rc = MESH_ENOTFOUND;
    if (i >= 0) {
        c->nodes[i].reg.draining = on ? 1 : 0;
        rc = s_save(c);
        MESH_INFO("coord: node %s %s", name, on ? "draining" : "no longer draining");
    }
    pthread_mutex_unlock(&c->lock);
    return rc;
}

cJSON *mesh_coord_nodes_json(mesh_coord_t *c) {
    cJSON *arr = cJSON_CreateArray();
    pthread_mutex_lock(&c->lock);
    int64_t now = s_now_ms();
    for (int i = 0; i < S_MAX_NODES; i++) {
        s_node_t *nd = &c->nodes[i];
        if (!nd->used || nd->removing)
            continue;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", nd->reg.name);
        cJSON_AddStringToObject(o, "address", nd->reg.address);
        cJSON_AddStringToObject(o, "key", nd->reg.key);
        const char *state = s_state_names[nd->state];
        if (nd->state == S_NODE_UP && (nd->reg.draining || nd->node_draining))
            state = "draining";
        cJSON_AddStringToObject(o, "state", state);
        cJSON_AddBoolToObject(o, "draining", nd->reg.draining || nd->node_draining);
        cJSON_AddStringToObject(o, "backend", nd->backend);
        cJSON_AddStringToObject(o, "version", nd->sw_version);
        cJSON_AddNumberToObject(o, "mem_total", (double)nd->mem_total);
        cJSON_AddNumberToObject(o, "mem_free", (double)nd->mem_free);
        cJSON_AddNumberToObject(o, "active", nd->active);
        cJSON_AddNumberToObject(o, "queued", nd->queued);
        cJSON_AddNumberToObject(o, "recent_tps", nd->recent_tps);
        cJSON_AddNumberToObject(o, "served", (double)nd->served);
        cJSON_AddNumberToObject(o, "last_seen_ms_ago",
                                nd->last_seen_ms ? (double)(now - nd->last_seen_ms) : -1);
        cJSON *devs = cJSON_AddArrayToObject(o, "devices");
        for (int d = 0; d < nd->n_devices; d++) {
            cJSON *x = cJSON_CreateObject();
            cJSON_AddStringToObject(x, "name", nd->dev[d].name);
            cJSON_AddStringToObject(x, "arch", nd->dev[d].arch);
            cJSON_AddNumberToObject(x, "mem_total", (double)nd->dev[d].total);
            cJSON_AddNumberToObject(x, "mem_free", (double)nd->dev[d].free);
            cJSON_AddItemToArray(devs, x);
        }
        cJSON *ms = cJSON_AddArrayToObject(o, "models");
        for (int m = 0; m < nd->n_models; m++) {
            const s_model_t *md = &nd->models[m];
            cJSON *x = cJSON_CreateObject();
            cJSON_AddStringToObject(x, "name", md->name);
            cJSON_AddStringToObject(x, "arch", md->arch);
            cJSON_AddStringToObject(x, "quant", md->quant);
            cJSON_AddNumberToObject(x, "file_size", (double)md->file_size);
            cJSON_AddNumberToObject(x, "ctx_limit", md->ctx_limit);
            cJSON_AddNumberToObject(x, "kv_bytes_per_token", (double)md->kv_per_token);
            cJSON_AddNumberToObject(x, "prefill_tps", md->prefill_tps);
            cJSON_AddNumberToObject(x, "decode_tps", md->decode_tps);
            cJSON_AddBoolToObject(x, "can_generate", md->can_generate);
            cJSON_AddItemToArray(ms, x);
        }
        cJSON_AddItemToArray(arr, o);
    }
    pthread_mutex_unlock(&c->lock);
    return arr;
}

cJSON *mesh_coord_models_json(mesh_coord_t *c) {
    cJSON *arr = cJSON_CreateArray();
    pthread_mutex_lock(&c->lock);
    for (int i = 0; i < S_MAX_NODES; i++) {
        s_node_t *nd = &c->nodes[i];
        if (!nd->used || nd->removing)
            continue;
        for (int m = 0; m < nd->n_models; m++) {
            const s_model_t *md = &nd->models[m];
            cJSON *entry = NULL;
            cJSON *it;
            cJSON_ArrayForEach(it, arr) {
                if (strcmp(cJSON_GetObjectItem(it, "name")->valuestring, md->name) == 0)
                    entry = it;
            }
            if (!entry) {
                entry = cJSON_CreateObject();
                cJSON_AddStringToObject(entry, "name", md->name);
                cJSON_AddStringToObject(entry, "arch", md->arch);
                cJSON_AddArrayToObject(entry, "served_by");
                cJSON_AddItemToArray(arr, entry);
            }
            cJSON *x = cJSON_CreateObject();
            cJSON_AddStringToObject(x, "node", nd->reg.name);
            cJSON_AddStringToObject(x, "quant", md->quant);
            cJSON_AddNumberToObject(x, "ctx_limit", md->ctx_limit);
            cJSON_AddStringToObject(x, "state", s_state_names[nd->state]);
            cJSON_AddItemToArray(cJSON_GetObjectItem(entry, "served_by"), x);
        }
    }
    pthread_mutex_unlock(&c->lock);
    return arr;
}

cJSON *mesh_coord_status_json(mesh_coord_t *c) {
    cJSON *o = cJSON_CreateObject();
    pthread_mutex_lock(&c->lock);
    int n = 0, up = 0, dead = 0, inflight = 0;
    for (int i = 0; i < S_MAX_NODES; i++)
        if (c->nodes[i].used && !c->nodes[i].removing) {
            n++;
            up += c->nodes[i].state == S_NODE_UP;
            dead += c->nodes[i].state == S_NODE_DEAD;
        }
    for (s_req_t *r = c->reqs; r; r = r->next)
        inflight++;
    cJSON_AddStringToObject(o, "name", c->name);
    cJSON_AddStringToObject(o, "public_key", c->kp.pub);
    cJSON_AddNumberToObject(o, "protocol_version", MESH_PROTO_VERSION);
    cJSON_AddNumberToObject(o, "uptime_s", (double)(s_now_ms() - c->started_ms) / 1000.0);
    cJSON_AddNumberToObject(o, "nodes", n);
    cJSON_AddNumberToObject(o, "nodes_up", up);
    cJSON_AddNumberToObject(o, "nodes_dead", dead);
    cJSON_AddNumberToObject(o, "requests_in_flight", inflight);
    cJSON_AddNumberToObject(o, "requests_total", (double)c->n_requests);
    cJSON_AddNumberToObject(o, "failovers", (double)c->n_failovers);
    cJSON_AddNumberToObject(o, "errors", (double)c->n_errors);
    pthread_mutex_unlock(&c->lock);
    return o;
}

// Splits "model:quant"; an explicit quant wins over the suffix.
static int s_split_model(const char *model, const char *quant, char *m, size_t mcap, char *q,
                         size_t qcap) {
    if (!model || !*model)
        return MESH_EINVAL;
    const char *colon = strrchr(model, ':');
    size_t mlen = colon ? (size_t)(colon - model) : strlen(model);
    if (mlen == 0 || mlen >= mcap)
        return MESH_EINVAL;
    memcpy(m, model, mlen);
    m[mlen] = 0;
    const char *qs = (quant && *quant) ? quant : (colon ? colon + 1 : "");
    if (strlen(qs) >= qcap)
        return MESH_EINVAL;
    size_t i = 0;
    for (; qs[i]; i++)
        q[i] = (char)((qs[i] >= 'A' && qs[i] <= 'Z') ? qs[i] - 'A' + 'a' : qs[i]);
    q[i] = 0;
    return 0;
}

int mesh_coord_route_dry(mesh_coord_t *c, const char *model, const char *quant,
                         uint64_t tokens, char *node, size_t node_len, char *reason,
                         size_t reason_len, char *err, size_t err_len) {
    char m[64], q[24];
    if (s_split_model(model, quant, m, sizeof m, q, sizeof q)) {
        snprintf(err, err_len, "model must be NAME or NAME:QUANT (under 64 characters)");
        return MESH_EINVAL;
    }
    static mesh_route_node_t rn[S_MAX_NODES];
    static mesh_route_model_t rm[S_MAX_NODES][S_MAX_MODELS];
    pthread_mutex_lock(&c->lock);
    s_fill_route_nodes(c, rn, rm);
    mesh_route_req_t rq = {m, q, tokens, NULL};
    mesh_route_result_t res;
    int rc = mesh_route_pick(&rq, rn, S_MAX_NODES, &res);
    if (rc == 0) {
        snprintf(node, node_len, "%s", c->nodes[res.node].reg.name);
        snprintf(reason, reason_len, "%s", res.reason);
    } else {
        snprintf(err, err_len, "%s", res.missing);
    }
    pthread_mutex_unlock(&c->lock);
    return rc;
}

int mesh_coord_submit(mesh_coord_t *c, const mesh_coord_request_t *rq,
                      const mesh_coord_stream_t *cb, void *user, uint64_t *id, char *err,
                      size_t err_len) {
    int n_inputs = !!rq->prompt + !!rq->messages_json + !!rq->prompt_ids;
    if (n_inputs != 1) {
        snprintf(err, err_len, "a request needs exactly one of prompt, messages or token ids");
        return MESH_EINVAL;
    }
    if (rq->max_tokens == 0 || rq->max_tokens > (1u << 24)) {
        snprintf(err, err_len, "max_tokens must be between 1 and %u", 1u << 24);
        return MESH_EINVAL;
    }
    if (rq->top_logprobs > MESH_COORD_MAX_TOP_LOGPROBS) {
        snprintf(err, err_len, "top_logprobs must be between 0 and %d",
                 MESH_COORD_MAX_TOP_LOGPROBS);
        return MESH_EINVAL;
    }
    s_req_t *r = calloc(1, sizeof *r);
    if (!r)
        return MESH_ENOMEM;
    if (s_split_model(rq->model, rq->quant, r->model, sizeof r->model, r->quant,
                      sizeof r->quant)) {
        free(r);
        snprintf(err, err_len, "model must be NAME or NAME:QUANT (under 64 characters)");
        return MESH_EINVAL;
    }
    Mesh__GenerateRequest g = MESH__GENERATE_REQUEST__INIT;
    Mesh__Sampling s = MESH__SAMPLING__INIT;
    Mesh__ChatInput chat = MESH__CHAT_INPUT__INIT;
    Mesh__TokenIds ids = MESH__TOKEN_IDS__INIT;
    g.model = r->model;
    g.quant = r->quant;
    if (rq->prompt) {
        g.input_case = MESH__GENERATE_REQUEST__INPUT_PROMPT;
        g.prompt = (char *)rq->prompt;
        // Byte-level BPE never makes more tokens than bytes: a safe bound
        // until the coordinator asks a node to tokenize (TokenizeRequest).
        r->est_prompt_tokens = strlen(rq->prompt) + 1;
        r->tok_state = S_TOK_NEEDED;
    } else if (rq->messages_json) {
        g.input_case = MESH__GENERATE_REQUEST__INPUT_CHAT;
        chat.messages_json = (char *)rq->messages_json;
        chat.tools_json = (char *)(rq->tools_json ? rq->tools_json : "");
        chat.add_generation_prompt = rq->add_generation_prompt;
        chat.enable_thinking = rq->enable_thinking;
        g.chat = &chat;
        r->est_prompt_tokens = strlen(rq->messages_json) + strlen(chat.tools_json) + 16;
        r->tok_state = S_TOK_NEEDED;
    } else {
        g.input_case = MESH__GENERATE_REQUEST__INPUT_TOKENS;
        ids.n_ids = rq->n_prompt_ids;
        ids.ids = (int32_t *)rq->prompt_ids;
        g.tokens = &ids;
        r->est_prompt_tokens = rq->n_prompt_ids;
    }
    s.temperature = rq->temperature;
    s.top_p = rq->top_p;
    s.top_k = rq->top_k;
    s.min_p = rq->min_p;
    s.repeat_penalty = rq->repeat_penalty;
    s.presence_penalty = rq->presence_penalty;
    s.frequency_penalty = rq->frequency_penalty;
    s.seed = rq->seed;
    s.has_seed = rq->has_seed;
    s.n_stop = rq->n_stop;
    s.stop = (char **)rq->stop;
    s.max_tokens = rq->max_tokens;
    // Field 11 nonzero asks for logprobs; an older node reads it as its top
    // count, so it gets at least 1 (and then reports the sampled logprob).
    s.logprobs = rq->logprobs || rq->top_logprobs
                     ? (rq->top_logprobs > rq->logprobs ? rq->top_logprobs : rq->logprobs)
                     : 0;
    s.top_logprobs = rq->top_logprobs;
    g.sampling = &s;
    r->packed_len = mesh__generate_request__get_packed_size(&g);
    if (r->packed_len > MESH_WIRE_MAX_BYTES - 4096) {
        snprintf(err, err_len, "request is too large (%zu bytes)", r->packed_len);
        free(r);
        return MESH_ERANGE;
    }
    r->packed = malloc(r->packed_len ? r->packed_len : 1);
    if (!r->packed) {
        free(r);
        return MESH_ENOMEM;
    }
    mesh__generate_request__pack(&g, r->packed);
    r->max_tokens = rq->max_tokens;
    r->cb = *cb;
    r->on_logprobs = rq->on_logprobs;
    r->top_logprobs = rq->top_logprobs;
    r->user = user;
    r->node = -1;
    r->tok_node = -1;
    pthread_mutex_lock(&c->lock);
    r->id = c->next_id++;
    c->n_requests++;
    r->next = c->reqs;
    c->reqs = r;
    if (id)
        *id = r->id;
    pthread_mutex_unlock(&c->lock);
    s_wake(c);
    return 0;
}

int mesh_coord_cancel(mesh_coord_t *c, uint64_t id) {
    // The core thread tells the node and ends the stream on its next turn
    // (woken now, so within microseconds): sockets are that thread's only.
    pthread_mutex_lock(&c->lock);
    s_req_t *r = s_find_req(c, id);
    int rc = r ? 0 : MESH_ENOTFOUND;
    if (r)
        r->canceled = 1;
    pthread_mutex_unlock(&c->lock);
    s_wake(c);
    return rc;
}

int mesh_coord_wait_up(mesh_coord_t *c, int n, int timeout_ms) {
    int64_t end = s_now_ms() + timeout_ms;
    for (;;) {
        int up = 0;
        pthread_mutex_lock(&c->lock);
        for (int i = 0; i < S_MAX_NODES; i++)
            up += c->nodes[i].used && !c->nodes[i].removing &&
                  c->nodes[i].state == S_NODE_UP;
        pthread_mutex_unlock(&c->lock);
        if (up >= n || s_now_ms() >= end)
            return up;
        usleep(10000);
    }
}
