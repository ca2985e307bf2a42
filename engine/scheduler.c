// SPDX-License-Identifier: MIT
// Continuous-batching scheduler (see scheduler.h for the contract).
//
// Requests live in a fixed array of slots (max_active + max_queue), each
// FREE, QUEUED or ACTIVE. submit/cancel touch only FREE/QUEUED slots and
// cancel flags under the mutex; the step thread admits QUEUED slots (under
// the mutex), then owns ACTIVE slots' contents without it. Scans are O(slots)
// per step, which is small next to a forward pass. Per-request objects
// (sampler, stop matcher, text stream, prompt copy) are made at submit, so
// a step allocates nothing.
#include "scheduler.h"

#include "engine.h"
#include "kv_cache.h"
#include "mesh_err.h"
#include "mesh_log.h"
#include "stop.h"
#include "tokenizer.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

// Slot states change only under the mutex (submit reads them to find a free
// slot); whether an admitted slot is prefilling or decoding is step-thread
// state (s_slot_t.decoding).
typedef enum { S_FREE = 0, S_QUEUED, S_ACTIVE } s_state_t;

typedef struct {
    s_state_t state;
    uint64_t id;       // > 0 while not FREE
    uint64_t order;    // submit order, for FIFO admission
    bool cancel;       // set by mesh_sched_cancel (under the mutex)
    // Copied request.
    int32_t *prompt;   // (n_prompt)
    int32_t n_prompt;
    int32_t max_tokens;
    bool stop_at_eog;
    mesh_sched_event_fn on_event;
    void *user;
    mesh_sampler_t *sampler;
    mesh_stop_t *stop;
    void *stream;      // model text stream, or NULL without a text side
    uint32_t reserve;  // KV tokens reserved (whole blocks)
    // Step-thread state.
    int32_t seq;       // model sequence, -1 before admission
    int32_t n_past;    // tokens cached in the model
    int32_t n_batch;   // tokens of this slot in the batch being built
    bool decoding;     // prompt done: contributes its last token each step
    int32_t n_gen;     // tokens generated
    int32_t last;      // last sampled token (next decode input)
} s_slot_t;

struct mesh_sched {
    mesh_sched_model_t m;
    mesh_sched_params_t p;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    s_slot_t *slots; // (n_slots)
    int32_t n_slots;
    // Admitted (ACTIVE) slots, unordered. Changed and read only by
    // the step thread, so batch building never reads a slot that submit
    // may be writing.
    int32_t *act;    // (max_active) slot indices
    int32_t n_act;
    uint64_t next_id, next_order;
    int32_t n_queued, n_active;
    uint32_t kv_reserved;
    // Step scratch (sized at creation).
    mesh_sched_tok_t *batch; // (step_tokens)
    int32_t *row_slot;       // (step_tokens) slot of each logits row
    float *logits;           // (max_active * n_vocab)
    void *owned_ctx; // adapter context freed at destroy (engine schedulers)
    void (*owned_free)(void *ctx);
    // Counters (under the mutex).
    uint64_t steps, prompt_tokens, gen_tokens;
    double busy_s;
};

static const char *const s_finish_names[MESH_SCHED_FINISH_COUNT] = {"stop", "length", "cancel",
                                                                    "error"};

const char *mesh_sched_finish_name(mesh_sched_finish_t f) {
    return (unsigned)f < MESH_SCHED_FINISH_COUNT ? s_finish_names[f] : "?";
}

void mesh_sched_request_init(mesh_sched_request_t *r) {
    memset(r, 0, sizeof *r);
    r->sampling = mesh_sampler_params_default();
    r->max_tokens = 256;
    r->stop_at_eog = true;
}

static double s_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

// KV tokens a request of `tokens` positions holds at most: whole blocks.
static uint32_t s_blocks_tokens(const mesh_sched_t *s, uint64_t tokens) {
    uint64_t b = s->m.kv_block_tokens;
    uint64_t r = (tokens + b - 1) / b * b;
    return r > UINT32_MAX ? UINT32_MAX : (uint32_t)r;
}

// ---- lifetime -----------------------------------------------------------

