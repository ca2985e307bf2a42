// SPDX-License-Identifier: MIT
// meshnode: the node agent. A ZeroMQ ROUTER socket as a CURVE server (a ZAP
// handler admits only trusted public keys), capability reports to every
// coordinator that says Hello, heartbeats, generation requests handed to the
// engine adapter (engine + continuous-batching scheduler, one engine thread
// per model) with tokens streamed back as they come, cancel, tokenize for
// exact routing, drain on SIGTERM (finish what runs, refuse new, exit 0) and
// on a coordinator's Drain message (same, without exiting).
//
// One thread owns the sockets; the engine thread hands tokens over through a
// queue and a wake-up pipe, so sockets are never shared between threads.
#include "mesh_err.h"
#include "mesh_keys.h"
#include "mesh_log.h"
#include "mesh_wire.h"
#include "node_engine.h"
#include "node_model.h"

#include "cpu_features.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#define S_MAX_MODELS 16
#define S_MAX_PEERS 16
#define S_SW_VERSION "0.1.0"
#define S_KV_CONTEXTS 4 // KV pool at most this many full contexts per model

typedef struct {
    char listen[256], key_path[1024], name[64], backend[16];
    int device;
    int threads;                  // CPU threads of the engine (0: physical cores)
    uint64_t mem_limit;           // bytes (0: the machine's available memory)
    uint32_t ctx_cap;             // tokens (0: the model's own limit)
    uint32_t heartbeat_ms;
    mesh_trusted_t *trusted;      // coordinator keys this node admits (owned)
    int n_models;
    char model_spec[S_MAX_MODELS][1100]; // [NAME=]PATH
} s_conf_t;

typedef struct {
    uint8_t rid[256];
    size_t rid_len;
    int64_t last_seen_ms;
    int bye_pending; // drain end: our PING sent, its PONG not yet back
} s_peer_t;

// A drained node's goodbye: the nonce of the PING it sends each coordinator
// once nothing runs, and how long it waits for the PONGs.
#define S_BYE_NONCE 0x62796531u // "bye1"
#define S_BYE_WAIT_MS 2000

// A token batch from the engine thread, for the socket thread to send.
typedef struct s_out {
    struct s_out *next;
    uint64_t request_id;
    int32_t token;                // -1: none (a done event)
    float logprob;
    int has_logprob;              // 1: piece and top[] too (a TokenInfo goes out)
    int n_top;
    struct { int32_t id; float logprob; size_t off, len; } top[MESH_NODE_MAX_TOP];
    size_t piece_len;             // the token's piece: blob[0 .. piece_len)
    uint8_t *blob;                // the token's piece, then each alternative's (owned)
    char *text;
    int done;
    char finish[16];
    uint32_t prompt_tokens, completion_tokens;
} s_out_t;

typedef struct {
    s_conf_t conf;
    struct {
        char pub[MESH_KEY_Z85_LEN + 1], sec[MESH_KEY_Z85_LEN + 1];
    } kp;
    mesh_node_model_t models[S_MAX_MODELS];
    int n_models;
    mesh_node_engine_t *engine;
    void *zctx, *router, *zap;
    s_peer_t peers[S_MAX_PEERS];
    int n_peers;
    uint64_t mem_total, weights;  // bytes
    uint64_t hb_seq;
    uint64_t tps_tokens;          // generated tokens at the last rate sample
    int64_t tps_ms;               // time of that sample
    float recent_tps;
    int draining;
    pthread_mutex_t out_lock;
    s_out_t *out_head, **out_tail;
    int wake[2];
    // request id -> the coordinator that asked (its ROUTER identity, which
    // stays valid while peers come and go), for engine output. Linear: small.
    struct { uint64_t id; uint8_t rid[256]; size_t rid_len; uint32_t index; } running[256];
    int n_running;
} s_node_t;

static volatile sig_atomic_t s_term;
static void s_on_signal(int sig) {
    (void)sig;
    s_term = 1;
}

static int64_t s_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void s_usage(FILE *f) {
    fprintf(f,
            "usage: meshnode [--config FILE] [options]\n"
            "  --config FILE        key = value lines with the option names below\n"
            "  --listen ADDR        ZeroMQ address (default tcp://0.0.0.0:7701)\n"
            "  --key FILE           CURVE key file, created on first start (default "
            "meshnode.key)\n"
            "  --trust KEY          a trusted coordinator public key (repeatable)\n"
            "  --trusted-keys FILE  one trusted public key per line\n"
            "  --model [NAME=]PATH  a GGUF model to serve (repeatable)\n"
            "  --backend NAME       cpu (default; others when built in)\n"
            "  --device N           device index (default 0)\n"
            "  --threads N          CPU threads of the engine (default: physical cores)\n"
            "  --mem-limit SIZE     memory budget of the CPU backend, e.g. 8G, 512M: the\n"
            "                       models' weights (file sizes) come out of it and the\n"
            "                       rest is the KV cache, split evenly between models\n"
            "                       (default: the machine's available memory)\n"
            "  --ctx-limit N        cap every model's context at N tokens\n"
            "  --heartbeat-ms N     heartbeat interval (default 1000)\n"
            "  --name NAME          node name (default: host name)\n"
            "  --log-level LEVEL    debug, info, warn, error\n"
            "  --print-key          print this node's public key and exit\n"
            "environment: MESH_NODE_DEBUG_TOKEN_DELAY_MS=N sleeps N ms before each token\n"
            "  (testing only: lets a test kill a node in mid-stream)\n"
            "  -h, --help           this text\n");
}

