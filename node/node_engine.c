// SPDX-License-Identifier: MIT
// Engine adapter for the node: per model, the engine model, its tokenizer and
// chat template, one continuous-batching scheduler and one engine thread
// stepping it. Requests from the coordinator become scheduler requests
// (prompt ids + replayed continue_ids, sampling params 1:1, stop strings,
// max_tokens); scheduler events become node events.
//
// Locking: e->lock guards the request list. submit holds it across
// mesh_sched_submit so a request's DONE (which takes the lock to unlink and
// free it) cannot run before its scheduler id is stored; the scheduler never
// calls back while holding its own mutex, so the order e->lock -> scheduler
// mutex is the only one.
#include "node_engine.h"

#include "chat_template.h"
#include "engine.h"
#include "gguf.h"
#include "json.h"
#include "mesh_err.h"
#include "mesh_log.h"
#include "scheduler.h"
#include "tokenizer.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define S_MAX_MODELS 16
#define S_BENCH_PREFILL 64
#define S_BENCH_DECODE 16

typedef struct {
    mesh_node_model_t *info; // the node's record (name, quant, ...), not owned
    mesh_model_t *model;
    mesh_tok_t *tok;
    mesh_tmpl_t *tmpl;       // NULL: the file has no chat template (chat refused)
    const char *bos, *eos;   // token texts for templates (owned by the GGUF reader)
    mesh_sched_t *sched;
    pthread_t thread;
    int thread_started;
    int32_t n_vocab;
} s_model_t;

typedef struct s_req {
    struct s_req *next;
    struct mesh_node_engine *e;
    uint64_t request_id;     // coordinator's
    uint64_t sched_id;       // scheduler's
    s_model_t *m;
    uint32_t n_replayed;     // continue_ids appended to the prompt
    int logprobs;            // asked for: events carry logprob, piece, top[]
    // Token pieces of one event (logprobs asked): grown on demand, reused,
    // so a steady stream stops allocating after its first tokens.
    char *scratch;
    size_t scratch_cap;      // bytes
} s_req_t;

_Static_assert(MESH_NODE_MAX_TOP == MESH_SAMPLER_MAX_LOGPROBS,
               "node events carry what the sampler returns");

struct mesh_node_engine {
    mesh_node_engine_opts_t opts;
    char backend[16];
    mesh_node_event_fn on_event;
    void *user;
    unsigned token_delay_ms; // MESH_NODE_DEBUG_TOKEN_DELAY_MS
    atomic_int stop;
    pthread_mutex_t lock;
    s_req_t *reqs;
    s_model_t models[S_MAX_MODELS];
    int n_models;
};

static double s_now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int mesh_node_engine_can_generate(void) {
    return 1;
}

int mesh_node_engine_new(const mesh_node_engine_opts_t *opts, mesh_node_event_fn on_event,
                         void *user, mesh_node_engine_t **out) {
    mesh_node_engine_t *e = calloc(1, sizeof *e);
    if (!e)
        return MESH_ENOMEM;
    if (opts)
        e->opts = *opts;
    snprintf(e->backend, sizeof e->backend, "%s",
             e->opts.backend && *e->opts.backend ? e->opts.backend : "cpu");
    e->opts.backend = e->backend;
    e->on_event = on_event;
    e->user = user;
    const char *d = getenv("MESH_NODE_DEBUG_TOKEN_DELAY_MS");
    if (d && *d) {
        long v = strtol(d, NULL, 10);
        e->token_delay_ms = v > 0 && v < 60000 ? (unsigned)v : 0;
        if (e->token_delay_ms)
            MESH_WARN("node: MESH_NODE_DEBUG_TOKEN_DELAY_MS=%u: every token is delayed "
                      "(testing only)", e->token_delay_ms);
    }
    pthread_mutex_init(&e->lock, NULL);
    *out = e;
    return 0;
}

void mesh_node_engine_destroy(mesh_node_engine_t **ep) {
    if (!ep || !*ep)
        return;
    mesh_node_engine_t *e = *ep;
    atomic_store(&e->stop, 1);
    for (int i = 0; i < e->n_models; i++) {
        s_model_t *m = &e->models[i];
        if (m->thread_started) {
            mesh_sched_wake(m->sched);
            pthread_join(m->thread, NULL);
        }
        mesh_sched_destroy(&m->sched); // remaining requests end with "cancel"
        mesh_tmpl_destroy(&m->tmpl);
        mesh_tok_destroy(&m->tok);
        mesh_model_destroy(&m->model);
    }
    pthread_mutex_destroy(&e->lock);
    free(e);
    *ep = NULL;
}

