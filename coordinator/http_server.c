// SPDX-License-Identifier: MIT
// The OpenAI-compatible endpoint: HTTP in (libmicrohttpd, a thread per
// connection), the core's request API out, SSE or one JSON body back.
//
// A generation (s_gen_t) is shared by two threads: the core thread fills it
// from stream callbacks (text, route, done) under the generation's mutex,
// doing no more than a copy; the connection thread parses the text (model
// output parser), builds chunks and writes them. Two references keep it
// alive: the core's, dropped in on_done, and the connection's, dropped when
// MHD is done with the response. So a client that hangs up, a node that
// fails and a shutdown can come in any order.
#include "http_server.h"

#include "metrics.h"
#include "mesh_err.h"
#include "mesh_log.h"
#include "openai_request.h"
#include "openai_response.h"
#include "output_parser.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <microhttpd.h>
#include <poll.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define S_DEFAULT_MAX_BODY (8u << 20)   // bytes
#define S_DEFAULT_MAX_QUEUE 256u        // generations in flight
#define S_WAIT_MS 50                    // how often a waiting thread checks its client

static const double s_ttft_buckets[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                        1,     2.5,  5,     10,   30,  60};
static const double s_tpot_buckets[] = {0.001, 0.0025, 0.005, 0.01, 0.02, 0.05,
                                        0.1,   0.25,   0.5,   1,    2.5};

struct mesh_http {
    struct MHD_Daemon *d;
    mesh_coord_t *core;
    char **keys;                 // NULL: no API keys
    size_t n_keys;
    size_t max_body;             // bytes
    uint32_t max_queue;          // generations
    atomic_uint inflight;        // generations the core still runs
    atomic_int stopping;         // set by mesh_http_stop: waiting threads give up
    mesh_metrics_t *metrics;
};

// ---- API keys ----

int mesh_http_read_keys(const char *path, char ***keys, size_t *n, char *err, size_t err_len) {
    *keys = NULL;
    *n = 0;
    FILE *f = fopen(path, "re");
    if (!f) {
        snprintf(err, err_len, "%s: cannot open API key file: %s", path, strerror(errno));
        return MESH_EIO;
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || (st.st_mode & 077)) {
        fclose(f);
        snprintf(err, err_len, "%s: API key file is readable by group or others; chmod 600 it",
                 path);
        return MESH_EPERM;
    }
    char line[512];
    int ln = 0, rc = 0;
    while (fgets(line, sizeof line, f)) {
        ln++;
        line[strcspn(line, "\r\n")] = 0;
        char *s = line;
        while (*s == ' ' || *s == '\t')
            s++;
        size_t len = strlen(s);
        while (len && (s[len - 1] == ' ' || s[len - 1] == '\t'))
            s[--len] = 0;
        if (!len || *s == '#')
            continue;
        int ok = len >= 8 && len <= 200;
        for (size_t i = 0; ok && i < len; i++)
            ok = s[i] > 32 && s[i] < 127;
        if (!ok) {
            snprintf(err, err_len,
                     "%s:%d: an API key is 8 to 200 printable characters without spaces", path,
                     ln);
            rc = MESH_EFORMAT;
            break;
        }
        char **k = realloc(*keys, (*n + 1) * sizeof *k);
        if (!k || !(k[*n] = strdup(s))) {
            if (k)
                *keys = k;
            rc = MESH_ENOMEM;
            break;
        }
        *keys = k;
        (*n)++;
    }
    fclose(f);
    if (!rc && !*n) {
        snprintf(err, err_len, "%s: API key file holds no key", path);
        rc = MESH_EFORMAT;
    }
    if (rc) {
        for (size_t i = 0; i < *n; i++)
            free((*keys)[i]);
        free(*keys);
        *keys = NULL;
        *n = 0;
    }
    return rc;
}

// Constant time per key, so a wrong key's prefix is not timed out of us.
static int s_key_ok(const mesh_http_t *h, const char *auth) {
    if (!h->n_keys)
        return 1;
    if (!auth || strncasecmp(auth, "Bearer ", 7) != 0)
        return 0;
    const char *k = auth + 7;
    size_t kl = strlen(k);
    int ok = 0;
    for (size_t i = 0; i < h->n_keys; i++)
        if (strlen(h->keys[i]) == kl && sodium_memcmp(h->keys[i], k, kl) == 0)
            ok = 1;
    return ok;
}

// ---- small growable string ----

typedef struct {
    char *s;
    size_t len, cap;
} s_str_t;

static int s_str_add(s_str_t *b, const char *t, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *s = realloc(b->s, cap);
        if (!s)
            return MESH_ENOMEM;
        b->s = s;
        b->cap = cap;
    }
    memcpy(b->s + b->len, t, n);
    b->len += n;
    b->s[b->len] = 0;
    return 0;
}

// ---- a generation ----

typedef struct {
    mesh_http_t *h;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int refs;                   // core + connection
    uint64_t id;
    // Filled by the core thread, under mu.
    int routed, done, status;
    char detail[400];
    uint32_t prompt_tokens, completion_tokens;
    s_str_t pend;               // text not yet parsed
    cJSON *pend_lp;             // logprob entries not yet sent (NULL: none)
    cJSON *lp_next;             // entries for the next chunk's ids (on_logprobs)
    struct timespec t0, t_last; // submit, last chunk
    int got_first;
    mesh_openai_meta_t meta;    // node/route change on failover
    // Connection thread only.
    mesh_openai_request_t rq;
    struct MHD_Connection *conn;
    const mesh_out_family_t *fam;
    mesh_out_parser_t *parser;
    s_str_t out;                // SSE bytes to write
    size_t out_off;
    int ended;                  // stream fully built
    int sent_role;
    s_str_t content, reasoning; // non-stream accumulation
    cJSON *tool_calls;          // array
    cJSON *lp_all;              // array
    long text_offset;           // completions: code points before the next entry
    cJSON *lp_hold;             // completions stream: entries whose text is not out yet
    int n_tool_calls;
} s_gen_t;