int mesh_sched_new(const mesh_sched_model_t *model, const mesh_sched_params_t *params,
                   mesh_sched_t **out) {
    *out = NULL;
    if (!model || !model->seq_new || !model->seq_free || !model->forward ||
        model->n_vocab <= 0 || model->n_ctx <= 0 || model->max_seqs <= 0 ||
        model->kv_block_tokens == 0)
        return MESH_EINVAL;
    bool text = model->stream_new && model->stream_destroy && model->stream_push &&
                model->stream_flush;
    if (!text && (model->stream_new || model->stream_push))
        return MESH_EINVAL; // half a text side
    mesh_sched_t *s = calloc(1, sizeof *s);
    if (!s)
        return MESH_ENOMEM;
    s->m = *model;
    if (params)
        s->p = *params;
    if (s->p.max_active <= 0)
        s->p.max_active = model->max_seqs < 64 ? model->max_seqs : 64;
    if (s->p.max_active > model->max_seqs)
        s->p.max_active = model->max_seqs;
    if (s->p.max_queue <= 0)
        s->p.max_queue = 256;
    if (s->p.step_tokens <= 0)
        s->p.step_tokens = 512;
    if (s->p.step_tokens < s->p.max_active)
        s->p.step_tokens = s->p.max_active;
    s->n_slots = s->p.max_active + s->p.max_queue;
    s->next_id = 1;
    s->slots = calloc((size_t)s->n_slots, sizeof *s->slots);
    s->act = malloc((size_t)s->p.max_active * sizeof *s->act);
    s->batch = malloc((size_t)s->p.step_tokens * sizeof *s->batch);
    s->row_slot = malloc((size_t)s->p.step_tokens * sizeof *s->row_slot);
    s->logits = malloc((size_t)s->p.max_active * (size_t)model->n_vocab * sizeof *s->logits);
    if (!s->slots || !s->act || !s->batch || !s->row_slot || !s->logits) {
        free(s->slots);
        free(s->act);
        free(s->batch);
        free(s->row_slot);
        free(s->logits);
        free(s);
        return MESH_ENOMEM;
    }
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    *out = s;
    return 0;
}

// Frees a slot's request objects and, when admitted, its model sequence.
// Step thread (or destroy). Reservation bookkeeping is the caller's.
static void s_slot_release(mesh_sched_t *s, s_slot_t *sl) {
    if (sl->seq >= 0)
        s->m.seq_free(s->m.ctx, sl->seq);
    sl->seq = -1;
    mesh_sampler_destroy(&sl->sampler);
    mesh_stop_destroy(&sl->stop);
    if (sl->stream)
        s->m.stream_destroy(sl->stream);
    sl->stream = NULL;
    free(sl->prompt);
    sl->prompt = NULL;
}

// Ends an admitted or queued request: flushes held text into the DONE
// event, frees everything, returns the slot and its reservation.
static void s_finish(mesh_sched_t *s, s_slot_t *sl, mesh_sched_finish_t why, int err) {
    mesh_sched_event_t ev;
    memset(&ev, 0, sizeof ev);
    ev.type = MESH_SCHED_EV_DONE;
    ev.id = sl->id;
    ev.user = sl->user;
    ev.token = -1;
    ev.text = "";
    ev.finish = why;
    ev.error = err;
    ev.n_prompt = sl->n_prompt;
    ev.n_gen = sl->n_gen;
    // Held-back text is released unless a stop string ended the request
    // (then the matcher releases nothing); a cancel or error drops it.
    if (why != MESH_SCHED_FINISH_CANCEL && why != MESH_SCHED_FINISH_ERROR && sl->stream) {
        const char *tail = "";
        size_t tail_len = 0;
        if (s->m.stream_flush(sl->stream, &tail, &tail_len) != 0)
            tail_len = 0;
        if (mesh_stop_flush(sl->stop, tail, tail_len, &ev.text, &ev.text_len) < 0)
            ev.text_len = 0;
    }
    sl->on_event(&ev, sl->user);
    s_slot_release(s, sl);
    if (sl->state == S_ACTIVE) {
        int32_t idx = (int32_t)(sl - s->slots);
        for (int32_t k = 0; k < s->n_act; k++)
            if (s->act[k] == idx) {
                s->act[k] = s->act[--s->n_act];
                break;
            }
    }
    pthread_mutex_lock(&s->mu);
    if (sl->state == S_QUEUED)
        s->n_queued--;
    else
        s->n_active--;
    s->kv_reserved -= sl->reserve;
    sl->reserve = 0;
    sl->state = S_FREE;
    sl->id = 0;
    pthread_mutex_unlock(&s->mu);
}