typedef struct {
    mesh_node_engine_t *e;
    s_model_t *m;
} s_thread_arg_t;

static void *s_step_loop(void *arg) {
    s_thread_arg_t a = *(s_thread_arg_t *)arg;
    free(arg);
    while (!atomic_load(&a.e->stop)) {
        if (mesh_sched_wait(a.m->sched, 100)) {
            int rc = mesh_sched_step(a.m->sched);
            if (rc < 0)
                MESH_WARN("node: model %s: a forward pass failed: %s", a.m->info->name,
                          mesh_strerror(rc));
        }
    }
    return NULL;
}

static const char *s_token_text(const mesh_gguf_t *g, const char *id_key) {
    uint32_t id;
    const char *s = NULL;
    if (mesh_gguf_get_u32(g, id_key, &id) ||
        mesh_gguf_get_arr_str(g, "tokenizer.ggml.tokens", id, &s, NULL))
        return NULL;
    return s;
}

// Load-time self-benchmark straight on the model (before the scheduler
// exists, so nothing else uses the KV cache): one 64-token prefill, then 16
// single-token decode steps. Costs about 80 tokens of compute at load.
static void s_bench(s_model_t *m, float *prefill_tps, float *decode_tps) {
    *prefill_tps = *decode_tps = 0.0f;
    mesh_kv_t *kv = mesh_model_kv(m->model);
    if (mesh_kv_capacity_tokens(kv) < S_BENCH_PREFILL + S_BENCH_DECODE + 16)
        return;
    float *logits = malloc((size_t)m->n_vocab * sizeof *logits);
    mesh_batch_tok_t toks[S_BENCH_PREFILL];
    int32_t seq;
    if (!logits || mesh_kv_seq_new(kv, &seq)) {
        free(logits);
        return;
    }
    for (int i = 0; i < S_BENCH_PREFILL; i++)
        toks[i] = (mesh_batch_tok_t){.token = (int32_t)((i * 7 + 3) % m->n_vocab),
                                     .seq = seq, .pos = i, .logits = i == S_BENCH_PREFILL - 1};
    mesh_batch_t b = {S_BENCH_PREFILL, toks};
    double t0 = s_now_s();
    int rc = mesh_model_forward(m->model, kv, &b, logits);
    double t1 = s_now_s();
    if (rc == 0 && t1 > t0)
        *prefill_tps = (float)(S_BENCH_PREFILL / (t1 - t0));
    for (int i = 0; rc == 0 && i < S_BENCH_DECODE; i++) {
        mesh_batch_tok_t one = {.token = (int32_t)((i * 13 + 5) % m->n_vocab), .seq = seq,
                                .pos = S_BENCH_PREFILL + i, .logits = true};
        mesh_batch_t b1 = {1, &one};
        rc = mesh_model_forward(m->model, kv, &b1, logits);
    }
    double t2 = s_now_s();
    if (rc == 0 && t2 > t1)
        *decode_tps = (float)(S_BENCH_DECODE / (t2 - t1));
    mesh_kv_seq_free(kv, seq);
    free(logits);
}