static double s_since(const struct timespec *a, const struct timespec *b) {
    return (double)(b->tv_sec - a->tv_sec) + (double)(b->tv_nsec - a->tv_nsec) * 1e-9;
}

static void s_gen_unref(s_gen_t *g) {
    pthread_mutex_lock(&g->mu);
    int left = --g->refs;
    pthread_mutex_unlock(&g->mu);
    if (left)
        return;
    if (g->parser)
        g->fam->destroy(&g->parser);
    mesh_openai_request_clear(&g->rq);
    free(g->pend.s);
    free(g->out.s);
    free(g->content.s);
    free(g->reasoning.s);
    cJSON_Delete(g->lp_next);
    cJSON_Delete(g->pend_lp);
    cJSON_Delete(g->tool_calls);
    cJSON_Delete(g->lp_all);
    cJSON_Delete(g->lp_hold);
    pthread_cond_destroy(&g->cv);
    pthread_mutex_destroy(&g->mu);
    free(g);
}

// -- core callbacks (core thread; short: copy and signal) --

static void s_on_route(void *user, const char *node, const char *reason) {
    s_gen_t *g = user;
    pthread_mutex_lock(&g->mu);
    snprintf(g->meta.node, sizeof g->meta.node, "%s", node);
    snprintf(g->meta.route, sizeof g->meta.route, "%s", reason);
    g->routed = 1;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
    const char *l[] = {"node", node, "reason", reason, NULL};
    mesh_metrics_add(g->h->metrics, "mesh_routing_decisions_total", l, 1);
    if (strcmp(reason, "failover") == 0) {
        const char *lf[] = {"model", g->meta.model, NULL};
        mesh_metrics_add(g->h->metrics, "mesh_failovers_total", lf, 1);
    }
}

// Entries are built here (core thread) from what the node reported, and
// joined with the chunk that follows.
static void s_on_logprobs(void *user, const mesh_coord_logprob_t *lp, size_t n) {
    s_gen_t *g = user;
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; a && i < n; i++) {
        cJSON *e = mesh_openai_logprob_entry(&lp[i]);
        if (!e || !cJSON_AddItemToArray(a, e)) {
            cJSON_Delete(e);
            cJSON_Delete(a);
            a = NULL;
        }
    }
    pthread_mutex_lock(&g->mu);
    cJSON_Delete(g->lp_next);
    g->lp_next = a;
    pthread_mutex_unlock(&g->mu);
}

static void s_on_chunk(void *user, const int32_t *ids, size_t n, const char *text) {
    (void)ids;
    s_gen_t *g = user;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    pthread_mutex_lock(&g->mu);
    if (text)
        s_str_add(&g->pend, text, strlen(text));
    if (g->rq.logprobs && n) {
        if (!g->pend_lp)
            g->pend_lp = cJSON_CreateArray();
        cJSON *next = g->lp_next;
        g->lp_next = NULL;
        if (cJSON_GetArraySize(next) != (int)n) { // the node sent none: null logprobs
            cJSON_Delete(next);
            next = NULL;
        }
        for (size_t i = 0; i < n && g->pend_lp; i++) {
            cJSON *e = next ? cJSON_DetachItemFromArray(next, 0)
                            : mesh_openai_logprob_entry(NULL);
            if (!e)
                continue;
            // An older node sends no token bytes: a chunk's text then stands
            // for its first token (nodes send one token per chunk).
            if (i == 0 && text && cJSON_IsNull(cJSON_GetObjectItem(e, "bytes")))
                cJSON_ReplaceItemInObject(e, "token", cJSON_CreateString(text));
            cJSON_AddItemToArray(g->pend_lp, e);
        }
        cJSON_Delete(next);
    }
    double ttft = -1, tpot = -1;
    if (!g->got_first) {
        g->got_first = 1;
        ttft = s_since(&g->t0, &now);
    } else if (n) {
        tpot = s_since(&g->t_last, &now) / (double)n;
    }
    g->t_last = now;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
    const char *l[] = {"model", g->meta.model, NULL};
    if (ttft >= 0)
        mesh_metrics_observe(g->h->metrics, "mesh_time_to_first_token_seconds", l, ttft);
    if (tpot >= 0)
        for (size_t i = 0; i < n; i++)
            mesh_metrics_observe(g->h->metrics, "mesh_time_per_output_token_seconds", l, tpot);
}

static void s_on_done(void *user, int status, const char *detail, uint32_t prompt_tokens,
                      uint32_t completion_tokens) {
    s_gen_t *g = user;
    atomic_fetch_sub(&g->h->inflight, 1);
    if (status == 0) {
        const char *l[] = {"model", g->meta.model, NULL};
        mesh_metrics_add(g->h->metrics, "mesh_prompt_tokens_total", l, prompt_tokens);
        mesh_metrics_add(g->h->metrics, "mesh_completion_tokens_total", l, completion_tokens);
    }
    pthread_mutex_lock(&g->mu);
    g->done = 1;
    g->status = status;
    snprintf(g->detail, sizeof g->detail, "%s", detail ? detail : "");
    g->prompt_tokens = prompt_tokens;
    g->completion_tokens = completion_tokens;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
    s_gen_unref(g);
}

// -- connection side --

// 1 once the client has closed its end (or the socket broke).
static int s_peer_gone(struct MHD_Connection *conn) {
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci)
        return 0;
    struct pollfd p = {.fd = ci->connect_fd, .events = POLLRDHUP};
    return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL));
}