static int s_parse_size(const char *v, uint64_t *out) {
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    if (end == v || errno || d <= 0)
        return MESH_EINVAL;
    uint64_t mul = 1;
    switch (toupper((unsigned char)*end)) {
    case 0: break;
    case 'K': mul = 1ull << 10; end++; break;
    case 'M': mul = 1ull << 20; end++; break;
    case 'G': mul = 1ull << 30; end++; break;
    case 'T': mul = 1ull << 40; end++; break;
    default: return MESH_EINVAL;
    }
    if (*end == 'i' || *end == 'I')
        end++;
    if (*end == 'B' || *end == 'b')
        end++;
    if (*end || d * (double)mul > 1e18)
        return MESH_EINVAL;
    *out = (uint64_t)(d * (double)mul);
    return 0;
}

// --trust VALUE: a 40-character Z85 key, or a file holding keys: a trusted-keys
// file (one key per line) or a keypair file (its public line). Common's formats.
static int s_trust_add(s_conf_t *c, const char *v, char *err, size_t err_len) {
    if (mesh_keys_z85_valid(v)) {
        int rc = mesh_trusted_find(c->trusted, v) ? 0 : mesh_trusted_add(c->trusted, v, NULL);
        if (rc)
            snprintf(err, err_len, "%s", mesh_keys_last_error());
        return rc;
    }
    if (access(v, R_OK) != 0) {
        snprintf(err, err_len, "'%s' is neither a 40-character Z85 key nor a readable file", v);
        return MESH_EINVAL;
    }
    char pub[MESH_KEY_Z85_LEN + 1];
    mesh_trusted_t *list = NULL;
    int rc = mesh_trusted_load(v, &list);
    if (rc == 0) {
        for (size_t i = 0; !rc && i < mesh_trusted_count(list); i++) {
            const mesh_trusted_key_t *tk = mesh_trusted_at(list, i);
            if (!mesh_trusted_find(c->trusted, tk->key))
                rc = mesh_trusted_add(c->trusted, tk->key, tk->name);
        }
        mesh_trusted_destroy(&list);
    } else if ((rc = mesh_keys_load_public(v, pub)) == 0) {
        rc = mesh_trusted_find(c->trusted, pub) ? 0 : mesh_trusted_add(c->trusted, pub, NULL);
    }
    if (rc)
        snprintf(err, err_len, "%s: neither a trusted-keys file nor a keypair file", v);
    return rc;
}

// Applies one option (from argv or the config file). Returns 0 or prints
// one line and returns MESH_EINVAL.
static int s_set(s_conf_t *c, const char *k, const char *v, const char *where) {
    char err[512];
    long n;
    char *end;
    if (strcmp(k, "listen") == 0) {
        snprintf(c->listen, sizeof c->listen, "%s", v);
    } else if (strcmp(k, "key") == 0) {
        snprintf(c->key_path, sizeof c->key_path, "%s", v);
    } else if (strcmp(k, "name") == 0) {
        snprintf(c->name, sizeof c->name, "%s", v);
    } else if (strcmp(k, "backend") == 0) {
        snprintf(c->backend, sizeof c->backend, "%s", v);
    } else if (strcmp(k, "trust") == 0) {
        if (s_trust_add(c, v, err, sizeof err)) {
            fprintf(stderr, "meshnode: %s: trust: %s\n", where, err);
            return MESH_EINVAL;
        }
    } else if (strcmp(k, "trusted-keys") == 0) {
        mesh_trusted_t *list = NULL;
        int rc = mesh_trusted_load(v, &list);
        for (size_t i = 0; !rc && i < mesh_trusted_count(list); i++) {
            const mesh_trusted_key_t *tk = mesh_trusted_at(list, i);
            rc = mesh_trusted_find(c->trusted, tk->key) ? 0
                                                        : mesh_trusted_add(c->trusted, tk->key,
                                                                           tk->name);
        }
        mesh_trusted_destroy(&list);
        if (rc) {
            fprintf(stderr, "meshnode: %s: trusted-keys: %s\n", where, mesh_keys_last_error());
            return MESH_EINVAL;
        }
    } else if (strcmp(k, "model") == 0) {
        if (c->n_models >= S_MAX_MODELS || strlen(v) >= sizeof c->model_spec[0]) {
            fprintf(stderr, "meshnode: %s: too many models or path too long\n", where);
            return MESH_EINVAL;
        }
        snprintf(c->model_spec[c->n_models++], sizeof c->model_spec[0], "%s", v);
    } else if (strcmp(k, "mem-limit") == 0) {
        if (s_parse_size(v, &c->mem_limit)) {
            fprintf(stderr, "meshnode: %s: mem-limit must be a size like 8G or 512M, got '%s'\n",
                    where, v);
            return MESH_EINVAL;
        }
    } else if (strcmp(k, "device") == 0 || strcmp(k, "ctx-limit") == 0 ||
               strcmp(k, "heartbeat-ms") == 0 || strcmp(k, "threads") == 0) {
        n = strtol(v, &end, 10);
        if (!*v || *end || n < 0 || n > 100000000 || (k[0] == 'h' && n < 10)) {
            fprintf(stderr, "meshnode: %s: %s needs a number, got '%s'\n", where, k, v);
            return MESH_EINVAL;
        }
        if (k[0] == 'd')
            c->device = (int)n;
        else if (k[0] == 't')
            c->threads = (int)(n > 1024 ? 1024 : n);
        else if (k[0] == 'c')
            c->ctx_cap = (uint32_t)n;
        else
            c->heartbeat_ms = (uint32_t)n;
    } else if (strcmp(k, "log-level") == 0) {
        mesh_log_level_t lv;
        if (mesh_log_parse_level(v, &lv)) {
            fprintf(stderr, "meshnode: %s: log-level must be debug, info, warn or error\n",
                    where);
            return MESH_EINVAL;
        }
        mesh_log_set_level(lv);
    } else {
        fprintf(stderr, "meshnode: %s: unknown option '%s'\n", where, k);
        return MESH_EINVAL;
    }
    return 0;
}