int mesh_node_engine_load(mesh_node_engine_t *e, mesh_node_model_t *info, uint64_t kv_budget,
                          char *err, size_t err_len) {
    if (e->n_models >= S_MAX_MODELS) {
        snprintf(err, err_len, "too many models (at most %d)", S_MAX_MODELS);
        return MESH_ENOSPACE;
    }
    s_model_t *m = &e->models[e->n_models];
    memset(m, 0, sizeof *m);
    m->info = info;
    mesh_model_params_t mp;
    mesh_model_params_default(&mp);
    mp.backend = e->opts.backend;
    mp.device = e->opts.device;
    mp.n_threads = e->opts.n_threads;
    mp.kv_bytes = kv_budget;
    char why[400];
    why[0] = 0;
    int rc = mesh_model_load(info->path, &mp, &m->model, why, sizeof why);
    if (rc) {
        snprintf(err, err_len, "model '%s' (%s): %s", info->name, info->path,
                 why[0] ? why : mesh_strerror(rc));
        return rc;
    }
    const mesh_gguf_t *g = mesh_model_gguf(m->model);
    rc = mesh_tok_new_from_gguf(g, &m->tok, why, sizeof why);
    if (rc) {
        snprintf(err, err_len, "model '%s': tokenizer: %s", info->name, why);
        goto fail;
    }
    const char *src = NULL;
    if (mesh_gguf_get_str(g, "tokenizer.chat_template", &src, NULL) == 0 && src) {
        m->tmpl = mesh_tmpl_new(src, why, sizeof why);
        if (!m->tmpl)
            MESH_WARN("node: model %s: chat template unusable (%s): chat requests will be "
                      "refused", info->name, why);
    }
    m->bos = s_token_text(g, "tokenizer.ggml.bos_token_id");
    m->eos = s_token_text(g, "tokenizer.ggml.eos_token_id");
    m->n_vocab = (int32_t)mesh_model_n_vocab(m->model);
    s_bench(m, &info->prefill_tps, &info->decode_tps);
    rc = mesh_sched_new_engine(m->model, m->tok, NULL, &m->sched);
    if (rc) {
        snprintf(err, err_len, "model '%s': cannot start the scheduler: %s", info->name,
                 mesh_strerror(rc));
        goto fail;
    }
    mesh_model_info_t mi;
    mesh_model_info(m->model, &mi);
    info->kv_bytes_per_token = mi.kv_bytes_per_token;
    s_thread_arg_t *a = malloc(sizeof *a);
    if (!a) {
        rc = MESH_ENOMEM;
        snprintf(err, err_len, "out of memory");
        goto fail;
    }
    a->e = e;
    a->m = m;
    if (pthread_create(&m->thread, NULL, s_step_loop, a) != 0) {
        free(a);
        rc = MESH_ENOMEM;
        snprintf(err, err_len, "cannot start the engine thread");
        goto fail;
    }
    m->thread_started = 1;
    info->can_generate = 1;
    e->n_models++;
    MESH_INFO("node: model %s loaded on %s (%s): KV pool %u tokens x %llu B, self-benchmark "
              "prefill %.1f tok/s, decode %.1f tok/s",
              info->name, mi.backend, mi.device, mi.kv_capacity_tokens,
              (unsigned long long)mi.kv_bytes_per_token, (double)info->prefill_tps,
              (double)info->decode_tps);
    return 0;
fail:
    mesh_sched_destroy(&m->sched);
    mesh_tmpl_destroy(&m->tmpl);
    mesh_tok_destroy(&m->tok);
    mesh_model_destroy(&m->model);
    return rc;
}

static s_model_t *s_model_of(mesh_node_engine_t *e, const mesh_node_model_t *info) {
    for (int i = 0; i < e->n_models; i++)
        if (e->models[i].info == info)
            return &e->models[i];
    return NULL;
}