void mesh_sched_destroy(mesh_sched_t **s_p) {
    if (!s_p || !*s_p)
        return;
    mesh_sched_t *s = *s_p;
    for (int32_t i = 0; i < s->n_slots; i++)
        if (s->slots[i].state != S_FREE)
            s_finish(s, &s->slots[i], MESH_SCHED_FINISH_CANCEL, 0);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    if (s->owned_free)
        s->owned_free(s->owned_ctx);
    free(s->slots);
    free(s->act);
    free(s->batch);
    free(s->row_slot);
    free(s->logits);
    free(s);
    *s_p = NULL;
}

// ---- submit / cancel ----------------------------------------------------

#define S_REFUSE(code, ...)                                                                \
    do {                                                                                   \
        if (msg && msg_len)                                                                \
            snprintf(msg, msg_len, __VA_ARGS__);                                           \
        rc = (code);                                                                       \
        goto fail;                                                                         \
    } while (0)

int mesh_sched_submit(mesh_sched_t *s, const mesh_sched_request_t *r, uint64_t *id, char *msg,
                      size_t msg_len) {
    int rc = 0;
    s_slot_t tmp;
    memset(&tmp, 0, sizeof tmp);
    tmp.seq = -1;
    if (id)
        *id = 0;
    if (msg && msg_len)
        msg[0] = 0;
    if (!r || !r->on_event)
        S_REFUSE(MESH_EINVAL, "sched: request has no event callback");
    mesh_sched_request_t rq;
    if (!r->prompt && r->prompt_text) {
        // Text prompt: tokenize here, then go on as if ids were given.
        if (!s->m.encode)
            S_REFUSE(MESH_EINVAL, "sched: text prompts need a model with a tokenizer");
        size_t n = 0;
        rc = s->m.encode(s->m.ctx, r->prompt_text, r->prompt_text_len, &tmp.prompt, &n);
        if (rc)
            S_REFUSE(rc, "sched: cannot tokenize the prompt: %s", mesh_strerror(rc));
        if (n > INT32_MAX / 2)
            S_REFUSE(MESH_ERANGE, "sched: prompt of %zu tokens is too long", n);
        rq = *r;
        rq.prompt = tmp.prompt;
        rq.n_prompt = (int32_t)n;
        r = &rq;
    }
    if (r->n_prompt < 1 || !r->prompt)
        S_REFUSE(MESH_EINVAL, "sched: request has no prompt tokens");
    if (r->max_tokens < 1)
        S_REFUSE(MESH_EINVAL, "sched: max_tokens %d must be >= 1", (int)r->max_tokens);
    if (r->n_stop < 0 || (r->n_stop > 0 && !r->stop))
        S_REFUSE(MESH_EINVAL, "sched: bad stop string list");
    if (r->n_stop > 0 && !s->m.stream_new)
        S_REFUSE(MESH_EINVAL, "sched: stop strings need a model with a tokenizer");
    for (int32_t i = 0; i < r->n_prompt; i++)
        if (r->prompt[i] < 0 || r->prompt[i] >= s->m.n_vocab)
            S_REFUSE(MESH_EINVAL, "sched: prompt token %d at index %d is outside the vocabulary (0..%d)",
                     (int)r->prompt[i], (int)i, (int)s->m.n_vocab - 1);
    char why[160];
    if (mesh_sampler_params_check(&r->sampling, s->m.n_vocab, why, sizeof why))
        S_REFUSE(MESH_EINVAL, "%s", why);
    uint64_t need = (uint64_t)r->n_prompt + (uint64_t)r->max_tokens;
    uint32_t reserve = s_blocks_tokens(s, need);
    if (reserve > s->m.kv_capacity_tokens) {
        pthread_mutex_lock(&s->mu);
        uint32_t free_t = s->m.kv_capacity_tokens - s->kv_reserved;
        pthread_mutex_unlock(&s->mu);
        uint64_t bpt = s->m.kv_bytes_per_token;
        S_REFUSE(MESH_ENOSPACE,
                 "sched: request needs %llu tokens x %llu B = %llu B of KV; the pool holds %u "
                 "tokens (%llu B), %u free (%llu B)",
                 (unsigned long long)reserve, (unsigned long long)bpt,
                 (unsigned long long)reserve * bpt, s->m.kv_capacity_tokens,
                 (unsigned long long)s->m.kv_capacity_tokens * bpt, free_t,
                 (unsigned long long)free_t * bpt);
    }

    if (need > (uint64_t)s->m.n_ctx)
        S_REFUSE(MESH_ERANGE,
                 "sched: request needs %llu positions (prompt %d + max_tokens %d); the context "
                 "length is %d",
                 (unsigned long long)need, (int)r->n_prompt, (int)r->max_tokens, (int)s->m.n_ctx);

    // Per-request objects, made here so steps never allocate.
    if (!tmp.prompt) { // ids given by the caller: copy them
        tmp.prompt = malloc((size_t)r->n_prompt * sizeof *tmp.prompt);
        if (!tmp.prompt)
            S_REFUSE(MESH_ENOMEM, "sched: out of memory");
        memcpy(tmp.prompt, r->prompt, (size_t)r->n_prompt * sizeof *tmp.prompt);
    }
    tmp.n_prompt = r->n_prompt;
    tmp.max_tokens = r->max_tokens;
    tmp.stop_at_eog = r->stop_at_eog && s->m.is_eog;
    tmp.on_event = r->on_event;
    tmp.user = r->user;
    tmp.reserve = reserve;
    if ((rc = mesh_sampler_new(&r->sampling, s->m.n_vocab, &tmp.sampler)) != 0)
        S_REFUSE(rc, "sched: cannot create the sampler: %s", mesh_strerror(rc));
    if (r->penalize_prompt)
        for (int32_t i = 0; i < r->n_prompt; i++)
            mesh_sampler_accept(tmp.sampler, r->prompt[i]);
    if (s->m.stream_new) {
        if ((rc = mesh_stop_new(r->stop, r->n_stop, &tmp.stop)) != 0)
            S_REFUSE(rc, "sched: bad stop strings (%s)", mesh_strerror(rc));
        tmp.stream = s->m.stream_new(s->m.ctx);
        if (!tmp.stream)
            S_REFUSE(MESH_ENOMEM, "sched: out of memory");
    }

    pthread_mutex_lock(&s->mu);
    s_slot_t *sl = NULL;
    if (s->n_queued < s->p.max_queue)
        for (int32_t i = 0; i < s->n_slots && !sl; i++)
            if (s->slots[i].state == S_FREE)
                sl = &s->slots[i];
    if (!sl) {
        int32_t q = s->n_queued;
        pthread_mutex_unlock(&s->mu);
        S_REFUSE(MESH_EBUSY, "sched: queue full (%d requests waiting)", (int)q);
    }
    *sl = tmp;
    sl->state = S_QUEUED;
    sl->id = s->next_id++;
    sl->order = s->next_order++;
    s->n_queued++;
    if (id)
        *id = sl->id;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return 0;
fail:
    s_slot_release(s, &tmp);
    return rc;
}