static int s_load_config(s_conf_t *c, const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "meshnode: cannot open config %s: %s\n", path, strerror(errno));
        return MESH_EIO;
    }
    char line[2048], where[1100];
    int lineno = 0, rc = 0;
    while (!rc && fgets(line, sizeof line, f)) {
        lineno++;
        char *p = line;
        while (isspace((unsigned char)*p))
            p++;
        if (!*p || *p == '#' || *p == ';' || *p == '[')
            continue;
        char *eq = strchr(p, '=');
        snprintf(where, sizeof where, "%s:%d", path, lineno);
        if (!eq) {
            fprintf(stderr, "meshnode: %s: expected 'key = value'\n", where);
            rc = MESH_EINVAL;
            break;
        }
        *eq = 0;
        char *k = p, *v = eq + 1;
        for (char *e = k + strlen(k); e > k && isspace((unsigned char)e[-1]);)
            *--e = 0;
        while (isspace((unsigned char)*v))
            v++;
        for (char *e = v + strlen(v); e > v && isspace((unsigned char)e[-1]);)
            *--e = 0;
        rc = s_set(c, k, v, where);
    }
    fclose(f);
    return rc;
}

static uint64_t s_mem_available(void) {
    FILE *f = fopen("/proc/meminfo", "r");
    char line[256];
    unsigned long long kb = 0;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1)
            break;
    if (f)
        fclose(f);
    return (uint64_t)kb * 1024;
}

static void s_cpu_name(char *out, size_t cap) {
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[512];
    snprintf(out, cap, "cpu");
    while (f && fgets(line, sizeof line, f)) {
        char *colon = strchr(line, ':');
        if (strncmp(line, "model name", 10) == 0 && colon) {
            colon++;
            while (*colon == ' ')
                colon++;
            colon[strcspn(colon, "\n")] = 0;
            snprintf(out, cap, "%s", colon);
            break;
        }
    }
    if (f)
        fclose(f);
}

// ---- messages ----

// Budget left for new KV: the budget, less the weights, less the KV that
// admitted sequences have reserved (the engine's scheduler counts it).
static uint64_t s_mem_free(s_node_t *n) {
    mesh_node_engine_stats_t st;
    mesh_node_engine_stats(n->engine, &st);
    uint64_t used = n->weights + st.kv_reserved;
    return n->mem_total > used ? n->mem_total - used : 0;
}

static void s_send_caps(s_node_t *n, const s_peer_t *p) {
    Mesh__Envelope env = MESH__ENVELOPE__INIT;
    Mesh__Capabilities k = MESH__CAPABILITIES__INIT;
    Mesh__Device dev = MESH__DEVICE__INIT, *devp = &dev;
    Mesh__ModelInfo mi[S_MAX_MODELS], *mip[S_MAX_MODELS];
    char cpu[128];
    s_cpu_name(cpu, sizeof cpu);
    dev.name = cpu;
    dev.arch = (char *)mesh_cpu_arch_name();
    dev.mem_total = n->mem_total;
    dev.mem_free = s_mem_free(n);
    for (int i = 0; i < n->n_models; i++) {
        mesh__model_info__init(&mi[i]);
        mi[i].name = n->models[i].name;
        mi[i].arch = n->models[i].arch;
        mi[i].quant = n->models[i].quant;
        mi[i].file_size = n->models[i].file_size;
        mi[i].ctx_limit = n->models[i].ctx_limit;
        mi[i].kv_bytes_per_token = n->models[i].kv_bytes_per_token;
        mi[i].prefill_tps = n->models[i].prefill_tps;
        mi[i].decode_tps = n->models[i].decode_tps;
        mi[i].can_generate = n->models[i].can_generate;
        mip[i] = &mi[i];
    }
    k.node_name = n->conf.name;
    k.sw_version = (char *)S_SW_VERSION;
    k.proto_version = MESH_PROTO_VERSION;
    k.backend = n->conf.backend;
    k.n_devices = 1;
    k.devices = &devp;
    k.n_models = (size_t)n->n_models;
    k.models = mip;
    k.draining = n->draining;
    env.kind_case = MESH__ENVELOPE__KIND_CAPABILITIES;
    env.capabilities = &k;
    mesh_wire_send(n->router, p->rid, p->rid_len, &env, 1);
}

static void s_drop_peer(s_node_t *n, int i) {
    MESH_INFO("node: coordinator peer %d gone", i);
    n->peers[i] = n->peers[--n->n_peers];
}

static void s_heartbeat(s_node_t *n) {
    Mesh__Envelope env = MESH__ENVELOPE__INIT;
    Mesh__Heartbeat h = MESH__HEARTBEAT__INIT;
    h.mem_free = s_mem_free(n);
    mesh_node_engine_stats_t st;
    mesh_node_engine_stats(n->engine, &st);
    h.active = st.active;
    h.queued = st.queued;
    // Tokens/s since the previous heartbeat (one interval: "recent").
    int64_t now = s_now_ms();
    if (n->tps_ms && now > n->tps_ms)
        n->recent_tps = (float)((double)(st.gen_tokens - n->tps_tokens) * 1000.0 /
                                (double)(now - n->tps_ms));
    n->tps_tokens = st.gen_tokens;
    n->tps_ms = now;
    h.recent_tps = n->recent_tps;
    h.draining = n->draining;
    h.seq = ++n->hb_seq;
    h.interval_ms = n->conf.heartbeat_ms;
    env.kind_case = MESH__ENVELOPE__KIND_HEARTBEAT;
    env.heartbeat = &h;
    for (int i = 0; i < n->n_peers; i++) {
        int rc = mesh_wire_send(n->router, n->peers[i].rid, n->peers[i].rid_len, &env, 1);
        if (rc == MESH_EIO && errno == EHOSTUNREACH)
            s_drop_peer(n, i--);
    }
}