static int s_tokenize(s_model_t *m, const Mesh__ChatInput *chat, const char *prompt,
                      int32_t **ids, size_t *n, char *err, size_t err_len) {
    *ids = NULL;
    *n = 0;
    if (prompt) {
        int rc = mesh_tok_encode_alloc(m->tok, prompt, strlen(prompt), true, false, ids, n);
        if (rc)
            snprintf(err, err_len, "cannot tokenize the prompt: %s", mesh_strerror(rc));
        return rc;
    }
    if (!chat || !chat->messages_json) {
        snprintf(err, err_len, "request has no input");
        return MESH_EINVAL;
    }
    if (!m->tmpl) {
        snprintf(err, err_len, "model '%s' has no usable chat template: send a prompt or ids",
                 m->info->name);
        return MESH_EUNSUPPORTED;
    }
    mesh_json_t *msgs = NULL, *tools = NULL;
    char why[300];
    int rc = mesh_json_parse(chat->messages_json, strlen(chat->messages_json), &msgs, why,
                             sizeof why);
    if (rc) {
        snprintf(err, err_len, "messages are not valid JSON: %s", why);
        return MESH_EINVAL;
    }
    if (mesh_json_type(msgs) != MESH_JSON_ARRAY) {
        mesh_json_destroy(&msgs);
        snprintf(err, err_len, "messages must be a JSON array");
        return MESH_EINVAL;
    }
    if (chat->tools_json && *chat->tools_json) {
        rc = mesh_json_parse(chat->tools_json, strlen(chat->tools_json), &tools, why,
                             sizeof why);
        if (rc || mesh_json_type(tools) != MESH_JSON_ARRAY) {
            mesh_json_destroy(&msgs);
            mesh_json_destroy(&tools);
            snprintf(err, err_len, "tools must be a JSON array%s%s", rc ? ": " : "",
                     rc ? why : "");
            return MESH_EINVAL;
        }
    }
    mesh_tmpl_chat_t c = {.messages = msgs,
                          .tools = tools,
                          .add_generation_prompt = chat->add_generation_prompt,
                          .enable_thinking = chat->enable_thinking ? 1 : 0,
                          .bos_token = m->bos,
                          .eos_token = m->eos};
    char *text = NULL;
    size_t len = 0;
    rc = mesh_tmpl_render_chat(m->tmpl, &c, &text, &len, why, sizeof why);
    mesh_json_destroy(&msgs);
    mesh_json_destroy(&tools);
    if (rc) {
        // The template refused these messages (raise_exception, bad roles):
        // the request's fault, not the node's.
        snprintf(err, err_len, "chat template: %s", why);
        return MESH_EINVAL;
    }
    rc = mesh_tok_encode_alloc(m->tok, text, len, true, false, ids, n);
    free(text);
    if (rc)
        snprintf(err, err_len, "cannot tokenize the rendered chat: %s", mesh_strerror(rc));
    return rc;
}

int mesh_node_engine_tokenize(mesh_node_engine_t *e, const mesh_node_model_t *info,
                              const Mesh__ChatInput *chat, const char *prompt, int32_t **ids,
                              size_t *n, char *err, size_t err_len) {
    s_model_t *m = s_model_of(e, info);
    if (!m) {
        snprintf(err, err_len, "model '%s' is not loaded", info->name);
        return MESH_ENOTFOUND;
    }
    return s_tokenize(m, chat, prompt, ids, n, err, err_len);
}

static void s_unlink(mesh_node_engine_t *e, s_req_t *r) {
    for (s_req_t **p = &e->reqs; *p; p = &(*p)->next)
        if (*p == r) {
            *p = r->next;
            return;
        }
}

// Grows r->scratch to hold at least `need` bytes. 0 or MESH_ENOMEM.
static int s_scratch_reserve(s_req_t *r, size_t need) {
    if (r->scratch && r->scratch_cap >= need)
        return 0;
    size_t cap = r->scratch_cap ? r->scratch_cap * 2 : 1024;
    while (cap < need)
        cap *= 2;
    char *grown = realloc(r->scratch, cap);
    if (!grown)
        return MESH_ENOMEM;
    r->scratch = grown;
    r->scratch_cap = cap;
    return 0;
}

// Decodes token id alone, appended to r->scratch at *used. Returns 0 (the
// piece is scratch[*off .. *off + *len)) or a negative MESH_E*.
static int s_piece(s_req_t *r, int32_t id, size_t *used, size_t *off, size_t *len) {
    size_t need = 0;
    int rc = s_scratch_reserve(r, *used + 1);
    if (rc == 0)
        rc = mesh_tok_decode(r->m->tok, &id, 1, false, r->scratch + *used,
                             r->scratch_cap - *used, &need);
    if (rc == MESH_ENOSPACE && (rc = s_scratch_reserve(r, *used + need + 1)) == 0)
        rc = mesh_tok_decode(r->m->tok, &id, 1, false, r->scratch + *used,
                             r->scratch_cap - *used, &need);
    if (rc)
        return rc;
    *off = *used;
    *len = need;
    *used += need;
    return 0;
}