int mesh_sched_cancel(mesh_sched_t *s, uint64_t id) {
    int rc = MESH_ENOENT;
    pthread_mutex_lock(&s->mu);
    for (int32_t i = 0; i < s->n_slots; i++)
        if (s->slots[i].state != S_FREE && s->slots[i].id == id) {
            s->slots[i].cancel = true;
            rc = 0;
            pthread_cond_broadcast(&s->cv);
            break;
        }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

// ---- step ---------------------------------------------------------------

// Under the mutex: admits queued requests in FIFO order while a slot in the
// active set and their KV reservation fit. Head-of-line: a big request at
// the front waits and blocks smaller ones behind it, so it cannot starve.
static void s_admit_locked(mesh_sched_t *s) {
    while (s->n_queued > 0 && s->n_active < s->p.max_active) {
        s_slot_t *head = NULL;
        for (int32_t i = 0; i < s->n_slots; i++) {
            s_slot_t *sl = &s->slots[i];
            if (sl->state == S_QUEUED && !sl->cancel && (!head || sl->order < head->order))
                head = sl;
        }
        if (!head || head->reserve > s->m.kv_capacity_tokens - s->kv_reserved)
            return;
        head->state = S_ACTIVE;
        head->decoding = false;
        s->act[s->n_act++] = (int32_t)(head - s->slots);
        s->kv_reserved += head->reserve;
        s->n_queued--;
        s->n_active++;
    }
}

bool mesh_sched_wait(mesh_sched_t *s, int timeout_ms) {
    pthread_mutex_lock(&s->mu);
    bool work = s->n_queued > 0 || s->n_active > 0;
    if (!work && timeout_ms != 0) {
        if (timeout_ms < 0) {
            pthread_cond_wait(&s->cv, &s->mu);
        } else {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += timeout_ms / 1000;
            ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&s->cv, &s->mu, &ts);
        }
        work = s->n_queued > 0 || s->n_active > 0;
    }
    pthread_mutex_unlock(&s->mu);
    return work;
}