static int s_find_model(s_node_t *n, const char *name, const char *quant) {
    for (int i = 0; i < n->n_models; i++)
        if (strcasecmp(n->models[i].name, name ? name : "") == 0 &&
            (!quant || !*quant || strcasecmp(n->models[i].quant, quant) == 0))
            return i;
    return -1;
}

static void s_on_generate(s_node_t *n, int peer, const Mesh__GenerateRequest *g) {
    const s_peer_t *p = &n->peers[peer];
    char err[512];
    if (n->draining) {
        mesh_wire_send_error(n->router, p->rid, p->rid_len, MESH_EBUSY, g->request_id,
                             "node is draining: it takes no new requests");
        return;
    }
    int m = s_find_model(n, g->model, g->quant);
    if (m < 0) {
        snprintf(err, sizeof err, "model '%s'%s%s is not served here", g->model ? g->model : "",
                 g->quant && *g->quant ? " quant " : "", g->quant ? g->quant : "");
        mesh_wire_send_error(n->router, p->rid, p->rid_len, MESH_ENOTFOUND, g->request_id, err);
        return;
    }
    if (!g->sampling || !g->sampling->max_tokens || g->input_case == 0) {
        mesh_wire_send_error(n->router, p->rid, p->rid_len, MESH_EINVAL, g->request_id,
                             "generate needs an input and sampling.max_tokens >= 1");
        return;
    }
    if (n->n_running >= (int)(sizeof n->running / sizeof n->running[0])) {
        mesh_wire_send_error(n->router, p->rid, p->rid_len, MESH_EBUSY, g->request_id,
                             "too many requests on this node");
        return;
    }
    int rc = mesh_node_engine_submit(n->engine, &n->models[m], g, err, sizeof err);
    if (rc) {
        MESH_INFO("node: request %llu refused: %s", (unsigned long long)g->request_id, err);
        mesh_wire_send_error(n->router, p->rid, p->rid_len, rc, g->request_id, err);
        return;
    }
    n->running[n->n_running].id = g->request_id;
    memcpy(n->running[n->n_running].rid, p->rid, p->rid_len);
    n->running[n->n_running].rid_len = p->rid_len;
    n->running[n->n_running].index = g->index_base;
    n->n_running++;
}

// TokenizeRequest: render + tokenize with the model's own tokenizer, so the
// coordinator routes on the exact prompt length. Runs on the socket thread
// (tokenizer and template are immutable, safe beside the engine threads).
static void s_on_tokenize(s_node_t *n, const uint8_t *rid, size_t rid_len,
                          const Mesh__TokenizeRequest *t) {
    char err[512];
    int m = s_find_model(n, t->model, NULL);
    if (m < 0 || !n->models[m].can_generate) {
        snprintf(err, sizeof err, "tokenize: model '%s' is not served here",
                 t->model ? t->model : "");
        mesh_wire_send_error(n->router, rid, rid_len, MESH_ENOTFOUND, t->request_id, err);
        return;
    }
    const Mesh__ChatInput *chat = NULL;
    const char *prompt = NULL;
    if (t->input_case == MESH__TOKENIZE_REQUEST__INPUT_CHAT)
        chat = t->chat;
    else if (t->input_case == MESH__TOKENIZE_REQUEST__INPUT_PROMPT)
        prompt = t->prompt ? t->prompt : "";
    if (!chat && !prompt) {
        mesh_wire_send_error(n->router, rid, rid_len, MESH_EINVAL, t->request_id,
                             "tokenize needs chat messages or a prompt");
        return;
    }
    int32_t *ids = NULL;
    size_t cnt = 0;
    int rc = mesh_node_engine_tokenize(n->engine, &n->models[m], chat, prompt, &ids, &cnt, err,
                                       sizeof err);
    if (rc) {
        mesh_wire_send_error(n->router, rid, rid_len, rc, t->request_id, err);
        return;
    }
    Mesh__Envelope env = MESH__ENVELOPE__INIT;
    Mesh__TokenizeReply k = MESH__TOKENIZE_REPLY__INIT;
    k.request_id = t->request_id;
    k.n_ids = cnt;
    k.ids = ids;
    env.kind_case = MESH__ENVELOPE__KIND_TOKENIZE_REPLY;
    env.tokenize_reply = &k;
    rc = mesh_wire_send(n->router, rid, rid_len, &env, 1);
    if (rc) // e.g. over MESH_WIRE_MAX_BYTES: say so instead of going quiet
        mesh_wire_send_error(n->router, rid, rid_len, rc, t->request_id,
                             "tokenize: the reply does not fit in one message");
    free(ids);
}

static int s_peer_index(s_node_t *n, const uint8_t *rid, size_t len) {
    for (int i = 0; i < n->n_peers; i++)
        if (n->peers[i].rid_len == len && memcmp(n->peers[i].rid, rid, len) == 0)
            return i;
    return -1;
}