// The sampled token's and its alternatives' pieces into out (top has room
// for MESH_NODE_MAX_TOP). A piece that cannot be decoded is left empty.
static void s_fill_logprobs(s_req_t *r, const mesh_sampler_result_t *res,
                            mesh_node_event_t *out, mesh_node_alt_t *top) {
    size_t used = 0, off[1 + MESH_NODE_MAX_TOP] = {0}, len[1 + MESH_NODE_MAX_TOP] = {0};
    int n = res->n_top < MESH_NODE_MAX_TOP ? res->n_top : MESH_NODE_MAX_TOP;
    for (int i = 0; i <= n; i++) {
        int32_t id = i == 0 ? res->token : res->top[i - 1].token;
        if (s_piece(r, id, &used, &off[i], &len[i]))
            off[i] = len[i] = 0;
    }
    // Pointers only now: the scratch may have moved while it grew.
    const char *base = r->scratch ? r->scratch : "";
    out->logprob = res->logprob;
    out->has_logprob = 1;
    out->piece = base + off[0];
    out->piece_len = len[0];
    for (int i = 0; i < n; i++)
        top[i] = (mesh_node_alt_t){.token = res->top[i].token,
                                   .logprob = res->top[i].logprob,
                                   .piece = base + off[i + 1],
                                   .piece_len = len[i + 1]};
    out->n_top = n;
    out->top = top;
}

// Scheduler events (engine thread) -> node events.
static void s_on_sched(const mesh_sched_event_t *ev, void *user) {
    s_req_t *r = user;
    mesh_node_engine_t *e = r->e;
    mesh_node_event_t out = {.request_id = r->request_id,
                             .token = ev->token,
                             .text = ev->text ? ev->text : "",
                             .text_len = ev->text ? ev->text_len : 0};
    if (ev->type == MESH_SCHED_EV_TOKEN) {
        mesh_node_alt_t top[MESH_NODE_MAX_TOP];
        if (ev->sample && r->logprobs)
            s_fill_logprobs(r, ev->sample, &out, top);
        if (e->token_delay_ms) // testing only: before delivery, so even the first token waits
            usleep(e->token_delay_ms * 1000u);
        e->on_event(e->user, &out);
        return;
    }
    out.done = 1;
    out.finish = mesh_sched_finish_name(ev->finish);
    int32_t np = ev->n_prompt - (int32_t)r->n_replayed;
    out.prompt_tokens = np > 0 ? (uint32_t)np : 0;
    out.completion_tokens = ev->n_gen > 0 ? (uint32_t)ev->n_gen : 0;
    if (ev->finish == MESH_SCHED_FINISH_ERROR)
        MESH_WARN("node: request %llu ended with an engine error: %s",
                  (unsigned long long)r->request_id, mesh_strerror(ev->error));
    e->on_event(e->user, &out);
    pthread_mutex_lock(&e->lock);
    s_unlink(e, r);
    pthread_mutex_unlock(&e->lock);
    free(r->scratch);
    free(r);
}