// Waits (mu held) until pred holds or the client hangs up; on hang-up asks
// the core to cancel (mu released meanwhile) and returns 0. pred: 0 routed-or-done, 1 data-or-done,
// 2 done.
static int s_wait(s_gen_t *g, int what) {
    for (;;) {
        int ok = g->done || (what == 0 && g->routed) ||
                 (what == 1 && (g->pend.len || g->pend_lp));
        if (ok)
            return 1;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += S_WAIT_MS * 1000000L;
        if (ts.tv_nsec >= 1000000000L)
            ts.tv_sec++, ts.tv_nsec -= 1000000000L;
        pthread_cond_timedwait(&g->cv, &g->mu, &ts);
        if (!g->done && !(what == 1 && (g->pend.len || g->pend_lp)) &&
            (atomic_load(&g->h->stopping) || s_peer_gone(g->conn))) {
            MESH_INFO("http: %s: client went away or shutdown, canceling", g->meta.id);
            // Never call into the core holding mu: the core thread holds its
            // own lock when it takes mu in a callback (lock order core -> mu).
            pthread_mutex_unlock(&g->mu);
            mesh_coord_cancel(g->h->core, g->id);
            pthread_mutex_lock(&g->mu);
            return 0;
        }
    }
}

static void s_emit_chunk(s_gen_t *g, cJSON *chunk) {
    char *s = mesh_openai_sse(chunk);
    if (s) {
        s_str_add(&g->out, s, strlen(s));
        free(s);
    }
    cJSON_Delete(chunk);
}

// Completions stream: the held entries as the choice's logprobs (their text
// goes out in the same chunk, as OpenAI sends them).
static void s_attach_held(s_gen_t *g, cJSON *choice) {
    if (!g->lp_hold)
        return;
    cJSON *l = mesh_openai_legacy_logprobs(g->lp_hold, g->rq.top_logprobs > 0, &g->text_offset);
    cJSON_Delete(g->lp_hold);
    g->lp_hold = NULL;
    if (l)
        cJSON_ReplaceItemInObject(choice, "logprobs", l);
}

static void s_emit_delta(s_gen_t *g, const char *key, const char *text, size_t len) {
    cJSON *choice, *c = mesh_openai_chunk(&g->meta, &choice);
    char *t = malloc(len + 1);
    if (t) {
        memcpy(t, text, len);
        t[len] = 0;
        if (g->rq.kind == MESH_OPENAI_CHAT) {
            cJSON_AddStringToObject(cJSON_GetObjectItem(choice, "delta"), key, t);
        } else {
            cJSON_ReplaceItemInObject(choice, "text", cJSON_CreateString(t));
            s_attach_held(g, choice);
        }
        free(t);
    }
    s_emit_chunk(g, c);
}

static void s_sink_content(void *user, const char *t, size_t n) {
    s_gen_t *g = user;
    if (g->rq.stream)
        s_emit_delta(g, "content", t, n);
    else
        s_str_add(&g->content, t, n);
}

static void s_sink_reasoning(void *user, const char *t, size_t n) {
    s_gen_t *g = user;
    if (g->rq.stream)
        s_emit_delta(g, "reasoning_content", t, n);
    else
        s_str_add(&g->reasoning, t, n);
}

static void s_sink_tool(void *user, const char *name, const char *args) {
    s_gen_t *g = user;
    char id[40];
    mesh_openai_tool_call_id(id, sizeof id);
    cJSON *tc = cJSON_CreateObject(), *fn = cJSON_CreateObject();
    if (g->rq.stream)
        cJSON_AddNumberToObject(tc, "index", g->n_tool_calls);
    cJSON_AddStringToObject(tc, "id", id);
    cJSON_AddStringToObject(tc, "type", "function");
    cJSON_AddStringToObject(fn, "name", name);
    cJSON_AddStringToObject(fn, "arguments", args);
    cJSON_AddItemToObject(tc, "function", fn);
    if (g->rq.tool_choice != MESH_TOOL_CHOICE_NAMED || strcmp(name, g->rq.tool_name) == 0)
        g->n_tool_calls++;
    if (g->rq.stream) {
        cJSON *choice, *c = mesh_openai_chunk(&g->meta, &choice);
        cJSON *arr = cJSON_AddArrayToObject(cJSON_GetObjectItem(choice, "delta"), "tool_calls");
        cJSON_AddItemToArray(arr, tc);
        s_emit_chunk(g, c);
    } else {
        if (!g->tool_calls)
            g->tool_calls = cJSON_CreateArray();
        cJSON_AddItemToArray(g->tool_calls, tc);
    }
}

// Moves what the core delivered through the output parser (mu not held).
static void s_pump(s_gen_t *g) {
    pthread_mutex_lock(&g->mu);
    s_str_t text = g->pend;
    cJSON *lp = g->pend_lp;
    memset(&g->pend, 0, sizeof g->pend);
    g->pend_lp = NULL;
    pthread_mutex_unlock(&g->mu);
    if (lp && g->rq.stream && g->rq.kind == MESH_OPENAI_COMPLETION) {
        // Held until text goes out (never an empty text chunk), then with it.
        if (!g->lp_hold)
            g->lp_hold = cJSON_CreateArray();
        cJSON *e;
        while (g->lp_hold && (e = cJSON_DetachItemFromArray(lp, 0)))
            cJSON_AddItemToArray(g->lp_hold, e);
        cJSON_Delete(lp);
        lp = NULL;
    }
    if (text.len) {
        if (g->parser)
            g->fam->feed(g->parser, text.s, text.len);
        else
            s_sink_content(g, text.s, text.len);
    }
    free(text.s);
    if (!lp)
        return;
    if (g->rq.stream) {
        // Chat: in their own chunk (empty delta): the output parser decides
        // when text goes out, not the tokens.
        cJSON *choice, *c = mesh_openai_chunk(&g->meta, &choice);
        cJSON *l = cJSON_CreateObject();
        cJSON_AddItemToObject(l, "content", lp);
        cJSON_ReplaceItemInObject(choice, "logprobs", l);
        s_emit_chunk(g, c);
    } else {
        if (!g->lp_all)
            g->lp_all = cJSON_CreateArray();
        cJSON *e;
        while ((e = cJSON_DetachItemFromArray(lp, 0)))
            cJSON_AddItemToArray(g->lp_all, e);
        cJSON_Delete(lp);
    }
}