static void s_on_message(s_node_t *n, const uint8_t *rid, size_t rid_len, const uint8_t *buf,
                         size_t len) {
    Mesh__Envelope *env = NULL;
    char err[256];
    int rc = mesh_wire_unpack(buf, len, &env, err, sizeof err);
    if (rc) {
        MESH_WARN("node: bad message from a coordinator: %s", err);
        mesh_wire_send_error(n->router, rid, rid_len, rc, 0, err);
        mesh_wire_free(&env);
        return;
    }
    int peer = s_peer_index(n, rid, rid_len);
    if (env->kind_case == MESH__ENVELOPE__KIND_HELLO) {
        if (peer < 0) {
            if (n->n_peers == S_MAX_PEERS)
                s_drop_peer(n, 0); // oldest out: a reconnecting coordinator wins
            peer = n->n_peers++;
            memcpy(n->peers[peer].rid, rid, rid_len);
            n->peers[peer].rid_len = rid_len;
            n->peers[peer].bye_pending = 0;
            MESH_INFO("node: coordinator '%s' connected", env->hello->coord_name);
        }
        n->peers[peer].last_seen_ms = s_now_ms();
        s_send_caps(n, &n->peers[peer]);
        mesh_wire_free(&env);
        return;
    }
    if (peer < 0) {
        mesh_wire_send_error(n->router, rid, rid_len, MESH_ESTATE, 0,
                             "send hello first");
        mesh_wire_free(&env);
        return;
    }
    n->peers[peer].last_seen_ms = s_now_ms();
    switch (env->kind_case) {
    case MESH__ENVELOPE__KIND_GENERATE:
        s_on_generate(n, peer, env->generate);
        break;
    case MESH__ENVELOPE__KIND_CANCEL:
        mesh_node_engine_cancel(n->engine, env->cancel->request_id);
        break;
    case MESH__ENVELOPE__KIND_DRAIN:
        // A SIGTERM drain ends in exit: a coordinator cannot lift it.
        n->draining = env->drain->on || s_term;
        MESH_INFO("node: %s by the coordinator", n->draining ? "draining" : "drain lifted");
        s_send_caps(n, &n->peers[peer]);
        break;
    case MESH__ENVELOPE__KIND_PING:
        mesh_wire_send_ping(n->router, rid, rid_len, 1, env->ping->nonce);
        break;
    case MESH__ENVELOPE__KIND_PONG:
        if (env->pong->nonce == S_BYE_NONCE)
            n->peers[peer].bye_pending = 0;
        break;
    case MESH__ENVELOPE__KIND_TOKENIZE:
        s_on_tokenize(n, rid, rid_len, env->tokenize);
        break;
    default:
        MESH_WARN("node: unexpected '%s' from a coordinator", mesh_wire_kind_name(env));
        mesh_wire_send_error(n->router, rid, rid_len, MESH_EPROTO, 0,
                             "unexpected message kind for a node");
        break;
    }
    mesh_wire_free(&env);
}

// The event's token piece and alternatives into o (one allocation, blob).
// 0 or MESH_ENOMEM.
static int s_copy_pieces(s_out_t *o, const mesh_node_event_t *ev) {
    int n = ev->n_top < MESH_NODE_MAX_TOP ? ev->n_top : MESH_NODE_MAX_TOP;
    size_t total = ev->piece_len;
    for (int i = 0; i < n; i++)
        total += ev->top[i].piece_len;
    o->blob = malloc(total ? total : 1);
    if (!o->blob)
        return MESH_ENOMEM;
    memcpy(o->blob, ev->piece, ev->piece_len);
    o->piece_len = ev->piece_len;
    size_t at = ev->piece_len;
    for (int i = 0; i < n; i++) {
        const mesh_node_alt_t *a = &ev->top[i];
        memcpy(o->blob + at, a->piece, a->piece_len);
        o->top[i].id = a->token;
        o->top[i].logprob = a->logprob;
        o->top[i].off = at;
        o->top[i].len = a->piece_len;
        at += a->piece_len;
    }
    o->n_top = n;
    return 0;
}

// Engine thread -> socket thread: one queued record per event, sent at
// once (the pipe wakes the socket thread), so tokens stream as they come.
static void s_on_event(void *user, const mesh_node_event_t *ev) {
    s_node_t *n = user;
    s_out_t *o = calloc(1, sizeof *o);
    if (!o)
        return;
    o->request_id = ev->request_id;
    o->token = ev->done ? -1 : ev->token;
    o->logprob = ev->logprob;
    o->has_logprob = ev->has_logprob && !ev->done;
    if (o->has_logprob && s_copy_pieces(o, ev)) {
        o->n_top = 0; // no memory for the pieces: the token still goes, without them
        o->piece_len = 0;
    }
    o->text = strndup(ev->text ? ev->text : "", ev->text ? ev->text_len : 0);
    o->done = ev->done;
    snprintf(o->finish, sizeof o->finish, "%s", ev->finish ? ev->finish : "");
    o->prompt_tokens = ev->prompt_tokens;
    o->completion_tokens = ev->completion_tokens;
    pthread_mutex_lock(&n->out_lock);
    *n->out_tail = o;
    n->out_tail = &o->next;
    pthread_mutex_unlock(&n->out_lock);
    char b = 1;
    ssize_t w = write(n->wake[1], &b, 1);
    (void)w;
}