int mesh_node_engine_submit(mesh_node_engine_t *e, const mesh_node_model_t *info,
                            const Mesh__GenerateRequest *g, char *err, size_t err_len) {
    s_model_t *m = s_model_of(e, info);
    if (!m) {
        snprintf(err, err_len, "model '%s' is not loaded", info->name);
        return MESH_ENOTFOUND;
    }
    const Mesh__Sampling *s = g->sampling;
    if (!s || s->max_tokens == 0) {
        snprintf(err, err_len, "generate needs sampling.max_tokens >= 1");
        return MESH_EINVAL;
    }
    int32_t *ids = NULL;
    size_t n = 0;
    int rc = 0;
    switch (g->input_case) {
    case MESH__GENERATE_REQUEST__INPUT_TOKENS:
        if (!g->tokens || g->tokens->n_ids == 0) {
            snprintf(err, err_len, "token-id prompt is empty");
            return MESH_EINVAL;
        }
        n = g->tokens->n_ids;
        ids = malloc((n + g->n_continue_ids) * sizeof *ids);
        if (!ids)
            return MESH_ENOMEM;
        memcpy(ids, g->tokens->ids, n * sizeof *ids);
        break;
    case MESH__GENERATE_REQUEST__INPUT_PROMPT:
        rc = s_tokenize(m, NULL, g->prompt ? g->prompt : "", &ids, &n, err, err_len);
        break;
    case MESH__GENERATE_REQUEST__INPUT_CHAT:
        rc = s_tokenize(m, g->chat, NULL, &ids, &n, err, err_len);
        break;
    default:
        snprintf(err, err_len, "generate needs an input (chat, prompt or token ids)");
        return MESH_EINVAL;
    }
    if (rc)
        return rc;
    if (n == 0) {
        free(ids);
        snprintf(err, err_len, "the prompt is empty after tokenizing");
        return MESH_EINVAL;
    }
    if (g->n_continue_ids) { // failover replay: what the client already has
        int32_t *grown = realloc(ids, (n + g->n_continue_ids) * sizeof *ids);
        if (!grown) {
            free(ids);
            return MESH_ENOMEM;
        }
        ids = grown;
        memcpy(ids + n, g->continue_ids, g->n_continue_ids * sizeof *ids);
        n += g->n_continue_ids;
    }
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= m->n_vocab) {
            snprintf(err, err_len, "token id %d at position %zu is outside the vocabulary (%d)",
                     ids[i], i, m->n_vocab);
            free(ids);
            return MESH_EINVAL;
        }
    if (n > INT32_MAX / 2) {
        free(ids);
        snprintf(err, err_len, "prompt too long");
        return MESH_ERANGE;
    }
    mesh_sched_request_t q;
    mesh_sched_request_init(&q);
    q.prompt = ids;
    q.n_prompt = (int32_t)n;
    q.sampling.temperature = s->temperature;
    q.sampling.top_k = (int32_t)(s->top_k > 1000000 ? 1000000 : s->top_k);
    q.sampling.top_p = s->top_p > 0.0f ? s->top_p : 1.0f; // proto3 0 = not given
    q.sampling.min_p = s->min_p;
    q.sampling.repetition_penalty = s->repeat_penalty > 0.0f ? s->repeat_penalty : 1.0f;
    q.sampling.presence_penalty = s->presence_penalty;
    q.sampling.frequency_penalty = s->frequency_penalty;
    q.sampling.seed = s->has_seed ? s->seed
                                  : (uint64_t)time(NULL) * 0x9E3779B97F4A7C15ull ^ g->request_id;
    // logprobs: the sampled token's; top_logprobs: that many alternatives
    // (clamped to the sampler's limit; the coordinator refuses more).
    if (s->logprobs || s->top_logprobs) {
        q.sampling.logprobs = true;
        q.sampling.n_logprobs = (int32_t)(s->top_logprobs > MESH_SAMPLER_MAX_LOGPROBS
                                              ? MESH_SAMPLER_MAX_LOGPROBS
                                              : s->top_logprobs);
    }
    q.max_tokens = (int32_t)(s->max_tokens > (1u << 24) ? (1u << 24) : s->max_tokens);
    q.stop = (const char *const *)s->stop;
    q.n_stop = (int32_t)s->n_stop;
    q.stop_at_eog = true;
    q.on_event = s_on_sched;
    s_req_t *r = calloc(1, sizeof *r);
    if (!r) {
        free(ids);
        return MESH_ENOMEM;
    }
    r->e = e;
    r->m = m;
    r->request_id = g->request_id;
    r->n_replayed = (uint32_t)g->n_continue_ids;
    r->logprobs = q.sampling.logprobs;
    q.user = r;
    pthread_mutex_lock(&e->lock);
    rc = mesh_sched_submit(m->sched, &q, &r->sched_id, err, err_len);
    if (rc == 0) {
        r->next = e->reqs;
        e->reqs = r;
    }
    pthread_mutex_unlock(&e->lock);
    free(ids);
    if (rc) {
        free(r);
        // Too long for this model / pool: a routing matter (another node may
        // take it); bad params: the request's fault.
        return rc;
    }
    return 0;
}

int mesh_node_engine_cancel(mesh_node_engine_t *e, uint64_t request_id) {
    int rc = MESH_ENOTFOUND;
    pthread_mutex_lock(&e->lock);
    for (s_req_t *r = e->reqs; r; r = r->next)
        if (r->request_id == request_id) {
            rc = mesh_sched_cancel(r->m->sched, r->sched_id);
            break;
        }
    pthread_mutex_unlock(&e->lock);
    return rc == MESH_ENOENT ? MESH_ENOTFOUND : rc;
}

void mesh_node_engine_stats(mesh_node_engine_t *e, mesh_node_engine_stats_t *out) {
    memset(out, 0, sizeof *out);
    for (int i = 0; i < e->n_models; i++) {
        mesh_sched_stats_t st;
        mesh_sched_stats(e->models[i].sched, &st);
        out->active += (uint32_t)st.active;
        out->queued += (uint32_t)st.queued;
        out->kv_reserved += (uint64_t)st.kv_reserved_tokens * st.kv_bytes_per_token;
        out->gen_tokens += st.gen_tokens;
    }
}