// Core status -> OpenAI error (status code, type, code).
static void s_core_error(int status, const char *detail, mesh_openai_error_t *e,
                         const char *model) {
    switch (status) {
    case MESH_ENOTFOUND:
        mesh_openai_error_set(e, 404, "model", "model_not_found",
                              "model '%s' is not served by any node (%s)", model, detail);
        break;
    case MESH_ERANGE:
        mesh_openai_error_set(e, 400, "messages", "context_length_exceeded", "%s", detail);
        break;
    case MESH_EINVAL:
    case MESH_EFORMAT:
        mesh_openai_error_set(e, 400, NULL, "invalid_value", "%s", detail);
        break;
    default:
        mesh_openai_error_set(e, 503, NULL, "no_node_available", "no node can serve this: %s",
                              detail);
        break;
    }
}

static const char *s_finish_reason(s_gen_t *g) {
    if (g->n_tool_calls)
        return "tool_calls";
    return strcmp(g->detail, "length") == 0 ? "length" : "stop";
}

// tool_choice required/named: a finished reply without that call is an
// error rather than a silent plain-text answer.
static int s_tool_choice_failed(s_gen_t *g, mesh_openai_error_t *e) {
    if (g->rq.tool_choice < MESH_TOOL_CHOICE_REQUIRED || g->n_tool_calls ||
        strcmp(g->detail, "length") == 0)
        return 0;
    mesh_openai_error_set(e, 500, "tool_choice", "tool_choice_not_satisfied",
                          "the model answered without calling %s%s although tool_choice "
                          "requires it",
                          g->rq.tool_choice == MESH_TOOL_CHOICE_NAMED ? "function " : "a tool",
                          g->rq.tool_choice == MESH_TOOL_CHOICE_NAMED ? g->rq.tool_name : "");
    return 1;
}

// The end of a stream: parser flush, final chunk, usage, [DONE].
static void s_stream_end(s_gen_t *g) {
    if (g->status) {
        mesh_openai_error_t e;
        s_core_error(g->status, g->detail, &e, g->meta.model);
        char *t = mesh_openai_error_text(&e);
        if (t) {
            s_str_add(&g->out, "data: ", 6);
            s_str_add(&g->out, t, strlen(t));
            s_str_add(&g->out, "\n\n", 2);
            free(t);
        }
        g->ended = 1;
        return;
    }
    if (g->parser)
        g->fam->finish(g->parser);
    mesh_openai_error_t e;
    if (s_tool_choice_failed(g, &e)) {
        char *t = mesh_openai_error_text(&e);
        if (t) {
            s_str_add(&g->out, "data: ", 6);
            s_str_add(&g->out, t, strlen(t));
            s_str_add(&g->out, "\n\n", 2);
            free(t);
        }
        g->ended = 1;
        return;
    }
    cJSON *choice, *c = mesh_openai_chunk(&g->meta, &choice);
    cJSON_ReplaceItemInObject(choice, "finish_reason", cJSON_CreateString(s_finish_reason(g)));
    s_attach_held(g, choice); // tokens whose text never came (held back to the end)
    cJSON_AddItemToObject(c, "mesh", mesh_openai_mesh_field(&g->meta));
    s_emit_chunk(g, c);
    if (g->rq.include_usage) {
        c = mesh_openai_chunk(&g->meta, NULL);
        cJSON_AddItemToObject(c, "usage",
                              mesh_openai_usage(g->prompt_tokens, g->completion_tokens));
        s_emit_chunk(g, c);
    }
    s_str_add(&g->out, "data: [DONE]\n\n", 14);
    g->ended = 1;
}

static ssize_t s_stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    s_gen_t *g = cls;
    for (;;) {
        if (g->out_off < g->out.len) {
            size_t n = g->out.len - g->out_off;
            if (n > max)
                n = max;
            memcpy(buf, g->out.s + g->out_off, n);
            g->out_off += n;
            if (g->out_off == g->out.len)
                g->out_off = g->out.len = 0;
            return (ssize_t)n;
        }
        if (g->ended)
            return MHD_CONTENT_READER_END_OF_STREAM;
        if (!g->sent_role && g->rq.kind == MESH_OPENAI_CHAT) {
            g->sent_role = 1;
            cJSON *choice, *c = mesh_openai_chunk(&g->meta, &choice);
            cJSON *d = cJSON_GetObjectItem(choice, "delta");
            if (d) {
                cJSON_AddStringToObject(d, "role", "assistant");
                cJSON_AddStringToObject(d, "content", "");
            }
            s_emit_chunk(g, c);
            continue;
        }
        pthread_mutex_lock(&g->mu);
        int alive = s_wait(g, 1), done = g->done;
        pthread_mutex_unlock(&g->mu);
        if (!alive)
            return MHD_CONTENT_READER_END_WITH_ERROR;
        s_pump(g);
        if (done) {
            s_pump(g); // anything that came with the end
            s_stream_end(g);
        }
    }
}

static void s_stream_free(void *cls) {
    s_gen_t *g = cls;
    pthread_mutex_lock(&g->mu);
    int done = g->done;
    pthread_mutex_unlock(&g->mu);
    if (!done) // the client is gone before the end: stop the node
        mesh_coord_cancel(g->h->core, g->id);
    s_gen_unref(g);
}

// ---- responses ----