static void s_flush_out(s_node_t *n) {
    pthread_mutex_lock(&n->out_lock);
    s_out_t *o = n->out_head;
    n->out_head = NULL;
    n->out_tail = &n->out_head;
    pthread_mutex_unlock(&n->out_lock);
    while (o) {
        s_out_t *next = o->next;
        int ri = -1;
        for (int i = 0; i < n->n_running; i++)
            if (n->running[i].id == o->request_id)
                ri = i;
        if (ri >= 0) {
            const uint8_t *rid = n->running[ri].rid;
            size_t rid_len = n->running[ri].rid_len;
            Mesh__Envelope env = MESH__ENVELOPE__INIT;
            // A token; or, at the end, text the stream still held back (a
            // chunk without ids at the current index).
            if (o->token >= 0 || (o->text && o->text[0])) {
                Mesh__TokenChunk k = MESH__TOKEN_CHUNK__INIT;
                k.request_id = o->request_id;
                k.n_ids = o->token >= 0 ? 1 : 0;
                k.ids = &o->token;
                k.text = o->text ? o->text : (char *)"";
                k.n_logprobs = o->token >= 0 && o->has_logprob ? 1 : 0;
                k.logprobs = &o->logprob;
                // With the logprob: the token's own bytes and its alternatives.
                Mesh__TokenInfo info = MESH__TOKEN_INFO__INIT, *infop = &info;
                Mesh__TokenLogprob alt[MESH_NODE_MAX_TOP], *altp[MESH_NODE_MAX_TOP];
                if (k.n_logprobs) {
                    info.piece = (ProtobufCBinaryData){o->piece_len, o->blob};
                    for (int i = 0; i < o->n_top; i++) {
                        mesh__token_logprob__init(&alt[i]);
                        alt[i].id = o->top[i].id;
                        alt[i].logprob = o->top[i].logprob;
                        alt[i].piece = (ProtobufCBinaryData){o->top[i].len,
                                                             o->blob + o->top[i].off};
                        altp[i] = &alt[i];
                    }
                    info.n_top = (size_t)o->n_top;
                    info.top = altp;
                    k.n_info = 1;
                    k.info = &infop;
                }
                k.index = n->running[ri].index;
                n->running[ri].index += (uint32_t)k.n_ids;
                env.kind_case = MESH__ENVELOPE__KIND_CHUNK;
                env.chunk = &k;
                mesh_wire_send(n->router, rid, rid_len, &env, 0);
            }
            if (o->done) {
                Mesh__Envelope d = MESH__ENVELOPE__INIT;
                Mesh__GenerateDone k = MESH__GENERATE_DONE__INIT;
                k.request_id = o->request_id;
                k.finish_reason = o->finish;
                k.prompt_tokens = o->prompt_tokens;
                k.completion_tokens = o->completion_tokens;
                d.kind_case = MESH__ENVELOPE__KIND_DONE;
                d.done = &k;
                mesh_wire_send(n->router, rid, rid_len, &d, 0);
                n->running[ri] = n->running[--n->n_running];
            }
        }
        free(o->text);
        free(o->blob);
        free(o);
        o = next;
    }
}

// ZAP (RFC 27): admit a CURVE client only if its public key is trusted.
static void s_zap(s_node_t *n) {
    zmq_msg_t fr[8];
    int nf = 0, more = 1;
    while (more && nf < 8) {
        zmq_msg_init(&fr[nf]);
        if (zmq_msg_recv(&fr[nf], n->zap, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&fr[nf]);
            break;
        }
        more = zmq_msg_more(&fr[nf]);
        nf++;
    }
    while (more) { // more frames than RFC 27 has: drain them
        zmq_msg_t x;
        zmq_msg_init(&x);
        if (zmq_msg_recv(&x, n->zap, 0) < 0)
            more = 0;
        else
            more = zmq_msg_more(&x);
        zmq_msg_close(&x);
    }
    if (nf < 6)
        goto out;
    const char *status = "400", *text = "key not trusted";
    char key[41] = "?", peer_addr[64] = "?";
    size_t al = zmq_msg_size(&fr[3]);
    if (al < sizeof peer_addr) {
        memcpy(peer_addr, zmq_msg_data(&fr[3]), al);
        peer_addr[al] = 0;
    }
    if (nf >= 7 && zmq_msg_size(&fr[5]) == 5 && memcmp(zmq_msg_data(&fr[5]), "CURVE", 5) == 0 &&
        zmq_msg_size(&fr[6]) == 32) {
        zmq_z85_encode(key, zmq_msg_data(&fr[6]), 32);
        if (mesh_trusted_find(n->conf.trusted, key))
            status = "200", text = "OK";
    }
    if (status[0] != '2')
        MESH_WARN("node: refused a connection from %s: key %s is not trusted", peer_addr, key);
    zmq_send(n->zap, "1.0", 3, ZMQ_SNDMORE);
    zmq_send(n->zap, zmq_msg_data(&fr[1]), zmq_msg_size(&fr[1]), ZMQ_SNDMORE);
    zmq_send(n->zap, status, 3, ZMQ_SNDMORE);
    zmq_send(n->zap, text, strlen(text), ZMQ_SNDMORE);
    zmq_send(n->zap, key, status[0] == '2' ? strlen(key) : 0, ZMQ_SNDMORE);
    zmq_send(n->zap, "", 0, 0);
out:
    for (int i = 0; i < nf; i++)
        zmq_msg_close(&fr[i]);
}