void mesh_sched_wake(mesh_sched_t *s) {
    pthread_mutex_lock(&s->mu);
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

void mesh_sched_stats(mesh_sched_t *s, mesh_sched_stats_t *out) {
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&s->mu);
    out->active = s->n_active;
    out->queued = s->n_queued;
    out->kv_capacity_tokens = s->m.kv_capacity_tokens;
    out->kv_reserved_tokens = s->kv_reserved;
    out->kv_bytes_per_token = s->m.kv_bytes_per_token;
    out->steps = s->steps;
    out->prompt_tokens = s->prompt_tokens;
    out->gen_tokens = s->gen_tokens;
    out->busy_s = s->busy_s;
    out->gen_tok_per_s = s->busy_s > 0 ? (double)s->gen_tokens / s->busy_s : 0.0;
    pthread_mutex_unlock(&s->mu);
}

// Handles one sampled token for a slot: events, stop checks, finish.
static void s_on_token(mesh_sched_t *s, s_slot_t *sl, const float *row) {
    mesh_sampler_result_t res;
    int rc = mesh_sampler_sample(sl->sampler, row, &res);
    if (rc) {
        s_finish(s, sl, MESH_SCHED_FINISH_ERROR, rc);
        return;
    }
    mesh_sampler_accept(sl->sampler, res.token);
    sl->n_gen++;
    sl->last = res.token;
    sl->decoding = true;
    if (sl->stop_at_eog && s->m.is_eog(s->m.ctx, res.token)) {
        s_finish(s, sl, MESH_SCHED_FINISH_STOP, 0);
        return;
    }
    mesh_sched_event_t ev;
    memset(&ev, 0, sizeof ev);
    ev.type = MESH_SCHED_EV_TOKEN;
    ev.id = sl->id;
    ev.user = sl->user;
    ev.token = res.token;
    ev.text = "";
    ev.sample = &res;
    bool stopped = false;
    if (sl->stream) {
        const char *piece = "";
        size_t len = 0;
        rc = s->m.stream_push(sl->stream, res.token, &piece, &len);
        if (rc) {
            s_finish(s, sl, MESH_SCHED_FINISH_ERROR, rc);
            return;
        }
        rc = mesh_stop_feed(sl->stop, piece, len, &ev.text, &ev.text_len);
        if (rc < 0) {
            s_finish(s, sl, MESH_SCHED_FINISH_ERROR, rc);
            return;
        }
        stopped = rc == 1;
    }
    sl->on_event(&ev, sl->user);
    if (stopped)
        s_finish(s, sl, MESH_SCHED_FINISH_STOP, 0);
    else if (sl->n_gen >= sl->max_tokens)
        s_finish(s, sl, MESH_SCHED_FINISH_LENGTH, 0);
}