static void s_count(mesh_http_t *h, const char *endpoint, const char *model, int status) {
    char st[8];
    snprintf(st, sizeof st, "%d", status);
    const char *l[] = {"endpoint", endpoint, "model", model ? model : "", "status", st, NULL};
    mesh_metrics_add(h->metrics, "mesh_http_requests_total", l, 1);
}

static enum MHD_Result s_send(struct MHD_Connection *conn, int status, const char *type,
                              char *text, const char *node) {
    if (!text)
        return MHD_NO;
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", type);
    if (node && *node)
        MHD_add_response_header(r, "x-mesh-node", node);
    enum MHD_Result ret = MHD_queue_response(conn, (unsigned)status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result s_send_json(struct MHD_Connection *conn, int status, cJSON *j,
                                   const char *node) {
    char *t = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return s_send(conn, status, "application/json", t, node);
}

static enum MHD_Result s_send_error(mesh_http_t *h, struct MHD_Connection *conn,
                                    const char *endpoint, const char *model,
                                    const mesh_openai_error_t *e) {
    s_count(h, endpoint, model, e->status);
    struct MHD_Response *r;
    char *t = mesh_openai_error_text(e);
    if (!t)
        return MHD_NO;
    r = MHD_create_response_from_buffer(strlen(t), t, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(t);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", "application/json");
    if (e->status == 401)
        MHD_add_response_header(r, "WWW-Authenticate", "Bearer");
    enum MHD_Result ret = MHD_queue_response(conn, (unsigned)e->status, r);
    MHD_destroy_response(r);
    return ret;
}

// The whole non-streamed reply.
static cJSON *s_full_body(s_gen_t *g) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", g->meta.id);
    cJSON_AddStringToObject(o, "object",
                            g->rq.kind == MESH_OPENAI_CHAT ? "chat.completion" : "text_completion");
    cJSON_AddNumberToObject(o, "created", (double)g->meta.created);
    cJSON_AddStringToObject(o, "model", g->meta.model);
    cJSON *choices = cJSON_AddArrayToObject(o, "choices"), *c = cJSON_CreateObject();
    cJSON_AddItemToArray(choices, c);
    cJSON_AddNumberToObject(c, "index", 0);
    const char *content = g->content.s ? g->content.s : "";
    if (g->rq.kind == MESH_OPENAI_CHAT) {
        cJSON *m = cJSON_AddObjectToObject(c, "message");
        cJSON_AddStringToObject(m, "role", "assistant");
        if (g->tool_calls && !*content)
            cJSON_AddNullToObject(m, "content");
        else
            cJSON_AddStringToObject(m, "content", content);
        if (g->reasoning.len)
            cJSON_AddStringToObject(m, "reasoning_content", g->reasoning.s);
        if (g->tool_calls) {
            cJSON_AddItemToObject(m, "tool_calls", g->tool_calls);
            g->tool_calls = NULL;
        }
        if (g->lp_all) {
            cJSON *l = cJSON_AddObjectToObject(c, "logprobs");
            cJSON_AddItemToObject(l, "content", g->lp_all);
            g->lp_all = NULL;
        } else {
            cJSON_AddNullToObject(c, "logprobs");
        }
    } else {
        cJSON_AddStringToObject(c, "text", content);
        if (g->lp_all) {
            // Completions' older shape: parallel arrays.
            cJSON *l = mesh_openai_legacy_logprobs(g->lp_all, g->rq.top_logprobs > 0,
                                                   &g->text_offset);
            cJSON_AddItemToObject(c, "logprobs", l ? l : cJSON_CreateNull());
        } else {
            cJSON_AddNullToObject(c, "logprobs");
        }
    }
    cJSON_AddStringToObject(c, "finish_reason", s_finish_reason(g));
    cJSON_AddItemToObject(o, "usage", mesh_openai_usage(g->prompt_tokens, g->completion_tokens));
    cJSON_AddItemToObject(o, "mesh", mesh_openai_mesh_field(&g->meta));
    return o;
}

static enum MHD_Result s_generate(mesh_http_t *h, struct MHD_Connection *conn,
                                  mesh_openai_kind_t kind, const char *body, size_t len) {
    const char *ep = kind == MESH_OPENAI_CHAT ? "chat" : "completions";
    mesh_openai_error_t e;
    s_gen_t *g = calloc(1, sizeof *g);
    if (!g)
        return MHD_NO;
    g->h = h;
    g->refs = 1;
    g->conn = conn;
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, NULL);
    if (mesh_openai_request_parse(kind, body, len, &g->rq, &e)) {
        s_gen_unref(g);
        return s_send_error(h, conn, ep, NULL, &e);
    }
    mesh_openai_meta_init(&g->meta, kind, g->rq.model);
    if (atomic_fetch_add(&h->inflight, 1) >= h->max_queue) {
        atomic_fetch_sub(&h->inflight, 1);
        mesh_openai_error_set(&e, 429, NULL, "queue_full",
                              "the mesh's queue is full (%u requests in flight); retry later",
                              h->max_queue);
        enum MHD_Result ret = s_send_error(h, conn, ep, g->meta.model, &e);
        s_gen_unref(g);
        return ret;
    }
    if (kind == MESH_OPENAI_CHAT) {
        g->fam = mesh_out_family_for(NULL);
        mesh_out_sink_t sink = {s_sink_content, s_sink_reasoning, s_sink_tool};
        g->parser = g->fam->create(g->rq.req.enable_thinking, &sink, g);
        if (!g->parser) {
            atomic_fetch_sub(&h->inflight, 1);
            s_gen_unref(g);
            return MHD_NO;
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &g->t0);
    mesh_coord_stream_t cb = {.on_route = s_on_route,
                              .on_chunk = s_on_chunk,
                              .on_done = s_on_done};
    g->rq.req.on_logprobs = s_on_logprobs;
    char err[400];
    g->refs = 2; // the core's, dropped in on_done
    int rc = mesh_coord_submit(h->core, &g->rq.req, &cb, g, &g->id, err, sizeof err);
    if (rc) {
        g->refs = 1;
        atomic_fetch_sub(&h->inflight, 1);
        s_core_error(rc, err, &e, g->meta.model);
        enum MHD_Result ret = s_send_error(h, conn, ep, g->meta.model, &e);
        s_gen_unref(g);
        return ret;
    }
    // A stream starts (status 200) with its first token, so a node that
    // refuses before that (and every failover after it) still gives a real
    // HTTP status; a plain reply waits for the end.
    pthread_mutex_lock(&g->mu);
    int alive = s_wait(g, g->rq.stream ? 1 : 2);
    int failed = g->done && g->status;
    char node[64];
    snprintf(node, sizeof node, "%s", g->meta.node);
    pthread_mutex_unlock(&g->mu);
    if (!alive) {
        s_count(h, ep, g->meta.model, 499);
        s_gen_unref(g);
        return MHD_NO;
    }
    if (failed) {
        s_core_error(g->status, g->detail, &e, g->meta.model);
        enum MHD_Result ret = s_send_error(h, conn, ep, g->meta.model, &e);
        s_gen_unref(g);
        return ret;
    }
    if (g->rq.stream) {
        struct MHD_Response *r =
            MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, s_stream_read, g,
                                              s_stream_free);
        if (!r) {
            mesh_coord_cancel(h->core, g->id);
            s_gen_unref(g);
            return MHD_NO;
        }
        MHD_add_response_header(r, "Content-Type", "text/event-stream");
        MHD_add_response_header(r, "Cache-Control", "no-cache");
        MHD_add_response_header(r, "x-mesh-node", node);
        s_count(h, ep, g->meta.model, 200);
        enum MHD_Result ret = MHD_queue_response(conn, 200, r);
        MHD_destroy_response(r); // the response holds g until s_stream_free
        return ret;
    }
    s_pump(g);
    if (g->parser)
        g->fam->finish(g->parser);
    enum MHD_Result ret;
    if (s_tool_choice_failed(g, &e)) {
        ret = s_send_error(h, conn, ep, g->meta.model, &e);
    } else {
        s_count(h, ep, g->meta.model, 200);
        ret = s_send_json(conn, 200, s_full_body(g), g->meta.node);
    }
    s_gen_unref(g);
    return ret;
}

// ---- models, health, metrics ----

static cJSON *s_model_entry(const char *id, const cJSON *m, const char *quant) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", id);
    cJSON_AddStringToObject(o, "object", "model");
    cJSON_AddNumberToObject(o, "created", 0);
    cJSON_AddStringToObject(o, "owned_by", "meshinfer");
    cJSON *x = cJSON_AddObjectToObject(o, "mesh");
    cJSON_AddItemToObject(x, "arch", cJSON_Duplicate(cJSON_GetObjectItem(m, "arch"), 1));
    cJSON *quants = cJSON_AddArrayToObject(x, "quants");
    cJSON *nodes = cJSON_AddArrayToObject(x, "nodes");
    const cJSON *s;
    cJSON_ArrayForEach(s, cJSON_GetObjectItem(m, "served_by")) {
        const char *q = cJSON_GetStringValue(cJSON_GetObjectItem(s, "quant"));
        if (!q || (quant && strcmp(q, quant) != 0))
            continue;
        int seen = 0;
        const cJSON *y;
        cJSON_ArrayForEach(y, quants) seen |= strcmp(y->valuestring, q) == 0;
        if (!seen)
            cJSON_AddItemToArray(quants, cJSON_CreateString(q));
        cJSON_AddItemToArray(nodes, cJSON_Duplicate(s, 1));
    }
    return o;
}