static int s_setup(s_node_t *n, char *err, size_t err_len) {
    int rc = mesh_keys_load_or_create(n->conf.key_path, n->kp.pub, n->kp.sec);
    if (rc) {
        snprintf(err, err_len, "%s", mesh_keys_last_error());
        return rc;
    }
    if (mesh_trusted_count(n->conf.trusted) == 0) {
        snprintf(err, err_len,
                 "no trusted coordinator keys (--trust KEY or --trusted-keys FILE): every "
                 "connection would be refused");
        return MESH_EINVAL;
    }
    mesh_node_engine_opts_t eo = {.backend = n->conf.backend,
                                  .device = n->conf.device,
                                  .n_threads = n->conf.threads};
    rc = mesh_node_engine_new(&eo, s_on_event, n, &n->engine);
    if (rc)
        return rc;
    // Probe every model first: the weights of all of them come out of the
    // budget before the KV pools are sized.
    for (int i = 0; i < n->conf.n_models; i++) {
        char *spec = n->conf.model_spec[i], *path = spec, *name = NULL;
        char *eq = strchr(spec, '=');
        if (eq && (!strchr(spec, '/') || eq < strchr(spec, '/'))) {
            *eq = 0;
            name = spec;
            path = eq + 1;
        }
        mesh_node_model_t *m = &n->models[n->n_models];
        rc = mesh_node_model_probe(path, name, m, err, err_len);
        if (rc)
            return rc;
        if (n->conf.ctx_cap && n->conf.ctx_cap < m->ctx_limit)
            m->ctx_limit = n->conf.ctx_cap;
        n->weights += m->file_size;
        n->n_models++;
    }
    n->mem_total = n->conf.mem_limit ? n->conf.mem_limit : s_mem_available();
    if (n->weights > n->mem_total) {
        snprintf(err, err_len, "models need %.1f MiB but the memory budget is %.1f MiB",
                 (double)n->weights / 1048576.0, (double)n->mem_total / 1048576.0);
        return MESH_ENOSPACE;
    }
    for (int i = 0; i < n->n_models; i++) {
        mesh_node_model_t *m = &n->models[i];
        // KV pool: the budget after weights, split evenly, but no more than
        // S_KV_CONTEXTS full contexts (more would only sit unused) at the
        // engine's f32 cache (twice the f16 estimate of the probe).
        uint64_t share = (n->mem_total - n->weights) / (uint64_t)n->n_models;
        uint64_t cap = m->kv_bytes_per_token * 2 * (uint64_t)m->ctx_limit * S_KV_CONTEXTS;
        uint64_t kv = cap && cap < share ? cap : share;
        rc = mesh_node_engine_load(n->engine, m, kv, err, err_len);
        if (rc)
            return rc;
        if (n->conf.ctx_cap && n->conf.ctx_cap < m->ctx_limit)
            m->ctx_limit = n->conf.ctx_cap;
        MESH_INFO("node: model %s (%s, %s, %.1f MiB, ctx %u, %llu KV bytes/token, "
                  "%.0f/%.0f tok/s prefill/decode)", m->name, m->arch, m->quant,
                  (double)m->file_size / 1048576.0, m->ctx_limit,
                  (unsigned long long)m->kv_bytes_per_token, (double)m->prefill_tps,
                  (double)m->decode_tps);
    }
    n->zctx = zmq_ctx_new();
    if (!zmq_has("curve")) {
        snprintf(err, err_len, "libzmq has no CURVE support");
        return MESH_EUNSUPPORTED;
    }
    n->zap = zmq_socket(n->zctx, ZMQ_REP);
    if (zmq_bind(n->zap, "inproc://zeromq.zap.01") != 0) {
        snprintf(err, err_len, "cannot start the ZAP handler: %s", zmq_strerror(errno));
        return MESH_EIO;
    }
    n->router = zmq_socket(n->zctx, ZMQ_ROUTER);
    int one = 1, zero = 0;
    int64_t maxmsg = 2 * (int64_t)MESH_WIRE_MAX_BYTES; // bigger: the link is dropped
    zmq_setsockopt(n->router, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(n->router, ZMQ_ROUTER_MANDATORY, &one, sizeof one);
    zmq_setsockopt(n->router, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
    zmq_setsockopt(n->router, ZMQ_CURVE_SERVER, &one, sizeof one);
    zmq_setsockopt(n->router, ZMQ_CURVE_SECRETKEY, n->kp.sec, MESH_KEY_Z85_LEN);
    zmq_setsockopt(n->router, ZMQ_ZAP_DOMAIN, "mesh", 4);
    if (zmq_bind(n->router, n->conf.listen) != 0) {
        snprintf(err, err_len, "cannot listen on %s: %s", n->conf.listen, zmq_strerror(errno));
        return MESH_EIO;
    }
    if (pipe2(n->wake, O_NONBLOCK | O_CLOEXEC) != 0) {
        snprintf(err, err_len, "pipe: %s", strerror(errno));
        return MESH_EIO;
    }
    return 0;
}

static void s_run(s_node_t *n) {
    uint8_t *buf = malloc(MESH_WIRE_MAX_BYTES * 2 + 1);
    if (!buf)
        return;
    int64_t next_hb = s_now_ms();
    int announced_drain = 0;
    int64_t bye_until = 0; // set when the goodbye PINGs go out
    for (;;) {
        if (s_term && !announced_drain) {
            // Drain: take nothing new, finish what runs, then exit.
            n->draining = 1;
            announced_drain = 1;
            MESH_INFO("node: SIGTERM: draining (%d running)", n->n_running);
            for (int i = 0; i < n->n_peers; i++)
                s_send_caps(n, &n->peers[i]);
        }
        if (announced_drain && n->n_running == 0) {
            // The last replies are in the socket, but a message queued there
            // is not yet delivered: closing now can lose a drained request's
            // final tokens and DONE (seen in test_sigterm_drains), and the
            // coordinator would fail it over as if we had died. So ask each
            // coordinator for a PONG; it handles a connection's messages in
            // order, so its PONG says it has everything we sent before. A
            // coordinator that never answers costs S_BYE_WAIT_MS.
            if (!bye_until) {
                bye_until = s_now_ms() + S_BYE_WAIT_MS;
                for (int i = 0; i < n->n_peers; i++)
                    n->peers[i].bye_pending = mesh_wire_send_ping(n->router, n->peers[i].rid,
                                                                  n->peers[i].rid_len, 0,
                                                                  S_BYE_NONCE) == 0;
            }
            int pending = 0;
            for (int i = 0; i < n->n_peers; i++)
                pending += n->peers[i].bye_pending;
            if (!pending)
                break;
            if (s_now_ms() >= bye_until) {
                MESH_WARN("node: %d coordinator(s) did not confirm our last replies in %d ms",
                          pending, S_BYE_WAIT_MS);
                break;
            }
        }
        zmq_pollitem_t it[3] = {{n->router, 0, ZMQ_POLLIN, 0},
                                {n->zap, 0, ZMQ_POLLIN, 0},
                                {NULL, n->wake[0], ZMQ_POLLIN, 0}};
        int64_t wait = (bye_until && bye_until < next_hb ? bye_until : next_hb) - s_now_ms();
        zmq_poll(it, 3, wait < 0 ? 0 : (long)wait);
        if (it[1].revents & ZMQ_POLLIN)
            s_zap(n);
        if (it[2].revents & ZMQ_POLLIN) {
            char tmp[256];
            while (read(n->wake[0], tmp, sizeof tmp) > 0) {
            }
        }
        s_flush_out(n);
        for (int burst = 0; burst < 256 && (it[0].revents & ZMQ_POLLIN); burst++) {
            uint8_t rid[256];
            int rl = zmq_recv(n->router, rid, sizeof rid, ZMQ_DONTWAIT);
            if (rl < 0)
                break;
            int more = 0;
            size_t ml = sizeof more;
            zmq_getsockopt(n->router, ZMQ_RCVMORE, &more, &ml);
            if (!more || rl > (int)sizeof rid)
                continue;
            int len = zmq_recv(n->router, buf, MESH_WIRE_MAX_BYTES * 2 + 1, 0);
            zmq_getsockopt(n->router, ZMQ_RCVMORE, &more, &ml);
            int extra = 0;
            while (more) { // one envelope per message: drop extra frames
                char junk[64];
                zmq_recv(n->router, junk, sizeof junk, 0);
                zmq_getsockopt(n->router, ZMQ_RCVMORE, &more, &ml);
                extra = 1;
            }
            if (len < 0)
                continue;
            if (extra) {
                mesh_wire_send_error(n->router, rid, (size_t)rl, MESH_EFORMAT, 0,
                                     "one envelope per message, got several frames");
                continue;
            }
            s_on_message(n, rid, (size_t)rl, buf, (size_t)len);
        }
        if (s_now_ms() >= next_hb) {
            s_heartbeat(n);
            next_hb = s_now_ms() + n->conf.heartbeat_ms;
        }
    }
    free(buf);
}

int main(int argc, char **argv) {
    static const struct option opts[] = {
        {"config", 1, 0, 'C'}, {"listen", 1, 0, 0},      {"key", 1, 0, 0},
        {"trust", 1, 0, 0},    {"trusted-keys", 1, 0, 0}, {"model", 1, 0, 0},
        {"backend", 1, 0, 0},  {"device", 1, 0, 0},       {"mem-limit", 1, 0, 0}, {"threads", 1, 0, 0},
        {"ctx-limit", 1, 0, 0}, {"heartbeat-ms", 1, 0, 0}, {"name", 1, 0, 0},
        {"log-level", 1, 0, 0}, {"print-key", 0, 0, 'P'}, {"help", 0, 0, 'h'},
        {0, 0, 0, 0}};
    static s_node_t node;
    s_node_t *n = &node;
    s_conf_t *c = &n->conf;
    snprintf(c->listen, sizeof c->listen, "tcp://0.0.0.0:7701");
    snprintf(c->key_path, sizeof c->key_path, "meshnode.key");
    snprintf(c->backend, sizeof c->backend, "cpu");
    c->heartbeat_ms = 1000;
    c->trusted = mesh_trusted_new();
    if (!c->trusted) {
        fprintf(stderr, "meshnode: out of memory\n");
        return 1;
    }
    if (gethostname(c->name, sizeof c->name) != 0)
        snprintf(c->name, sizeof c->name, "node");
    c->name[sizeof c->name - 1] = 0;
    // The config file first, so flags override it.
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc && s_load_config(c, argv[i + 1]))
            return 2;
    int ch, idx, print_key = 0;
    while ((ch = getopt_long(argc, argv, "h", opts, &idx)) != -1) {
        if (ch == 0) {
            if (s_set(c, opts[idx].name, optarg, "command line"))
                return 2;
        } else if (ch == 'C') {
            // read above
        } else if (ch == 'P') {
            print_key = 1;
        } else if (ch == 'h') {
            s_usage(stdout);
            return 0;
        } else {
            s_usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "meshnode: unexpected argument '%s' (see --help)\n", argv[optind]);
        return 2;
    }
    char err[1200];
    if (print_key) {
        mesh_log_set_level(MESH_LOG_WARN); // stdout is the key alone
        if (mesh_keys_load_or_create(c->key_path, n->kp.pub, n->kp.sec)) {
            fprintf(stderr, "meshnode: %s\n", mesh_keys_last_error());
            return 1;
        }
        printf("%s\n", n->kp.pub);
        return 0;
    }
    signal(SIGPIPE, SIG_IGN);
    pthread_mutex_init(&n->out_lock, NULL);
    n->out_tail = &n->out_head;
    n->wake[0] = n->wake[1] = -1;
    int rc = s_setup(n, err, sizeof err);
    if (rc) {
        fprintf(stderr, "meshnode: %s\n", err);
        return 1;
    }
    struct sigaction sa = {0};
    sa.sa_handler = s_on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    MESH_INFO("node: %s listening on %s (CURVE, %zu trusted key(s)), public key %s, "
              "budget %.1f MiB",
              c->name, c->listen, mesh_trusted_count(c->trusted), n->kp.pub, (double)n->mem_total / 1048576.0);
    s_run(n);
    MESH_INFO("node: drained, exiting");
    // Each coordinator has confirmed our last replies (s_run's goodbye), or
    // did not in time: then give what is still queued up to 2 s to leave
    // rather than the run-time linger of 0.
    int linger = 2000;
    zmq_setsockopt(n->router, ZMQ_LINGER, &linger, sizeof linger);
    zmq_close(n->router);
    zmq_close(n->zap);
    zmq_ctx_term(n->zctx);
    mesh_node_engine_destroy(&n->engine);
    return 0;
}