int mesh_sched_step(mesh_sched_t *s) {
    double t0 = s_now();
    // 1. Admission and cancel flags, under the mutex.
    pthread_mutex_lock(&s->mu);
    s_admit_locked(s);
    int32_t n_cancel = 0;
    for (int32_t i = 0; i < s->n_slots; i++)
        n_cancel += s->slots[i].state != S_FREE && s->slots[i].cancel;
    pthread_mutex_unlock(&s->mu);

    // 2. Cancels (queued or admitted) end now, before the batch is built.
    //    O(slots) mutex round trips, only in steps that have a cancel.
    if (n_cancel) {
        for (int32_t i = 0; i < s->n_slots; i++) {
            s_slot_t *sl = &s->slots[i];
            pthread_mutex_lock(&s->mu);
            bool c = sl->state != S_FREE && sl->cancel;
            pthread_mutex_unlock(&s->mu);
            if (c)
                s_finish(s, sl, MESH_SCHED_FINISH_CANCEL, 0);
        }
        pthread_mutex_lock(&s->mu);
        s_admit_locked(s); // freed reservations may admit the next ones
        pthread_mutex_unlock(&s->mu);
    }

    // 3. Build the batch: every decoding sequence's last token first, then
    //    prompt chunks FIFO within the remaining budget.
    int32_t n = 0, rows = 0, n_prompt_toks = 0;
    for (int32_t k = 0; k < s->n_act; k++) {
        int32_t i = s->act[k];
        s_slot_t *sl = &s->slots[i];
        if (!sl->decoding)
            continue;
        s->batch[n++] = (mesh_sched_tok_t){sl->last, sl->seq, sl->n_past, true};
        s->row_slot[rows++] = i;
        sl->n_batch = 1;
    }
    int32_t error = 0;
    while (n < s->p.step_tokens) {
        // Oldest prefilling sequence not yet in this batch.
        s_slot_t *best = NULL;
        int32_t best_i = -1;
        for (int32_t k = 0; k < s->n_act; k++) {
            int32_t i = s->act[k];
            s_slot_t *sl = &s->slots[i];
            if (!sl->decoding && sl->n_batch == 0 && (!best || sl->order < best->order)) {
                best = sl;
                best_i = i;
            }
        }
        if (!best)
            break;
        if (best->seq < 0) {
            int rc = s->m.seq_new(s->m.ctx, &best->seq);
            if (rc) {
                best->seq = -1;
                s_finish(s, best, MESH_SCHED_FINISH_ERROR, rc);
                error = rc;
                continue;
            }
        }
        int32_t take = best->n_prompt - best->n_past;
        if (take > s->p.step_tokens - n)
            take = s->p.step_tokens - n;
        for (int32_t k = 0; k < take; k++) {
            int32_t pos = best->n_past + k;
            s->batch[n++] = (mesh_sched_tok_t){best->prompt[pos], best->seq, pos, false};
        }
        best->n_batch = take;
        n_prompt_toks += take;
        if (best->n_past + take == best->n_prompt) {
            s->batch[n - 1].logits = true;
            s->row_slot[rows++] = best_i;
        }
    }
    if (n == 0)
        return error;

    // 4. One forward pass; positions advance for every token evaluated.
    int rc = s->m.forward(s->m.ctx, n, s->batch, s->logits);
    for (int32_t k = s->n_act - 1; k >= 0; k--) { // backwards: s_finish swap-removes
        s_slot_t *sl = &s->slots[s->act[k]];
        if (sl->n_batch == 0)
            continue;
        sl->n_past += sl->n_batch;
        sl->n_batch = 0;
        // A failed pass ends every sequence in it: its cache may be
        // inconsistent.
        if (rc)
            s_finish(s, sl, MESH_SCHED_FINISH_ERROR, rc);
    }
    if (rc) {
        mesh_log(MESH_LOG_ERROR, "sched: forward pass over %d tokens failed: %s", (int)n,
                 mesh_strerror(rc));
        return rc;
    }

    // 5. Sample every row; events; finishes.
    int32_t n_gen = 0;
    for (int32_t r = 0; r < rows; r++) {
        s_slot_t *sl = &s->slots[s->row_slot[r]];
        s_on_token(s, sl, s->logits + (size_t)r * (size_t)s->m.n_vocab);
        n_gen++;
    }

    double dt = s_now() - t0;
    pthread_mutex_lock(&s->mu);
    s->steps++;
    s->prompt_tokens += (uint64_t)n_prompt_toks;
    s->gen_tokens += (uint64_t)n_gen;
    s->busy_s += dt;
    pthread_mutex_unlock(&s->mu);
    return n;
}

// ---- the engine adapter -------------------------------------------------

typedef struct {
    mesh_model_t *model;
    mesh_kv_t *kv;
    const mesh_tok_t *tok;
    mesh_batch_tok_t *batch; // (cap) engine-typed copy of the step's batch
    int32_t cap;
} s_engine_t;