// Every model, and every model:quant, so a client can list and pick both.
static cJSON *s_models(mesh_http_t *h) {
    cJSON *ms = mesh_coord_models_json(h->core);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "object", "list");
    cJSON *data = cJSON_AddArrayToObject(o, "data");
    const cJSON *m;
    cJSON_ArrayForEach(m, ms) {
        const char *name = cJSON_GetStringValue(cJSON_GetObjectItem(m, "name"));
        if (!name)
            continue;
        cJSON *base = s_model_entry(name, m, NULL);
        cJSON_AddItemToArray(data, base);
        const cJSON *q;
        cJSON_ArrayForEach(q, cJSON_GetObjectItem(cJSON_GetObjectItem(base, "mesh"), "quants")) {
            char id[160];
            snprintf(id, sizeof id, "%s:%s", name, q->valuestring);
            cJSON_AddItemToArray(data, s_model_entry(id, m, q->valuestring));
        }
    }
    cJSON_Delete(ms);
    return o;
}

static enum MHD_Result s_metrics(mesh_http_t *h, struct MHD_Connection *conn) {
    mesh_metrics_t *m = h->metrics;
    static const char *const per_node[] = {"mesh_node_up", "mesh_node_free_memory_bytes",
                                           "mesh_node_queue_depth", "mesh_node_active_sequences"};
    for (size_t i = 0; i < sizeof per_node / sizeof *per_node; i++)
        mesh_metrics_reset(m, per_node[i]);
    cJSON *nodes = mesh_coord_nodes_json(h->core);
    const cJSON *n;
    cJSON_ArrayForEach(n, nodes) {
        const char *name = cJSON_GetStringValue(cJSON_GetObjectItem(n, "name"));
        const char *state = cJSON_GetStringValue(cJSON_GetObjectItem(n, "state"));
        if (!name)
            continue;
        const char *l[] = {"node", name, NULL};
        mesh_metrics_set(m, "mesh_node_up", l, state && strcmp(state, "up") == 0);
        mesh_metrics_set(m, "mesh_node_free_memory_bytes", l,
                         cJSON_GetNumberValue(cJSON_GetObjectItem(n, "mem_free")));
        mesh_metrics_set(m, "mesh_node_queue_depth", l,
                         cJSON_GetNumberValue(cJSON_GetObjectItem(n, "queued")));
        mesh_metrics_set(m, "mesh_node_active_sequences", l,
                         cJSON_GetNumberValue(cJSON_GetObjectItem(n, "active")));
    }
    cJSON_Delete(nodes);
    mesh_metrics_set(m, "mesh_queue_depth", NULL, atomic_load(&h->inflight));
    char *t = mesh_metrics_render(m);
    return s_send(conn, 200, "text/plain; version=0.0.4; charset=utf-8", t, NULL);
}

static enum MHD_Result s_health(mesh_http_t *h, struct MHD_Connection *conn) {
    cJSON *nodes = mesh_coord_nodes_json(h->core);
    int total = cJSON_GetArraySize(nodes), up = 0;
    const cJSON *n;
    cJSON_ArrayForEach(n, nodes) {
        const char *s = cJSON_GetStringValue(cJSON_GetObjectItem(n, "state"));
        up += s && strcmp(s, "up") == 0;
    }
    cJSON_Delete(nodes);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "status", "ok");
    cJSON_AddNumberToObject(o, "nodes", total);
    cJSON_AddNumberToObject(o, "nodes_up", up);
    cJSON_AddNumberToObject(o, "in_flight", atomic_load(&h->inflight));
    return s_send_json(conn, 200, o, NULL);
}

// ---- dispatch ----

typedef struct {
    s_str_t body;
    int too_big;
} s_conn_t;

static enum MHD_Result s_access(void *cls, struct MHD_Connection *conn, const char *url,
                                const char *method, const char *version, const char *upload,
                                size_t *upload_size, void **con_cls) {
    (void)version;
    mesh_http_t *h = cls;
    s_conn_t *cs = *con_cls;
    mesh_openai_error_t e;
    if (!cs) {
        cs = calloc(1, sizeof *cs);
        if (!cs)
            return MHD_NO;
        *con_cls = cs;
        const char *cl =
            MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && strtoull(cl, NULL, 10) > h->max_body) {
            // Answer now instead of reading megabytes we will refuse.
            cs->too_big = 1;
            mesh_openai_error_set(&e, 413, NULL, "request_too_large",
                                  "request body is over the limit of %zu bytes", h->max_body);
            return s_send_error(h, conn, "other", NULL, &e);
        }
        return MHD_YES;
    }
    if (*upload_size) {
        if (!cs->too_big && cs->body.len + *upload_size > h->max_body) {
            cs->too_big = 1;
            free(cs->body.s);
            memset(&cs->body, 0, sizeof cs->body);
        }
        if (!cs->too_big && s_str_add(&cs->body, upload, *upload_size))
            return MHD_NO;
        *upload_size = 0;
        return MHD_YES;
    }
    if (cs->too_big) {
        mesh_openai_error_set(&e, 413, NULL, "request_too_large",
                              "request body is over the limit of %zu bytes", h->max_body);
        return s_send_error(h, conn, "other", NULL, &e);
    }
    int get = strcmp(method, "GET") == 0, post = strcmp(method, "POST") == 0;
    if (strcmp(url, "/health") == 0 && get)
        return s_health(h, conn);
    if (strcmp(url, "/metrics") == 0 && get)
        return s_metrics(h, conn);
    int v1 = strncmp(url, "/v1/", 4) == 0;
    if (v1 && !s_key_ok(h, MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization"))) {
        mesh_openai_error_set(&e, 401, NULL, "invalid_api_key",
                              "missing or wrong API key (send Authorization: Bearer KEY)");
        return s_send_error(h, conn, "auth", NULL, &e);
    }
    if (strcmp(url, "/v1/chat/completions") == 0 && post)
        return s_generate(h, conn, MESH_OPENAI_CHAT, cs->body.s, cs->body.len);
    if (strcmp(url, "/v1/completions") == 0 && post)
        return s_generate(h, conn, MESH_OPENAI_COMPLETION, cs->body.s, cs->body.len);
    if (strcmp(url, "/v1/models") == 0 && get) {
        s_count(h, "models", NULL, 200);
        return s_send_json(conn, 200, s_models(h), NULL);
    }
    if (strncmp(url, "/v1/models/", 11) == 0 && get) {
        cJSON *all = s_models(h), *m, *found = NULL;
        cJSON_ArrayForEach(m, cJSON_GetObjectItem(all, "data")) {
            const char *id = cJSON_GetStringValue(cJSON_GetObjectItem(m, "id"));
            if (id && strcmp(id, url + 11) == 0)
                found = m;
        }
        if (found) {
            cJSON_DetachItemViaPointer(cJSON_GetObjectItem(all, "data"), found);
            cJSON_Delete(all);
            s_count(h, "models", NULL, 200);
            return s_send_json(conn, 200, found, NULL);
        }
        cJSON_Delete(all);
        mesh_openai_error_set(&e, 404, "model", "model_not_found",
                              "model '%.64s' is not served by any node", url + 11);
        return s_send_error(h, conn, "models", NULL, &e);
    }
    int known = strcmp(url, "/v1/chat/completions") == 0 || strcmp(url, "/v1/completions") == 0 ||
                strcmp(url, "/v1/models") == 0 || strcmp(url, "/health") == 0 ||
                strcmp(url, "/metrics") == 0;
    if (known)
        mesh_openai_error_set(&e, 405, NULL, "method_not_allowed", "%s is not allowed on %.100s",
                              method, url);
    else
        mesh_openai_error_set(&e, 404, NULL, "unknown_url", "no such endpoint: %s %.100s",
                              method, url);
    return s_send_error(h, conn, "other", NULL, &e);
}