static int s_eng_seq_new(void *ctx, int32_t *seq) {
    s_engine_t *e = ctx;
    return mesh_kv_seq_new(e->kv, seq);
}

static void s_eng_seq_free(void *ctx, int32_t seq) {
    s_engine_t *e = ctx;
    mesh_kv_seq_free(e->kv, seq);
}

static int s_eng_forward(void *ctx, int32_t n, const mesh_sched_tok_t *t, float *logits) {
    s_engine_t *e = ctx;
    if (n > e->cap)
        return MESH_EINVAL;
    for (int32_t i = 0; i < n; i++)
        e->batch[i] = (mesh_batch_tok_t){.token = t[i].token, .seq = t[i].seq, .pos = t[i].pos,
                                         .logits = t[i].logits};
    mesh_batch_t b = {.n = n, .tok = e->batch};
    return mesh_model_forward(e->model, e->kv, &b, logits);
}

static void *s_eng_stream_new(void *ctx) {
    s_engine_t *e = ctx;
    return mesh_tok_stream_new(e->tok, false);
}

static void s_eng_stream_destroy(void *st) {
    mesh_tok_stream_t *t = st;
    mesh_tok_stream_destroy(&t);
}

static int s_eng_stream_push(void *st, int32_t token, const char **text, size_t *len) {
    return mesh_tok_stream_push(st, token, text, len);
}

static int s_eng_stream_flush(void *st, const char **text, size_t *len) {
    return mesh_tok_stream_flush(st, text, len);
}

static bool s_eng_is_eog(void *ctx, int32_t token) {
    s_engine_t *e = ctx;
    return mesh_tok_is_end_of_generation(e->tok, token);
}

static int s_eng_encode(void *ctx, const char *text, size_t len, int32_t **ids, size_t *n) {
    s_engine_t *e = ctx;
    return mesh_tok_encode_alloc(e->tok, text, len, true, false, ids, n);
}

static void s_eng_free(void *ctx) {
    s_engine_t *e = ctx;
    free(e->batch);
    free(e);
}

int mesh_sched_new_engine(mesh_model_t *model, const mesh_tok_t *tok,
                          const mesh_sched_params_t *params, mesh_sched_t **out) {
    *out = NULL;
    if (!model)
        return MESH_EINVAL;
    mesh_model_info_t info;
    mesh_model_info(model, &info);
    s_engine_t *e = calloc(1, sizeof *e);
    if (!e)
        return MESH_ENOMEM;
    e->model = model;
    e->kv = mesh_model_kv(model);
    e->tok = tok;
    mesh_sched_model_t m = {
        .ctx = e,
        .n_vocab = (int32_t)info.n_vocab,
        .kv_capacity_tokens = mesh_kv_capacity_tokens(e->kv),
        .kv_block_tokens = mesh_kv_block_tokens(e->kv),
        .kv_bytes_per_token = mesh_kv_bytes_per_token(e->kv),
        .max_seqs = e->kv->max_seqs,
        .seq_new = s_eng_seq_new,
        .seq_free = s_eng_seq_free,
        .forward = s_eng_forward,
    };
    // Positions one sequence may hold: the trained context, and no more
    // than its block table can map.
    uint64_t n_ctx = info.n_ctx_train ? info.n_ctx_train : INT32_MAX;
    uint64_t table = (uint64_t)e->kv->max_blocks_per_seq * m.kv_block_tokens;
    if (table && table < n_ctx)
        n_ctx = table;
    m.n_ctx = n_ctx > INT32_MAX ? INT32_MAX : (int32_t)n_ctx;
    if (tok) {
        m.stream_new = s_eng_stream_new;
        m.stream_destroy = s_eng_stream_destroy;
        m.stream_push = s_eng_stream_push;
        m.stream_flush = s_eng_stream_flush;
        m.is_eog = s_eng_is_eog;
        m.encode = s_eng_encode;
    }
    int rc = mesh_sched_new(&m, params, out);
    if (rc) {
        free(e);
        return rc;
    }
    e->cap = (*out)->p.step_tokens;
    e->batch = malloc((size_t)e->cap * sizeof *e->batch);
    if (!e->batch) {
        mesh_sched_destroy(out);
        free(e);
        return MESH_ENOMEM;
    }
    (*out)->owned_ctx = e;
    (*out)->owned_free = s_eng_free;
    return 0;
}