static void s_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                        enum MHD_RequestTerminationCode toe) {
    (void)cls, (void)conn, (void)toe;
    s_conn_t *cs = *con_cls;
    if (cs) {
        free(cs->body.s);
        free(cs);
        *con_cls = NULL;
    }
}

static void s_declare(mesh_metrics_t *m) {
    mesh_metrics_declare(m, "mesh_http_requests_total",
                         "HTTP API requests by endpoint, model and status code",
                         MESH_METRIC_COUNTER, NULL, 0);
    mesh_metrics_declare(m, "mesh_prompt_tokens_total", "Prompt tokens processed, by model",
                         MESH_METRIC_COUNTER, NULL, 0);
    mesh_metrics_declare(m, "mesh_completion_tokens_total", "Tokens generated, by model",
                         MESH_METRIC_COUNTER, NULL, 0);
    mesh_metrics_declare(m, "mesh_time_to_first_token_seconds",
                         "Time from request to first generated token", MESH_METRIC_HISTOGRAM,
                         s_ttft_buckets, sizeof s_ttft_buckets / sizeof *s_ttft_buckets);
    mesh_metrics_declare(m, "mesh_time_per_output_token_seconds",
                         "Time between generated tokens", MESH_METRIC_HISTOGRAM,
                         s_tpot_buckets, sizeof s_tpot_buckets / sizeof *s_tpot_buckets);
    mesh_metrics_declare(m, "mesh_queue_depth", "Generations in flight at the coordinator",
                         MESH_METRIC_GAUGE, NULL, 0);
    mesh_metrics_declare(m, "mesh_routing_decisions_total",
                         "Requests routed, by node and reason", MESH_METRIC_COUNTER, NULL, 0);
    mesh_metrics_declare(m, "mesh_failovers_total", "Requests moved to another node, by model",
                         MESH_METRIC_COUNTER, NULL, 0);
    mesh_metrics_declare(m, "mesh_node_up", "1 if the node is connected and heartbeating",
                         MESH_METRIC_GAUGE, NULL, 0);
    mesh_metrics_declare(m, "mesh_node_free_memory_bytes", "Free accelerator memory per node",
                         MESH_METRIC_GAUGE, NULL, 0);
    mesh_metrics_declare(m, "mesh_node_queue_depth", "Sequences waiting on each node",
                         MESH_METRIC_GAUGE, NULL, 0);
    mesh_metrics_declare(m, "mesh_node_active_sequences", "Sequences running on each node",
                         MESH_METRIC_GAUGE, NULL, 0);
}

int mesh_http_start(mesh_coord_t *core, const mesh_http_opts_t *opts, mesh_http_t **out,
                    uint16_t *bound_port, char *err, size_t err_len) {
    *out = NULL;
    struct sockaddr_in sa = {0};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(opts->port);
    const char *host = opts->host ? opts->host : "127.0.0.1";
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
        snprintf(err, err_len, "HTTP address '%s' is not an IPv4 address", host);
        return MESH_EINVAL;
    }
    if (sodium_init() < 0) {
        snprintf(err, err_len, "libsodium failed to start");
        return MESH_EIO;
    }
    mesh_http_t *h = calloc(1, sizeof *h);
    if (!h)
        return MESH_ENOMEM;
    h->core = core;
    h->max_body = opts->max_body ? opts->max_body : S_DEFAULT_MAX_BODY;
    h->max_queue = opts->max_queue ? opts->max_queue : S_DEFAULT_MAX_QUEUE;
    int rc = 0;
    if (opts->api_keys_path &&
        (rc = mesh_http_read_keys(opts->api_keys_path, &h->keys, &h->n_keys, err, err_len)))
        goto fail;
    h->metrics = mesh_metrics_new();
    if (!h->metrics) {
        rc = MESH_ENOMEM;
        goto fail;
    }
    s_declare(h->metrics);
    h->d = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL_INTERNAL_THREAD |
                                MHD_USE_ERROR_LOG,
                            opts->port, NULL, NULL, s_access, h, MHD_OPTION_SOCK_ADDR, &sa,
                            MHD_OPTION_NOTIFY_COMPLETED, s_completed, h,
                            MHD_OPTION_CONNECTION_TIMEOUT, 300u, MHD_OPTION_END);
    if (!h->d) {
        snprintf(err, err_len, "cannot listen on %s:%u for the HTTP API", host, opts->port);
        rc = MESH_EIO;
        goto fail;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
    if (bound_port)
        *bound_port = di ? di->port : opts->port;
    *out = h;
    return 0;
fail:
    for (size_t i = 0; i < h->n_keys; i++)
        free(h->keys[i]);
    free(h->keys);
    mesh_metrics_destroy(&h->metrics);
    free(h);
    return rc;
}

void mesh_http_stop(mesh_http_t **hp) {
    if (!hp || !*hp)
        return;
    mesh_http_t *h = *hp;
    // Threads blocked on a generation see the flag within S_WAIT_MS and
    // cancel it; stopping MHD joins them. Then wait (bounded) for the core
    // to end those generations, as its callbacks still reach h.
    atomic_store(&h->stopping, 1);
    MHD_stop_daemon(h->d);
    for (int i = 0; i < 500 && atomic_load(&h->inflight); i++)
        nanosleep(&(struct timespec){0, 10000000L}, NULL);
    if (atomic_load(&h->inflight)) {
        MESH_WARN("http: %u generations did not end; leaving the endpoint's state allocated",
                  atomic_load(&h->inflight));
        *hp = NULL;
        return;
    }
    for (size_t i = 0; i < h->n_keys; i++)
        free(h->keys[i]);
    free(h->keys);
    mesh_metrics_destroy(&h->metrics);
    free(h);
    *hp = NULL;
}
